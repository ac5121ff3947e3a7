"""Renderers of command results: rich renderables for the terminal, HTML pages for reports."""
