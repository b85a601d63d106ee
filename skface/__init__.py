"""skface: deep face models as scikit-learn estimators, and face dataset fetchers."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "datasets"]


def __getattr__(name):
    # Submodules load on first use so that `import skface` stays light.
    if name == "datasets":
        import importlib

        return importlib.import_module("skface.datasets")
    raise AttributeError(f"module 'skface' has no attribute {name!r}")
