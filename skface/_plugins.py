"""Entry-point plugin discovery shared by the backbone and dataset registries."""

import functools
from importlib.metadata import EntryPoint, entry_points

from ._warnings import warn_at_caller

__all__ = ["clear_cache", "get_plugin", "load_group"]


def load_group(group, *, kind="plugin", builtins=None):
    """Every plugin of an entry-point group, loaded once: name -> loaded object.

    Entry points are taken in name order. A name declared twice keeps the
    first; one that fails to load or is not callable is skipped. Each of
    these warns (``RuntimeWarning``) naming the plugin, so that a third
    party's bug never breaks the other plugins. The result is cached:
    :func:`clear_cache` forgets it.

    Parameters
    ----------
    group : str
        Entry-point group, e.g. "skface.backbones".
    kind : str, default="plugin"
        What the plugins are, for messages ("backbone", "dataset").
    builtins : dict of str to str, default=None
        ``name -> "module:attribute"`` entries loaded when the installed
        metadata does not declare that name (an editable install older than
        the entry-point table).

    Returns
    -------
    plugins : dict of str to callable
        Shared between calls: not to be modified.
    """
    return _load_group(group, kind, tuple(sorted((builtins or {}).items())))


@functools.lru_cache(maxsize=None)
def _load_group(group, kind, builtins):
    declared = sorted(entry_points(group=group), key=lambda e: e.name)
    names = {ep.name for ep in declared}
    declared += [EntryPoint(name, value, group) for name, value in builtins if name not in names]
    found = {}
    for ep in declared:
        if ep.name in found:
            _warn(f"skface {kind} plugin {ep.name!r} ({ep.value}) is declared more than once; "
                  "keeping the first one found.")
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a third party's bug must not break the other plugins
            _warn(f"skface {kind} plugin {ep.name!r} ({ep.value}) failed to load and is "
                  f"skipped: {type(exc).__name__}: {exc}")
            continue
        if not callable(plugin):
            _warn(f"skface {kind} plugin {ep.name!r} ({ep.value}) is not callable and is skipped.")
            continue
        found[ep.name] = plugin
    return found


def clear_cache():
    """Forget the loaded plugins: the next lookup reads the installed entry points again."""
    _load_group.cache_clear()


def get_plugin(group, name, *, kind="plugin", builtins=None, alternative=""):
    """The plugin registered under ``name`` in an entry-point group.

    Parameters
    ----------
    group : str
        Entry-point group.
    name : str
        Plugin name.
    kind : str, default="plugin"
        What the plugins are, for messages.
    builtins : dict of str to str, default=None
        As for :func:`load_group`.
    alternative : str, default=""
        Appended to the error message after the entry-point group, e.g.
        ``", or pass a class instead of a name"``.

    Returns
    -------
    plugin : callable

    Raises
    ------
    ValueError
        If no plugin of that name is registered; the message lists the
        available names.
    """
    plugins = load_group(group, kind=kind, builtins=builtins)
    try:
        return plugins[name]
    except KeyError:
        available = ", ".join(sorted(plugins)) or "(none)"
        raise ValueError(
            f"Unknown {kind} {name!r}. Available {kind}s: {available}. "
            f"Third-party {kind}s register under the {group!r} entry-point group{alternative}."
        ) from None


def _warn(message):
    # At the call that asked for the plugins, however many registry frames lie between.
    warn_at_caller(message, RuntimeWarning)
