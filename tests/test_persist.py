"""Portable models: device-safe pickles, save/load without pickle, fitted state that stays fixed."""

import json
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Checkpoint, EarlyStopping

import skface
from skface._persist import FORMAT_VERSION, ModelFormatError
from skface.estimators import (
    CenterLossEmbedder,
    ConvSDAEFeatures,
    DBNReconstructor,
    KeypointRegressor,
    SDAEClassifier,
    SDAERegressor,
)
from skface.preprocessing import LocalContrastNormalizer

from ._pickle_scan import raw_storages

rng = np.random.RandomState(0)
X = rng.rand(32, 16, 16, 3).astype(np.float32)
LABELS = np.repeat(np.arange(4), 8)
POINTS = rng.rand(32, 5, 2) * 16


def _encoder(**kw):
    return ConvSDAEFeatures((4, 8), pretrain_epochs=1, batch_size=16, random_state=0, **kw)


# name -> (estimator factory, target, output method); small enough for seconds on a CPU.
CASES = {
    "DBNReconstructor": (
        lambda: DBNReconstructor((8, 4), pretrain_epochs=1, finetune_epochs=1,
                                 random_state=0), None, "transform"),
    "ConvSDAEFeatures": (
        lambda: _encoder(feature_layers="all", test_flip=True), None, "transform"),
    "SDAEClassifier": (
        lambda: SDAEClassifier(_encoder(), max_epochs=1, batch_size=16, random_state=0),
        LABELS % 2, "predict_proba"),
    "SDAERegressor": (
        lambda: SDAERegressor(_encoder(), max_epochs=1, batch_size=16, random_state=0),
        LABELS.astype(float), "predict"),
    "KeypointRegressor": (
        lambda: KeypointRegressor((4, 8), convs_per_layer=1, input_size=16, pretrain="sdae",
                                  pretrain_epochs=1, max_epochs=1, batch_size=16,
                                  random_state=0), POINTS, "predict"),
    "CenterLossEmbedder": (
        lambda: CenterLossEmbedder("small_cnn", backbone_params={"width": 2}, embedding_dim=8,
                                   max_epochs=1, batch_size=16, random_state=0),
        LABELS, "transform"),
}


def _fit(name):
    factory, target, method = CASES[name]
    est = factory()
    return (est.fit(X) if target is None else est.fit(X, target)), method


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fitted(one_torch_thread):
    return {name: _fit(name) for name in CASES}


# -- pickles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_pickle_fitted_estimator_no_raw_storages(fitted, name):
    est, _ = fitted[name]
    assert raw_storages(est) == 0


def test_pickle_pipeline_and_frozen_encoder_no_raw_storages(fitted):
    encoder, _ = fitted["ConvSDAEFeatures"]
    pipe = make_pipeline(_encoder(), LogisticRegression(max_iter=200)).fit(X, LABELS)
    head = SDAEClassifier(FrozenEstimator(encoder), max_epochs=1, random_state=0)
    head.fit(X, LABELS % 2)
    assert raw_storages(pipe) == 0
    assert raw_storages(head) == 0


def test_pickle_scan_counts_a_plain_tensor():
    # The scan itself can fail: a tensor outside skorch's path is counted.
    assert raw_storages({"weights": torch.zeros(3), "more": [torch.ones(2)]}) == 2


def test_pickle_loaded_net_module_param_is_class(fitted):
    est, _ = fitted["KeypointRegressor"]
    loaded = pickle.loads(pickle.dumps(est))
    assert isinstance(loaded.net_.module, type)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_joblib_pipeline_round_trip_same_predictions(tmp_path):
    pipe = make_pipeline(_encoder(), LogisticRegression(max_iter=200)).fit(X, LABELS)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    again = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))


# -- save / load -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_load_same_outputs_params_and_fitted_state(fitted, name, tmp_path):
    est, method = fitted[name]
    path = est.save(tmp_path / f"{name}.skface")
    loaded = skface.load(path, device="cpu")
    assert type(loaded) is type(est)
    assert loaded.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert repr(loaded) == repr(est)
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))
    assert loaded.device_ == "cpu"
    assert len(loaded.net_.history) == len(est.net_.history)


