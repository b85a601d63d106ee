"""One list of estimator classes (skface._registry): everything that lists estimators reads it."""

import importlib.util
import sys
from pathlib import Path

import pytest

import skface
from skface import _registry

ROOT = Path(__file__).resolve().parents[1]
TOY = _registry.EstimatorEntry("ToyScaler", "tests._toy_estimator", "skface.estimators", False)


@pytest.fixture
def toy_registered(monkeypatch):
    """The registry with one more estimator, added the way a new one is: one entry."""
    monkeypatch.setattr(_registry, "ESTIMATORS", (*_registry.ESTIMATORS, TOY))
    return TOY


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_every_entry_resolves_to_its_class_in_its_package():
    for entry in _registry.ESTIMATORS:
        cls = _registry.estimator_class(entry.name)
        assert cls.__name__ == entry.name and cls.__module__ == entry.module
        package = importlib.import_module(entry.package)
        assert getattr(package, entry.name) is cls
        assert entry.name in package.__all__
        assert getattr(skface, entry.name) is cls and entry.name in dir(skface)
        assert ("device" in cls._get_param_names()) == entry.on_device


def test_registry_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError):
        _registry.estimator_class("NoSuchEstimator")


def test_registry_toy_estimator_one_entry_exported_everywhere(toy_registered, tmp_path):
    from tests._toy_estimator import ToyScaler

    # The package exports.
    assert skface.ToyScaler is ToyScaler and "ToyScaler" in dir(skface)
    assert skface.estimators.ToyScaler is ToyScaler
    assert "ToyScaler" in _registry.estimator_names("skface.estimators", on_device=False)
    # The API reference: a summary row and a page, written by docs/conf.py's generator.
    conf = _load(ROOT / "docs" / "conf.py", "_skface_docs_conf")
    written = conf.write_estimator_pages(tmp_path, _registry.estimator_names("skface.estimators"))
    assert tmp_path / "skface.estimators.ToyScaler.rst" in written
    assert ".. autoclass:: ToyScaler" in (tmp_path / "skface.estimators.ToyScaler.rst").read_text()
    assert "   ToyScaler\n" in (tmp_path / "estimators_list.rst").read_text()
    # Loading the configuration wrote nothing into the real docs folder.
    assert not (ROOT / "docs" / "api" / "skface.estimators.ToyScaler.rst").exists()
    # The scikit-learn checks: the coverage test names the estimator that has no
    # configuration there yet (the one other place a new estimator must appear).
    from tests.test_common import uncovered_estimators

    assert uncovered_estimators() == ["ToyScaler"]


def test_registry_toy_torch_estimator_reaches_device_check_and_is_named(monkeypatch):
    toy = TOY._replace(on_device=True)
    monkeypatch.setattr(_registry, "ESTIMATORS", (*_registry.ESTIMATORS, toy))
    check = _load(ROOT / "bench" / "device_check.py", "_skface_device_check")
    assert check.ESTIMATORS[-1] == "ToyScaler"
    assert set(check.ESTIMATORS) == set(_registry.estimator_names("skface.estimators",
                                                                   on_device=True))
    with pytest.raises(ValueError, match="ToyScaler is registered .* no device-check"):
        check._build(skface.estimators, "ToyScaler", "cpu", 1, True)


def test_registry_without_toy_docs_conf_not_left_in_sys_modules():
    assert "_skface_docs_conf" not in sys.modules
