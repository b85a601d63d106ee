"""Backbone registry: embedding networks discovered from the ``skface.backbones`` entry points."""

import importlib

from ._plugins import get_plugin, load_group

__all__ = ["ENTRY_POINT_GROUP", "build_backbone", "get_backbone", "list_backbones"]

ENTRY_POINT_GROUP = "skface.backbones"

# The built-ins as pyproject.toml declares them; used only when the installed
# metadata lacks them (an editable install older than the entry-point table).
_BUILTIN = {
    "faceapi_resnet": "skface.nn.faceapi_resnet:FaceRecognitionResNet",
    "nn4_small2": "skface.nn.nn4_small2:NN4Small2",
    "small_cnn": "skface.nn.small_cnn:SmallConvNet",
}


def list_backbones():
    """Names of every registered backbone, sorted.

    Returns
    -------
    names : list of str
    """
    return sorted(load_group(ENTRY_POINT_GROUP, kind="backbone", builtins=_BUILTIN))


def get_backbone(name):
    """The factory (usually an ``nn.Module`` class) registered under ``name``.

    Raises
    ------
    ValueError
        If no backbone of that name is registered; the message lists the
        available names.
    """
    return get_plugin(
        ENTRY_POINT_GROUP, name, kind="backbone", builtins=_BUILTIN,
        alternative=", or pass an nn.Module class or factory instead of a name",
    )


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