def test_save_load_fresh_process_identical_outputs(fitted, tmp_path):
    expected = {}
    for name, (est, method) in fitted.items():
        est.save(tmp_path / f"{name}.skface")
        expected[name] = getattr(est, method)(X)
    np.save(tmp_path / "X.npy", X)
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import skface
        X = np.load({str(tmp_path / 'X.npy')!r})
        methods = {json.dumps({n: m for n, (_, _, m) in CASES.items()})}
        for name, method in methods.items():
            model = skface.load({str(tmp_path)!r} + "/" + name + ".skface", device="cpu")
            np.save({str(tmp_path)!r} + "/" + name + ".out.npy", getattr(model, method)(X))
        # Loading unpickles nothing: the pickle module's loaders are never called.
        print("loaded")
    """)
    blocker = textwrap.dedent("""
        import pickle
        def _refuse(*args, **kwargs):
            raise AssertionError("skface.load unpickled something")
        pickle.load = pickle.loads = _refuse
    """)
    result = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name, out in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.out.npy"), out)


def test_save_unfitted_estimator_loads_unfitted(tmp_path):
    est = _encoder(pooling="avg", feature_layers="top")
    loaded = skface.load(est.save(tmp_path / "unfitted.skface"))
    assert repr(loaded) == repr(est)
    assert not hasattr(loaded, "net_")
    assert loaded.fit(X).transform(X).shape == (32, 8)


def test_save_tuple_params_stay_tuples(fitted, tmp_path):
    est, _ = fitted["ConvSDAEFeatures"]
    loaded = skface.load(est.save(tmp_path / "m.skface"))
    assert loaded.layer_channels == (4, 8)
    assert loaded.image_layout_ == est.image_layout_


def test_save_callbacks_warn_not_saved(tmp_path):
    est = _encoder(callbacks=[EarlyStopping(monitor="train_loss")]).fit(X)
    with pytest.warns(UserWarning, match="callbacks are training-time objects"):
        path = est.save(tmp_path / "m.skface")
    assert skface.load(path).callbacks is None


def test_save_frozen_encoder_head_round_trip(fitted, tmp_path):
    encoder, _ = fitted["ConvSDAEFeatures"]
    head = SDAEClassifier(FrozenEstimator(encoder), max_epochs=1, random_state=0)
    head.fit(X, LABELS % 2)
    loaded = skface.load(head.save(tmp_path / "head.skface"))
    assert isinstance(loaded.encoder, FrozenEstimator)
    np.testing.assert_array_equal(loaded.encoder.transform(X), encoder.transform(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))


def test_save_local_contrast_normalizer_round_trip(tmp_path):
    lcn = LocalContrastNormalizer(sigma=1.0).fit(X)
    loaded = skface.load(skface.save(lcn, tmp_path / "lcn.skface"))
    np.testing.assert_array_equal(loaded.transform(X), lcn.transform(X))


def test_loaded_model_in_pipeline_with_sklearn_head(fitted, tmp_path):
    encoder, _ = fitted["ConvSDAEFeatures"]
    loaded = skface.load(encoder.save(tmp_path / "enc.skface"))
    pipe = make_pipeline(FrozenEstimator(loaded), LogisticRegression(max_iter=500))
    pipe.fit(X, LABELS)
    reference = LogisticRegression(max_iter=500).fit(encoder.transform(X), LABELS)
    np.testing.assert_array_equal(pipe.predict(X), reference.predict(encoder.transform(X)))


def test_save_sklearn_estimator_refused(tmp_path):
    with pytest.raises(TypeError, match="not an skface estimator"):
        skface.save(LogisticRegression(), tmp_path / "lr.skface")


def test_save_unsavable_param_names_it(tmp_path):
    est = _encoder()
    est.batch_size = object()
    with pytest.raises(TypeError, match=r"estimator\.batch_size"):
        est.save(tmp_path / "m.skface")
    assert not (tmp_path / "m.skface").exists()


# -- what a file may not do ------------------------------------------------------------


def _header(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        # Copies: older safetensors hand out views of the mapped file, which the
        # rewrite below truncates (a bus error on the next read).
        tensors = {key: f.get_tensor(key).clone() for key in f.keys()}
        return json.loads(f.metadata()["skface"]), tensors


def _rewrite(path, spec, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"skface": json.dumps(spec)})


def test_load_pickle_file_refused(fitted, tmp_path):
    est, _ = fitted["DBNReconstructor"]
    for name, writer in (("pickle", pickle.dump), ("torch", torch.save)):
        path = tmp_path / f"model.{name}"
        with open(path, "wb") as f:
            writer(est, f)
        with pytest.raises(ModelFormatError, match="pickles are never loaded"):
            skface.load(path)


def test_load_class_outside_skface_refused_never_imported(fitted, tmp_path, monkeypatch):
    est, _ = fitted["DBNReconstructor"]
    path = est.save(tmp_path / "m.skface")
    spec, tensors = _header(path)
    calls = []
    monkeypatch.setattr("os.system", lambda *a: calls.append(a))
    for bad in ("os:system", "subprocess:Popen", "builtins:eval"):
        spec["estimator"]["class"] = bad
        _rewrite(path, spec, tensors)
        with pytest.raises(ModelFormatError, match="refusing to import"):
            skface.load(path)
    spec, _ = _header(est.save(tmp_path / "m2.skface"))
    spec["estimator"]["fitted"]["net_"]["__net__"]["params"]["criterion"] = {
        "__class__": "os:system"}
    _rewrite(path, spec, tensors)
    with pytest.raises(ModelFormatError, match="refusing to import"):
        skface.load(path)
    assert calls == []


def test_load_newer_format_refused_says_upgrade(fitted, tmp_path):
    est, _ = fitted["DBNReconstructor"]
    path = est.save(tmp_path / "m.skface")
    spec, tensors = _header(path)
    spec["format_version"] = FORMAT_VERSION + 1
    spec["skface_version"] = "9.0"
    _rewrite(path, spec, tensors)
    with pytest.raises(ModelFormatError, match=r"skface 9\.0.*Upgrade skface"):
        skface.load(path)


def test_load_missing_tensor_and_plain_safetensors_refused(fitted, tmp_path):
    from safetensors.torch import save_file

    est, _ = fitted["DBNReconstructor"]
    path = est.save(tmp_path / "m.skface")
    spec, tensors = _header(path)
    del tensors[sorted(tensors)[0]]
    _rewrite(path, spec, tensors)
    with pytest.raises(ModelFormatError, match="is missing"):
        skface.load(path)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFormatError, match="not an skface model"):
        skface.load(tmp_path / "plain.safetensors")


def test_save_header_records_each_tensor_dtype_shape_sha256(fitted, tmp_path):
    import hashlib

    est, _ = fitted["KeypointRegressor"]
    spec, tensors = _header(est.save(tmp_path / "m.skface"))
    assert spec["format_version"] == FORMAT_VERSION == 2
    assert spec["tensors"].keys() == tensors.keys()
    for key, tensor in tensors.items():
        record = spec["tensors"][key]
        assert record["dtype"] == str(tensor.dtype).removeprefix("torch.")
        assert record["shape"] == list(tensor.shape)
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        assert record["sha256"] == hashlib.sha256(raw).hexdigest()


def test_load_format_1_file_loads_warning_no_checksums(fitted, tmp_path):
    # A file of format 1 is a format-2 file without the tensor records.
    est, method = fitted["SDAEClassifier"]
    path = est.save(tmp_path / "m.skface")
    spec, tensors = _header(path)
    spec["format_version"] = 1
    del spec["tensors"]
    _rewrite(path, spec, tensors)
    with pytest.warns(UserWarning, match="format 1, which records no checksums"):
        loaded = skface.load(path, device="cpu")
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))


def test_save_full_disk_write_error_names_path_previous_file_kept(tmp_path):
    # ulimit -f: the write fails with EFBIG (Python ignores SIGXFSZ), as on a full disk.
    path = tmp_path / "m.skface"
    _encoder().save(path)  # the previous model: unfitted, under 1 KiB
    before = path.read_bytes()
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from skface._atomic import WriteError
        from skface.estimators import ConvSDAEFeatures
        X = np.random.RandomState(0).rand(16, 16, 16, 3).astype(np.float32)
        est = ConvSDAEFeatures((4, 8), pretrain_epochs=1, batch_size=16, random_state=0).fit(X)
        try:
            est.save({str(path)!r})
        except WriteError as exc:
            print(exc)
            sys.exit(3)
    """)
    result = subprocess.run(["bash", "-c", 'ulimit -f 8; exec "$0" -c "$1"', sys.executable,
                             code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        f"Could not write the model file {path}: the disk is full (or a file-size limit was "
        "reached); the previous file is unchanged.")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skface"]  # no partial file left


def test_save_through_symlink_replaces_target_keeps_link(fitted, tmp_path):
    est, method = fitted["ConvSDAEFeatures"]
    target = tmp_path / "models" / "encoder.skface"
    _encoder().save(target)
    link = tmp_path / "current.skface"
    link.symlink_to(target)
    est.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    loaded = skface.load(target, device="cpu")
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_on_cuda_without_cuda_raises_saying_use_cpu(fitted, tmp_path):
    est, _ = fitted["DBNReconstructor"]
    path = est.save(tmp_path / "m.skface")
    with pytest.raises(ValueError, match="device='cpu'"):
        skface.load(path, device="cuda")
    assert skface.load(path, device="auto").device_ == "cpu"


def test_load_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        skface.load(tmp_path / "nothing.skface")


# -- fitted means fixed ----------------------------------------------------------------

# Every parameter that shapes transform/predict output, set to another value after fit.
CHANGED_AFTER_FIT = {
    "ConvSDAEFeatures": dict(pooling="avg", feature_layers="top", test_flip=False,
                             input_size=8, color=False, layer_channels=(2,)),
    "CenterLossEmbedder": dict(test_flip=False, crop_size=8, embedding_dim=3),
    "KeypointRegressor": dict(input_size=8, color=False, pooling="flatten"),
    "DBNReconstructor": dict(hidden_layer_sizes=(3,), visible_units="bernoulli"),
    "SDAEClassifier": dict(encoder=_encoder(pooling="avg")),
    "SDAERegressor": dict(encoder=_encoder(pooling="avg"), loss="absolute_error"),
}


@pytest.mark.parametrize("name", sorted(CHANGED_AFTER_FIT))
def test_set_params_after_fit_output_unchanged_until_refit(fitted, name):
    est, method = fitted[name]
    est = pickle.loads(pickle.dumps(est))
    before = getattr(est, method)(X)
    for param, value in CHANGED_AFTER_FIT[name].items():
        est.set_params(**{param: value})
        np.testing.assert_array_equal(getattr(est, method)(X), before, err_msg=param)


def test_set_params_after_fit_refit_applies_the_change(fitted):
    est, _ = fitted["ConvSDAEFeatures"]
    est = clone(est).set_params(pooling="avg", feature_layers="top").fit(X)
    assert est.transform(X).shape == (32, 8)


# -- callbacks -------------------------------------------------------------------------


def _stops_early():
    # No epoch can improve the loss by 99 %: training stops after patience + 1 epochs.
    return EarlyStopping(monitor="train_loss", patience=1, threshold=0.99)


EPOCHS = {
    "DBNReconstructor": dict(pretrain_epochs=6, finetune_epochs=6),
    "ConvSDAEFeatures": dict(pretrain_epochs=6, finetune_epochs=6),
    "SDAEClassifier": dict(max_epochs=6),
    "SDAERegressor": dict(max_epochs=6),
    "KeypointRegressor": dict(max_epochs=6, pretrain=None),
    "CenterLossEmbedder": dict(max_epochs=6),
}


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_early_stopping_on_train_loss_stops_every_stage_callbacks_untouched(name):
    factory, target, _ = CASES[name]
    stopper = _stops_early()
    before = repr(sorted(vars(stopper).items()))
    est = factory().set_params(callbacks=[stopper], **EPOCHS[name])
    est.fit(X) if target is None else est.fit(X, target)
    assert len(est.net_.history) == 2  # of 6
    for history in getattr(est, "pretrain_histories_", []):
        assert len(history) == 2
    for net in getattr(est, "rbm_nets_", []):
        assert len(net.history) == 2
    assert repr(sorted(vars(stopper).items())) == before  # the caller's object is untouched
    assert dict(est.net_.callbacks_)["EarlyStopping"].misses_ == 1


@pytest.mark.parametrize("callback", [EarlyStopping(), Checkpoint()])
@pytest.mark.parametrize("name", ["DBNReconstructor", "ConvSDAEFeatures", "CenterLossEmbedder"])
def test_callback_watching_validation_score_raises_saying_what_to_do(name, callback):
    factory, target, _ = CASES[name]
    est = factory().set_params(callbacks=[callback])
    with pytest.raises(ValueError, match="monitor='train_loss'"):
        est.fit(X) if target is None else est.fit(X, target)


# -- fitted on CUDA, used on a CPU-only machine ----------------------------------------


def _nets(obj, seen=None):
    """Every skorch net inside an estimator (its own, its nested estimators')."""
    from sklearn.base import BaseEstimator
    from skorch import NeuralNet

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, NeuralNet):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [net for item in obj for net in _nets(item, seen)]
    if isinstance(obj, BaseEstimator):
        return [net for value in vars(obj).values() for net in _nets(value, seen)]
    return []


