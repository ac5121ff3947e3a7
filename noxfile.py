"""Developer sessions: tests, lint, typing, bench, reliability, stress, scale.

Sessions run in the environment nox itself runs in (``pip install -e '.[dev]'`` first), so
they need no other interpreter: under ``CI=true`` nox fails on interpreters it cannot find.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.default_venv_backend = "none"

PY = sys.executable


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite with line and branch coverage (fails under the configured floor)."""
    session.run(PY, "-m", "coverage", "erase")
    session.run(PY, "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    session.run(PY, "-m", "coverage", "combine", "-q")
    session.run(PY, "-m", "coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting) and import-linter (the layers and circles of pyproject.toml)."""
    paths = ("wfkit", "tests", "noxfile.py", "benchmarks", "docs")
    session.run(PY, "-m", "ruff", "check", *paths)
    session.run(PY, "-m", "ruff", "format", "--check", *paths)
    session.run(str(Path(PY).with_name("lint-imports")))


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.run(PY, "-m", "mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Engine overhead and report figures (printed, never asserted)."""
    session.run(PY, "benchmarks/engine.py", *session.posargs)
    session.run(PY, "benchmarks/report.py", *session.posargs)


@nox.session
def scale(session: nox.Session) -> None:
    """Beyond one machine: Dask throughput, overhead and fan-out; PostgreSQL against SQLite."""
    session.run(PY, "benchmarks/scale.py", *session.posargs)
    session.run(PY, "benchmarks/scale_store.py", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """Large state, concurrency, fan-out, error storms, memory pressure, chaos: figures."""
    session.run(PY, "benchmarks/stress.py", *session.posargs)


@nox.session
def reliability(session: nox.Session) -> None:
    """Transient recovery, error storm and kill -9/resume figures (printed, never asserted)."""
    session.run(PY, "benchmarks/reliability.py", *session.posargs)
