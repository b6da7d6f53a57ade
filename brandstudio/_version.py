"""The package version (its own module, so that any module can read it without importing the
public API in ``brandstudio/__init__.py``)."""

__version__ = "0.1.0"
VERSION = __version__
"""The same, under a public name for modules in the stage packages."""