@pytest.mark.parametrize("name", sorted(CASES))
def test_pickle_recorded_on_cuda_loads_on_cpu_only_machine(fitted, name, monkeypatch):
    from skorch.exceptions import DeviceWarning

    est, method = fitted[name]
    copy = pickle.loads(pickle.dumps(est))
    nets = _nets(copy)
    assert nets
    for net in nets:
        net.device = "cuda"  # as a net fitted on CUDA records it
    blob = pickle.dumps(copy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(blob)
    assert all(str(net.device) == "cpu" for net in _nets(loaded))
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fitted_on_cuda_pickle_and_file_predict_in_cpu_only_process(tmp_path):
    import os

    expected = {}
    for name, (factory, target, method) in CASES.items():
        est = factory().set_params(device="cuda")
        est.fit(X) if target is None else est.fit(X, target)
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(est))
        est.save(tmp_path / f"{name}.skface")
        expected[name] = getattr(est, method)(X)
    np.save(tmp_path / "X.npy", X)
    code = textwrap.dedent(f"""
        import pickle, numpy as np, skface, torch
        assert not torch.cuda.is_available()
        X = np.load({str(tmp_path / 'X.npy')!r})
        for name, method in {json.dumps({n: m for n, (_, _, m) in CASES.items()})}.items():
            base = {str(tmp_path)!r} + "/" + name
            with open(base + ".pkl", "rb") as f:
                np.save(base + ".pkl.npy", getattr(pickle.load(f), method)(X))
            np.save(base + ".file.npy", getattr(skface.load(base + ".skface"), method)(X))
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    for name, out in expected.items():
        for kind in ("pkl", "file"):
            got = np.load(tmp_path / f"{name}.{kind}.npy")
            # bf16 autocast on CUDA, float32 on the CPU.
            np.testing.assert_allclose(got, out, rtol=0.05, atol=0.05 * np.abs(out).max())


def test_load_file_from_before_contrast_and_feature_scale_keeps_old_behaviour(tmp_path):
    # A ConvSDAEFeatures saved before these parameters existed: raw pixels, raw codes.
    X = np.random.RandomState(0).rand(24, 12, 12, 3).astype(np.float32)
    est = _encoder(contrast=None, feature_scale=None).fit(X)
    path = est.save(tmp_path / "old.skface")
    spec, tensors = _header(path)
    node = spec["estimator"]
    for name in ("contrast", "feature_scale"):
        del node["params"][name]
    for name in ("contrast_", "feature_scale_", "feature_mean_", "feature_gain_"):
        node["fitted"].pop(name)
    _rewrite(path, spec, tensors)
    loaded = skface.load(path, device="cpu")
    assert loaded.get_params()["contrast"] is None
    assert loaded.get_params()["feature_scale"] is None
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def test_unpickle_from_before_contrast_and_feature_scale_keeps_old_behaviour():
    X = np.random.RandomState(0).rand(24, 12, 12, 3).astype(np.float32)
    est = _encoder(contrast=None, feature_scale=None).fit(X)
    for name in ("contrast", "feature_scale", "contrast_", "feature_scale_",
                 "feature_mean_", "feature_gain_"):
        del est.__dict__[name]
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.get_params()["contrast"] is None and clone(loaded).feature_scale is None
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def test_load_path_like_typo_raises_file_not_found_not_unknown_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No model file at dbn\.skfce .*Check the file name"):
        skface.load("dbn.skfce")


def test_describe_header_only_shows_class_input_shape_and_info(tmp_path, monkeypatch):
    from skface._persist import describe

    X = np.random.RandomState(0).rand(20, 12, 12).astype(np.float32)
    est = ConvSDAEFeatures(layer_channels=(2,), pretrain_epochs=1, batch_size=8,
                           random_state=0).fit(X)
    path = skface.save(est, tmp_path / "m.skface", info={"trained_on": "noise, 12x12"})
    # Nothing is built: describe never imports or constructs the estimator class.
    monkeypatch.setattr(ConvSDAEFeatures, "__init__", lambda *a, **k: pytest.fail("built"))
    info = describe(path)
    assert info["class"] == "skface.estimators._sdae:ConvSDAEFeatures" and info["fitted"]
    assert info["input"]["image_shape_"] == [12, 12, 1]
    assert info["info"] == {"trained_on": "noise, 12x12"}
    assert info["format_version"] == skface._persist.FORMAT_VERSION
    assert info["n_values"] > 0 and info["bytes"] == path.stat().st_size


def test_save_info_not_plain_raises_type_error_naming_key(tmp_path):
    with pytest.raises(TypeError, match=r"info\['data'\] must be a str"):
        skface.save(ConvSDAEFeatures(), tmp_path / "m.skface", info={"data": [1, 2]})


def test_describe_not_a_model_file_raises_model_format_error(tmp_path):
    from skface._persist import describe

    bad = tmp_path / "x.skface"
    bad.write_bytes(b"not a model")
    with pytest.raises(skface.ModelFormatError, match="not an skface model file"):
        describe(bad)
