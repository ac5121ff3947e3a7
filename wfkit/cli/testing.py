"""Commands that try workflows out: ``test-transform``, ``test-step``, ``test`` and ``bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wfkit.cli.common import (
    EXIT_FAILED,
    EXIT_NO_TESTS,
    EXIT_OK,
    EXIT_USAGE,
    FileArg,
    InputsOpt,
    JsonOpt,
    StoreOpt,
    call,
    console,
    ok_or_failed,
    respond,
    show,
    write_error_json,
    write_page,
)


def transform_command(
    expression: Annotated[
        str | None, typer.Argument(help="Expression (bare or a {{ }} template).")
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="JSON value bound to `input`.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="JSON object of names, or @FILE (JSON/YAML).")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Test a computed field of this workflow.")
    ] = None,
    field: Annotated[str | None, typer.Option("--field", help="The computed field.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help='JSON {"inputs": {...}, "raw": {...}}.')
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate an expression, or a workflow's computed field, in the run sandbox."""
    from wfkit.cli.views.explain import transform_result
    from wfkit.commands._io import json_argument
    from wfkit.commands.transform import evaluate_transform

    respond(
        lambda: evaluate_transform(
            expression,
            json_argument(input_json, "--input"),
            json_argument(context, "--context", mapping=True),
            workflow=workflow,
            field=field,
            state=json_argument(state, "--state", mapping=True),
        ),
        transform_result,
        json_out,
        lambda result: ok_or_failed(result.ok),
    )


