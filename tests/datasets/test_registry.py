import sys
import textwrap

import pytest

from skface import _plugins
from skface.cli import main
from skface.datasets import fetch, get_data_home, get_dataset_info, list_datasets

BUILTIN = {
    "celeba", "facial_keypoints", "imdb_wiki", "lfw_gender", "lfw_pairs", "lfw_people",
    "olivetti_faces", "orl_faces", "utkface", "youtube_faces_keypoints",
}


@pytest.fixture
def fresh_registry():
    _plugins.clear_cache()
    yield
    _plugins.clear_cache()


def _install_distribution(site, name, entry_points, module_source=None):
    """Install a minimal distribution (dist-info with entry points) into ``site``."""
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[skface.datasets]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    )
    if module_source is not None:
        (site / f"{name}.py").write_text(textwrap.dedent(module_source))


def test_list_datasets_builtin_all_registered(fresh_registry):
    assert BUILTIN <= set(list_datasets())
    for name in BUILTIN:
        info = get_dataset_info(name)
        assert info.citation and info.folder


def test_fetch_unknown_name_raises_listing_available(fresh_registry):
    with pytest.raises(ValueError, match=r"Unknown dataset 'lfw_peeple'.*lfw_people.*orl_faces"):
        fetch("lfw_peeple")


def test_discover_third_party_plugin_is_fetchable(fresh_registry, tmp_path, monkeypatch):
    _install_distribution(
        tmp_path,
        "skface_demo_plugin",
        {"demo_faces": "skface_demo_plugin:fetch_demo"},
        """
        def fetch_demo(*, data_home=None, n=3):
            return list(range(n))
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "demo_faces" in list_datasets()
    assert fetch("demo_faces", n=2) == [0, 1]
    assert get_dataset_info("demo_faces") is None
    sys.modules.pop("skface_demo_plugin", None)


def test_discover_broken_plugin_warns_naming_itself_others_work(fresh_registry, tmp_path, monkeypatch):
    _install_distribution(
        tmp_path, "skface_broken_plugin", {"broken_faces": "skface_broken_plugin:fetch"},
        "raise ImportError('missing dependency dlib')\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"'broken_faces'.*skface_broken_plugin.*dlib"):
        names = list_datasets()
    assert "broken_faces" not in names
    assert BUILTIN <= set(names)


def test_discover_is_cached_across_calls(fresh_registry, monkeypatch):
    calls = []
    real = _plugins.entry_points

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(_plugins, "entry_points", counting)
    list_datasets()
    list_datasets()
    assert len(calls) == 1


def test_get_data_home_argument_beats_env_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SKFACE_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert get_data_home() == (tmp_path / "env").resolve()
    monkeypatch.delenv("SKFACE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_data_home() == (tmp_path / "skface_data").resolve()


def test_cli_datasets_lists_every_dataset_with_presence(lfw_home, capsys, fresh_registry):
    assert main(["datasets", "--data-home", str(lfw_home)]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert name in out
    line = next(l for l in out.splitlines() if l.startswith("lfw_people"))
    assert " yes " in line and "Huang" in line
    line = next(l for l in out.splitlines() if l.startswith("utkface"))
    assert " no " in line


def test_cli_fetch_unknown_name_exits_2_with_message(capsys, fresh_registry):
    assert main(["fetch", "nope"]) == 2
    assert "Available datasets" in capsys.readouterr().err
