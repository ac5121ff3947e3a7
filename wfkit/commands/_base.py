"""The base of the commands' models: their results and the files they read (test suites)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Immutable, and built only from the fields it declares: an unknown field is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FrozenModel(BaseModel):
    """Immutable: the views of recorded runs (``trace``, ``debug``)."""

    model_config = ConfigDict(frozen=True)
