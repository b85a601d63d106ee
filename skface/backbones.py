"""Backbone registry: embedding networks discovered from the ``skface.backbones`` entry points."""

import functools
import importlib
import warnings
from importlib.metadata import EntryPoint, entry_points

__all__ = ["ENTRY_POINT_GROUP", "build_backbone", "get_backbone", "list_backbones"]

ENTRY_POINT_GROUP = "skface.backbones"

# The built-ins as pyproject.toml declares them; used only when the installed
# metadata lacks them (an editable install older than the entry-point table).
_BUILTIN = {
    "nn4_small2": "skface.nn.nn4_small2:NN4Small2",
    "small_cnn": "skface.nn.small_cnn:SmallConvNet",
}


@functools.lru_cache(maxsize=None)
def _discover():
    """Load every entry point of the group once; a broken one warns and is skipped."""
    declared = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    names = {ep.name for ep in declared}
    declared += [
        EntryPoint(name, value, ENTRY_POINT_GROUP)
        for name, value in _BUILTIN.items()
        if name not in names
    ]
    found = {}
    for ep in declared:
        if ep.name in found:
            warnings.warn(
                f"skface backbone plugin {ep.name!r} ({ep.value}) is declared more than once; "
                "keeping the first one found.",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # a third party's bug must not break the other backbones
            warnings.warn(
                f"skface backbone plugin {ep.name!r} ({ep.value}) failed to load and is "
                f"skipped: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        if not callable(factory):
            warnings.warn(
                f"skface backbone plugin {ep.name!r} ({ep.value}) is not callable and is skipped.",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found[ep.name] = factory
    return found


def list_backbones():
    """Names of every registered backbone, sorted.

    Returns
    -------
    names : list of str
    """
    return sorted(_discover())


def get_backbone(name):
    """The factory (usually an ``nn.Module`` class) registered under ``name``.

    Raises
    ------
    ValueError
        If no backbone of that name is registered; the message lists the
        available names.
    """
    factories = _discover()
    try:
        return factories[name]
    except KeyError:
        available = ", ".join(sorted(factories)) or "(none)"
        raise ValueError(
            f"Unknown backbone {name!r}. Available backbones: {available}. "
            f"Third-party backbones register under the {ENTRY_POINT_GROUP!r} entry-point "
            "group, or pass an nn.Module class or factory instead of a name."
        ) from None


def build_backbone(backbone, *, in_channels, embedding_dim, **params):
    """A fresh backbone module from a registered name, a class or factory, or a module.

    The contract: the module maps float images ``(n, in_channels, H, W)``
    to ``(n, embedding_dim)`` features (skface normalises them to unit
    length; a backbone may already do so).

    Parameters
    ----------
    backbone : str, callable or torch.nn.Module
        A name from :func:`list_backbones`; a class or factory called as
        ``backbone(in_channels=..., embedding_dim=..., **params)``; or a
        module instance, which is deep-copied (so that fitting leaves the
        caller's module untouched) and must already have the right sizes.
    in_channels : int
    embedding_dim : int
    **params
        Extra keyword arguments for the factory.

    Returns
    -------
    module : torch.nn.Module
    """
    torch_nn = importlib.import_module("torch.nn")
    if isinstance(backbone, torch_nn.Module):
        if params:
            raise ValueError(
                "backbone_params apply to a backbone name, class or factory, not to a "
                f"module instance; got {sorted(params)}."
            )
        import copy

        return copy.deepcopy(backbone)
    factory = get_backbone(backbone) if isinstance(backbone, str) else backbone
    if not callable(factory):
        raise TypeError(
            "backbone must be a registered name, an nn.Module class or factory, or an "
            f"nn.Module instance; got {type(backbone).__name__}."
        )
    module = factory(in_channels=in_channels, embedding_dim=embedding_dim, **params)
    if not isinstance(module, torch_nn.Module):
        raise TypeError(
            f"backbone factory {factory!r} returned {type(module).__name__}, not an nn.Module."
        )
    return module