def step_trial_command(
    file: FileArg,
    step_id: Annotated[str, typer.Argument(help="The step to run.")],
    state: Annotated[
        str | None, typer.Option("--state", help='JSON {"inputs": {...}, "raw": {...}}.')
    ] = None,
    attempt: Annotated[int, typer.Option("--attempt", help="Run as this attempt (1-based).")] = 1,
    mock_result: Annotated[
        str | None, typer.Option("--mock-result", help="JSON result instead of running it.")
    ] = None,
    mock_error: Annotated[
        str | None,
        typer.Option(
            "--mock-error",
            help="Fail with this error instead: a type, with details as name=value "
            "('ShellCommandError exit_code=75'), or a JSON object.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one step in isolation: condition, rendered fields, result, writes, policy branch."""
    from wfkit.cli.views.step_trial import step_trial_view
    from wfkit.commands._io import json_argument
    from wfkit.commands.step_trial import StepTrialResult, run_one_step

    def trial() -> StepTrialResult:
        extra = (
            {}
            if mock_result is None
            else {"mock_result": json_argument(mock_result, "--mock-result")}
        )
        return run_one_step(
            file,
            step_id,
            state=json_argument(state, "--state", mapping=True),
            attempt=attempt,
            mock_error=mock_error,
            **extra,
        )

    respond(
        trial,
        step_trial_view,
        json_out,
        lambda result: EXIT_FAILED if result.branch == "fail" else EXIT_OK,
    )


def suite_command(
    paths: Annotated[
        list[str] | None, typer.Argument(help="*.wftest.yaml files or folders.")
    ] = None,
    from_run: Annotated[
        str | None,
        typer.Option(
            "--from-run",
            help="Write a test case from this recorded run (mocks from its record, "
            "expectations from its outcome) instead of running suites.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="With --from-run: the file to write (else stdout)."),
    ] = None,
    store: StoreOpt = None,
    junit_xml: Annotated[
        str | None, typer.Option("--junit-xml", help="Write a JUnit XML report here.")
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Workflow coverage: steps, branches, handlers.")
    ] = False,
    lcov: Annotated[
        str | None, typer.Option("--lcov", help="Write workflow coverage as LCOV here.")
    ] = None,
    fail_under: Annotated[
        float | None, typer.Option("--coverage-fail-under", help="Fail below this percent.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Run cases in this many processes (results as serial)."
        ),
    ] = 1,
    html: Annotated[
        str | None,
        typer.Option("--html", help="Write an HTML page: cases, failures, coverage."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run workflow test suites with mocked tools, shell and answers, in virtual time."""
    from rich.text import Text

    from wfkit.cli.views.suite import case_line, test_summary
    from wfkit.commands.suite.reports import write_junit, write_lcov
    from wfkit.commands.suite.runner import run_tests
    from wfkit.errors import NoTestsFoundError

    err = console(stderr=True)
    if from_run is not None:
        _write_case(from_run, output, store, json_out)
        return
    if not paths:
        raise typer.BadParameter("give *.wftest.yaml files or folders, or --from-run RUN_ID")
    measure = coverage or lcov is not None or fail_under is not None
    try:
        result = call(
            lambda: run_tests(
                paths,
                coverage=measure or html is not None,
                on_case=None if json_out else lambda c: err.print(case_line(c)),
                workers=workers,
            ),
            json_out,
        )
    except NoTestsFoundError as exc:  # as pytest: exit 5 when nothing was collected
        if json_out:
            write_error_json(exc)
        else:
            err.print(Text(str(exc), style="yellow"))
        raise typer.Exit(EXIT_NO_TESTS) from None
    if junit_xml:
        write_junit(result, junit_xml)
    if lcov and result.coverage is not None:
        write_lcov(result.coverage, lcov)
    if html:
        from wfkit.cli.views.html import suite_page_html

        write_page(suite_page_html(result, f"wfkit test {' '.join(paths)}"), html)
    show(result, lambda r: test_summary(r, show_coverage=measure), json_out)
    under = (
        fail_under is not None
        and result.coverage_percent is not None
        and result.coverage_percent < fail_under
    )
    if under and not json_out:
        err.print(
            f"workflow coverage {result.coverage_percent:.1f}% is under {fail_under:g}%",
            style="red",
            markup=False,
        )
    if result.invalid:  # a suite or workflow file that does not load is a usage error
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(ok_or_failed(result.ok and not under))


def bench(
    file: FileArg,
    runs: Annotated[int, typer.Option("-n", "--runs", help="Measured runs.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Runs before measuring.")] = 1,
    inputs: InputsOpt = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="pyinstrument HTML (or .json speedscope).")
    ] = None,
    save: Annotated[str | None, typer.Option("--save", help="Save the report as JSON.")] = None,
    compare: Annotated[
        str | None, typer.Option("--compare", help="A saved report to compare the median with.")
    ] = None,
    max_regression: Annotated[
        float | None, typer.Option("--max-regression", help="Exit 1 above this % slowdown.")
    ] = None,
    json_out: JsonOpt = False,
    inject: Annotated[
        list[str] | None, typer.Option("--inject", help="A fault in every run (see wfkit run).")
    ] = None,
    inject_seed: Annotated[
        str | None, typer.Option("--inject-seed", help="Seed of the faults' draws.")
    ] = None,
) -> None:
    """Run a workflow N times: wall min/median/p95/max, steps per second, per-step medians."""
    from rich.progress import Progress

    from wfkit.cli.views.suite import bench_view
    from wfkit.commands._io import parse_assignments, parse_faults
    from wfkit.commands.bench import BenchError, BenchReport, bench_workflow

    def measure() -> BenchReport:
        with Progress(console=console(stderr=True), transient=True) as progress:
            task = progress.add_task("benchmarking", total=runs + warmup)
            return bench_workflow(
                file,
                runs,
                warmup,
                parse_assignments(inputs),
                profile=profile,
                compare=compare,
                max_regression=max_regression,
                on_progress=lambda done, total: progress.update(task, completed=done),
                faults=parse_faults(inject),
                inject_seed=inject_seed,
            )

    result = call(measure, json_out, BenchError)
    if save:
        Path(save).write_text(result.model_dump_json(indent=2), encoding="utf-8")
    show(result, bench_view, json_out)
    raise typer.Exit(EXIT_FAILED if result.regressed else EXIT_OK)


def _write_case(run_id: str, output: str | None, store: str | None, json_out: bool) -> None:
    """``wfkit test --from-run``: the case's YAML to ``output`` (or stdout)."""
    import json
    from pathlib import Path

    from wfkit.commands.suite.from_run import case_from_run

    target = Path(output) if output else Path.cwd() / "run.wftest.yaml"
    text = call(lambda: case_from_run(run_id, store=store, output=target), json_out)
    if output is None:
        typer.echo(text, nl=False)
        return
    target.write_text(text, encoding="utf-8")
    if json_out:
        typer.echo(json.dumps({"written": str(target)}))
    else:
        console(stderr=True).print(f"wrote {target}: run it with `wfkit test {target}`")
