"""The package's version (kept apart so that modules can read it without
importing the package itself)."""

__version__ = "0.1.0"
