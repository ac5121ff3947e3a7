"""The ``wfkit`` command line: the typer app (app.py), the console-script entry (entry.py),
command modules by theme, and views/ (rich renderers and HTML pages) over the command results."""
