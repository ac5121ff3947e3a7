"""A tiny package for the build-project example to check, test and package."""


def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b
