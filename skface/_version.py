"""The installed skface version, at the bottom of the package so any module may read it."""

__version__ = "0.1.0.dev0"
