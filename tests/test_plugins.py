"""Tests for skface._plugins: the entry-point discovery behind the backbone and dataset registries."""

from importlib.metadata import EntryPoint

import pytest

from skface import _plugins

GROUP = "skface.test_plugins"


def plugin_a():
    return "a"


def plugin_b():
    return "b"


NOT_CALLABLE = 3


@pytest.fixture
def installed(monkeypatch):
    """Replace the installed entry points by the given (name, value) pairs."""

    def install(*entries):
        eps = [EntryPoint(name, value, GROUP) for name, value in entries]
        monkeypatch.setattr(_plugins, "entry_points", lambda group: list(eps))
        _plugins.clear_cache()

    yield install
    _plugins.clear_cache()


def test_load_group_sorted_by_name_and_loaded(installed):
    installed(("b", f"{__name__}:plugin_b"), ("a", f"{__name__}:plugin_a"))
    plugins = _plugins.load_group(GROUP, kind="widget")
    assert list(plugins) == ["a", "b"]
    assert plugins["a"] is plugin_a


def test_load_group_duplicate_broken_not_callable_warn_and_are_skipped(installed):
    installed(
        ("a", f"{__name__}:plugin_a"),
        ("a", f"{__name__}:plugin_b"),
        ("broken", "skface_no_such_module:thing"),
        ("constant", f"{__name__}:NOT_CALLABLE"),
    )
    with pytest.warns(RuntimeWarning) as record:
        plugins = _plugins.load_group(GROUP, kind="widget")
    assert plugins == {"a": plugin_a}
    messages = [str(w.message) for w in record]
    assert any("widget plugin 'a'" in m and "more than once" in m for m in messages)
    assert any("'broken'" in m and "failed to load" in m for m in messages)
    assert any("'constant'" in m and "not callable" in m for m in messages)
    # The warning points at the code that asked for the plugins, not at skface.
    assert all(w.filename == __file__ for w in record)


def test_load_group_builtins_only_fill_in_undeclared_names(installed):
    installed(("a", f"{__name__}:plugin_a"))
    builtins = {"a": f"{__name__}:plugin_b", "b": f"{__name__}:plugin_b"}
    plugins = _plugins.load_group(GROUP, kind="widget", builtins=builtins)
    assert plugins == {"a": plugin_a, "b": plugin_b}


def test_load_group_cached_until_cleared(installed, monkeypatch):
    installed(("a", f"{__name__}:plugin_a"))
    calls = []
    real = _plugins.entry_points
    monkeypatch.setattr(_plugins, "entry_points", lambda group: calls.append(1) or real(group))
    _plugins.load_group(GROUP, kind="widget")
    _plugins.get_plugin(GROUP, "a", kind="widget")
    assert len(calls) == 1
    _plugins.clear_cache()
    _plugins.load_group(GROUP, kind="widget")
    assert len(calls) == 2


def test_get_plugin_unknown_name_lists_available(installed):
    installed(("a", f"{__name__}:plugin_a"), ("b", f"{__name__}:plugin_b"))
    assert _plugins.get_plugin(GROUP, "b", kind="widget") is plugin_b
    with pytest.raises(ValueError, match=r"Unknown widget 'c'\. Available widgets: a, b\. .*"
                                         r"'skface\.test_plugins' entry-point group, or else\.$"):
        _plugins.get_plugin(GROUP, "c", kind="widget", alternative=", or else")
    installed()
    with pytest.raises(ValueError, match=r"Available widgets: \(none\)"):
        _plugins.get_plugin(GROUP, "c", kind="widget")
