"""wfkit: YAML-defined workflows with first-class, debuggable failure."""

__version__ = "0.1.0"
