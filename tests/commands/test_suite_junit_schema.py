"""``wfkit test --junit-xml`` validated by ``xmlschema`` against a published JUnit XSD.

The schema is Jenkins xunit-plugin's ``junit-10.xsd`` (MIT), the one pytest's own tests check
its ``--junitxml`` output against; it ships in pytest's source distribution on PyPI, which is
downloaded once (the version installed here) and cached.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cached_install import cached
from wfkit.cli.app import app

PYTEST = version("pytest")
XSD = "junit-10.xsd"


def fetch_xsd(folder: Path) -> subprocess.CompletedProcess[bytes]:
    """Download pytest's sdist into ``folder`` and keep only the JUnit schema from it."""
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary"]
    command += [":all:", "-d", str(folder), f"pytest=={PYTEST}"]
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    for sdist in folder.glob("pytest-*.tar.gz"):
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(f"pytest-{PYTEST}/testing/example_scripts/{XSD}")
            if member is not None:
                (folder / XSD).write_bytes(member.read())
        sdist.unlink()
    return done


@pytest.fixture(scope="module")
def junit_schema() -> Any:
    import xmlschema

    return xmlschema.XMLSchema(cached(f"wfkit-junit-xsd-pytest-{PYTEST}", XSD, fetch_xsd) / XSD)


FLOW = "name: ci\nsteps:\n  - {id: unit, type: shell_command, command: 'pytest -q'}\n"
PASS = "    mocks: {shell: [{match: pytest, stdout: ok}]}\n"
# a coloured terminal report: ESC is a character XML 1.0 cannot hold, even as a reference
FAIL = (
    "    mocks: {shell: [{match: pytest, exit_code: 1,"
    ' stdout: "\\e[31mE  assert 1 <&\\"> 2\\e[0m"}]}\n'
)
HOSTILE = """<&"'> ]]> end"""


def test_the_junit_report_is_valid_for_the_published_schema(
    junit_schema: Any, tmp_path: Path
) -> None:
    (tmp_path / "ci.yaml").write_text(FLOW)
    (tmp_path / "a.wftest.yaml").write_text(
        "workflow: ci.yaml\ncases:\n"
        f"  - name: passes\n{PASS}"
        f"  - name: 'fails {HOSTILE.replace(chr(39), chr(39) * 2)}'\n{FAIL}"
        "    expect: {status: succeeded, state: {raw: {x: '<&\">'}}}\n"
        f'  - name: "expected failure \\x01"\n{FAIL}    expect: {{status: failed}}\n'
    )
    (tmp_path / "b.wftest.yaml").write_text("workflow: ci.yaml\ncases: [{name: 'x}]\n")
    (tmp_path / "c&<d>.wftest.yaml").write_text(f"workflow: gone.yaml\ncases:\n  - name: x\n{PASS}")
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["test", str(tmp_path), "--junit-xml", str(junit)])
    assert result.exit_code == 2, result.output
    assert [str(error) for error in junit_schema.iter_errors(str(junit))] == []
    data = junit_schema.to_dict(str(junit))
    suites = data["testsuite"]
    assert [(s["@tests"], s["@failures"], s["@errors"]) for s in suites] == [
        ("3", "1", "0"),
        ("1", "0", "1"),
        ("1", "0", "1"),
    ]
    cases = [case for s in suites for case in s["testcase"]]
    assert [case["@name"] for case in cases] == [
        "passes",
        f"fails {HOSTILE}",
        "expected failure #x01",
        "(suite)",
        "x",
    ]
    assert [sorted(set(case) & {"failure", "error"}) for case in cases] == [
        [],
        ["failure"],
        [],
        ["error"],
        ["error"],
    ]
    assert '#x1B[31mE  assert 1 <&"> 2#x1B[0m' in cases[1]["failure"][0]["$"]
    assert "c&<d>.wftest.yaml" in suites[2]["@name"]
