"""Tests for DBNReconstructor and the shared estimator machinery it runs on."""

import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback
from skorch.exceptions import DeviceWarning

from skface.estimators import DBNReconstructor
from skface.nn import RBM


def _faces(n=60, size=8, channels=None, seed=0):
    """Smooth blobs with a shared structure: a toy stand-in for aligned faces."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    centre = 0.5 + 0.15 * rng.randn(n, 2)
    width = 0.2 + 0.05 * rng.rand(n, 1, 1)
    images = np.exp(
        -((xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2) / width**2
    )
    images = (0.8 * images + 0.1 * rng.rand(n, size, size)).astype(np.float32)
    if channels:
        images = np.repeat(images[..., None], channels, axis=-1)
    return images


def _dbn(**params):
    params = {
        "hidden_layer_sizes": (16, 4),
        "pretrain_epochs": 3,
        "finetune_epochs": 5,
        "batch_size": 20,
        "random_state": 0,
        **params,
    }
    return DBNReconstructor(**params)


@pytest.fixture(scope="module")
def faces():
    return _faces()


@pytest.fixture(scope="module")
def fitted(faces):
    return _dbn().fit(faces)


# -- fit, transform, inverse_transform, score --------------------------------------


def test_dbn_fit_sets_fitted_attributes(fitted):
    assert fitted.n_components_ == 4
    assert fitted.image_shape_ == (8, 8, 1)
    assert fitted.n_features_in_ == 64
    assert len(fitted.rbm_nets_) == 2
    assert isinstance(fitted.rbm_nets_[0].module_, RBM)
    assert fitted.rbm_nets_[0].module_.visible == "gaussian"
    assert fitted.rbm_nets_[1].module_.hidden == "gaussian"
    assert len(fitted.net_.history) == 5
    assert len(fitted.rbm_nets_[0].history) == 3
    assert fitted.device_ == "cpu"


def test_dbn_init_stores_params_only():
    dbn = DBNReconstructor(hidden_layer_sizes=(3,), device="nonsense", pretrain_lr=-1)
    assert dbn.get_params()["device"] == "nonsense"
    assert not [k for k in vars(dbn) if k.endswith("_")]


def test_dbn_transform_returns_codes(fitted, faces):
    codes = fitted.transform(faces)
    assert codes.shape == (60, 4)
    assert codes.dtype == np.float32
    assert fitted.transform(faces.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize(
    "layout", ["grey", "channels_last", "flat", "flat_image_shape", "rgb", "rgb_flat"]
)
def test_dbn_inverse_transform_gives_fit_layout(layout):
    images = _faces(30, channels=3 if layout.startswith("rgb") else None)
    params = {}
    if layout == "channels_last":
        images = images[..., None]
    elif layout in ("flat", "rgb_flat"):
        images = images.reshape(30, -1)
    elif layout == "flat_image_shape":
        images, params = images.reshape(30, -1), {"image_shape": (8, 8)}
    dbn = _dbn(finetune_epochs=1, **params).fit(images)
    recon = dbn.inverse_transform(dbn.transform(images))
    assert recon.shape == images.shape
    assert dbn.reconstruct(images).shape == images.shape
    assert dbn.sample(2).shape == (2,) + images.shape[1:]


def test_dbn_reconstruct_takes_layout_of_its_input(fitted, faces):
    recon_grey = fitted.reconstruct(faces)
    recon_flat = fitted.reconstruct(faces.reshape(60, -1))
    assert recon_flat.shape == (60, 64)
    np.testing.assert_allclose(recon_flat, recon_grey.reshape(60, -1), rtol=1e-6)


def test_dbn_score_is_negative_mse(fitted, faces):
    recon = fitted.reconstruct(faces)
    assert fitted.score(faces) == pytest.approx(-np.mean((faces - recon) ** 2), rel=1e-5)
    assert fitted.score(faces) < 0


def test_dbn_uint8_input_scored_on_unit_scale(fitted, faces):
    as_uint8 = np.round(faces * 255).astype(np.uint8)
    assert fitted.score(as_uint8) == pytest.approx(fitted.score(as_uint8 / 255.0), rel=1e-5)


def test_dbn_finetuning_lowers_reconstruction_error(faces):
    pretrained = _dbn(finetune_epochs=0).fit(faces)
    finetuned = _dbn(finetune_epochs=30, finetune_lr=3e-3).fit(faces)
    assert len(pretrained.net_.history) == 0
    assert finetuned.score(faces) > pretrained.score(faces)
    # Better than the mean face, the trivial reconstruction.
    assert -finetuned.score(faces) < 0.8 * np.mean((faces - faces.mean(0)) ** 2)


def test_dbn_bernoulli_visible_and_sigmoid_code_fit(faces):
    dbn = _dbn(visible_units="bernoulli", code_units="sigmoid", persistent=True, cd_k=2)
    codes = dbn.fit(faces).transform(faces)
    assert 0 <= codes.min() and codes.max() <= 1
    recon = dbn.reconstruct(faces)
    assert 0 <= recon.min() and recon.max() <= 1


def test_dbn_bernoulli_visible_out_of_range_raises(faces):
    with pytest.raises(ValueError, match=r"needs pixel values in \[0, 1\]"):
        _dbn(visible_units="bernoulli").fit(faces * 2)


def test_dbn_finetune_weight_decay_reaches_adamw(fitted):
    optimizer = fitted.net_.optimizer_
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.2


def test_dbn_pretrain_lr_per_layer_used():
    dbn = _dbn(pretrain_lr=[0.01, 0.002]).fit(_faces(20))
    assert [net.lr for net in dbn.rbm_nets_] == [0.01, 0.002]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": ()}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden layer size"),
        ({"visible_units": "relu"}, "visible_units"),
        ({"pretrain_epochs": -1}, "pretrain_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"finetune_weight_decay": -0.1}, "finetune_weight_decay"),
        ({"pretrain_lr": [0.1, 0.1, 0.1]}, "one per hidden layer"),
        ({"device": "nonsense"}, "device"),
        ({"verbose": -1}, "verbose"),
    ],
)
def test_dbn_bad_params_raise_in_fit(params, match, faces):
    with pytest.raises(ValueError, match=match):
        _dbn(**params).fit(faces)


# -- input errors ---------------------------------------------------------------------


def test_dbn_other_image_size_than_fit_raises(fitted):
    with pytest.raises(ValueError, match=r"fitted on images of shape.*\(8, 8, 1\)"):
        fitted.transform(_faces(5, size=10))


def test_dbn_nan_input_raises(faces):
    bad = faces.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _dbn().fit(bad)


def test_dbn_inverse_transform_images_instead_of_codes_raises(fitted, faces):
    with pytest.raises(ValueError, match="takes codes"):
        fitted.inverse_transform(faces.reshape(60, -1))


def test_dbn_unfitted_transform_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _dbn().transform(_faces(3))


# -- seeding ----------------------------------------------------------------------------


def test_dbn_same_seed_gives_identical_results(faces):
    a = _dbn(persistent=True).fit(faces)
    b = _dbn(persistent=True).fit(faces)
    np.testing.assert_array_equal(a.transform(faces), b.transform(faces))
    np.testing.assert_array_equal(a.sample(3, random_state=1), b.sample(3, random_state=1))


def test_dbn_different_seed_gives_different_results(faces):
    a = _dbn(random_state=0).fit(faces)
    b = _dbn(random_state=1).fit(faces)
    assert not np.allclose(a.transform(faces), b.transform(faces))


def test_dbn_fit_leaves_global_torch_rng_alone(faces):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _dbn().fit(faces)
    assert torch.equal(torch.rand(3), expected)


# -- skorch surface -----------------------------------------------------------------------


def test_dbn_callbacks_reach_finetuning_net(faces):
    class CountEpochs(Callback):
        def initialize(self):
            self.count = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.count += 1

    counter = CountEpochs()
    dbn = _dbn(callbacks=[("count", counter)]).fit(faces)
    assert dict(dbn.net_.callbacks_)["count"].count == 5


def test_dbn_verbose_shows_progress_bars(faces, capsys):
    _dbn(verbose=1).fit(faces)
    err = capsys.readouterr().err
    assert "RBM 1/2" in err and "RBM 2/2" in err and "fine-tune" in err


def test_dbn_components_are_first_layer_filters(fitted):
    components = fitted.components_
    assert components.shape == (16, 64)
    weight = fitted.net_.module_.encoder[0].weight.detach().numpy()
    np.testing.assert_array_equal(components, weight)


def test_dbn_get_feature_names_out_prefixes_class(fitted):
    assert list(fitted.get_feature_names_out()) == [f"dbnreconstructor{i}" for i in range(4)]


# -- persistence ------------------------------------------------------------------------------


def test_dbn_pickle_round_trip_predicts_same(fitted, faces):
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(faces), fitted.transform(faces))
    np.testing.assert_array_equal(
        loaded.sample(2, random_state=0), fitted.sample(2, random_state=0)
    )


def test_dbn_joblib_round_trip_predicts_same(fitted, faces, tmp_path):
    joblib.dump(fitted, tmp_path / "dbn.joblib")
    loaded = joblib.load(tmp_path / "dbn.joblib")
    np.testing.assert_array_equal(loaded.reconstruct(faces), fitted.reconstruct(faces))


def test_dbn_pickled_for_cuda_loads_on_cpu(fitted, faces, monkeypatch):
    # A model fitted on CUDA records device "cuda" in its nets; on a machine
    # without CUDA, skorch maps the weights to the CPU when unpickling.
    dbn = pickle.loads(pickle.dumps(fitted))
    for net in [dbn.net_, *dbn.rbm_nets_]:
        net.device = "cuda"
    blob = pickle.dumps(dbn)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(blob)
    assert all(str(net.device) == "cpu" for net in [loaded.net_, *loaded.rbm_nets_])
    np.testing.assert_array_equal(loaded.transform(faces), fitted.transform(faces))
    assert loaded.sample(2).shape == (2, 8, 8)


@pytest.mark.gpu
def test_dbn_fitted_on_cuda_predicts_on_cpu_only_machine(faces, tmp_path):
    dbn = _dbn(device="cuda").fit(faces)
    assert dbn.net_.module_.encoder[0].weight.is_cuda
    path = tmp_path / "dbn.pkl"
    path.write_bytes(pickle.dumps(dbn))
    np.save(tmp_path / "faces.npy", faces)
    expected = dbn.transform(faces)
    code = (
        "import pickle, sys, warnings, numpy as np; warnings.simplefilter('ignore');"
        f"dbn = pickle.loads(open({str(path)!r}, 'rb').read());"
        f"codes = dbn.transform(np.load({str(tmp_path / 'faces.npy')!r}));"
        f"np.save({str(tmp_path / 'codes.npy')!r}, codes); print(dbn.net_.device)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"
    # bf16 autocast on the GPU against float32 on the CPU.
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), expected, atol=0.05, rtol=0.05)


# -- scikit-learn composition ------------------------------------------------------------------


def test_dbn_clone_copies_params_not_fit(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "net_")


def test_dbn_set_params_changes_fit(faces):
    dbn = _dbn().set_params(hidden_layer_sizes=(8, 3))
    assert dbn.fit(faces).transform(faces).shape == (60, 3)


def test_dbn_in_pipeline_after_scaler(faces):
    from sklearn.preprocessing import FunctionTransformer

    flat = faces.reshape(60, -1)
    pipe = make_pipeline(FunctionTransformer(lambda X: X * 0.5), _dbn(), PCA(2))
    assert pipe.fit_transform(flat).shape == (60, 2)


def test_dbn_grid_search_parallel_picks_a_model(faces):
    search = GridSearchCV(
        _dbn(finetune_epochs=2),
        {"hidden_layer_sizes": [(8, 2), (16, 4)]},
        cv=2,
        n_jobs=2,
    )
    search.fit(faces)
    assert search.best_params_["hidden_layer_sizes"] in [(8, 2), (16, 4)]
    assert np.isfinite(search.best_score_) and search.best_score_ < 0


# -- real data -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.realdata
def test_dbn_olivetti_reconstructs_better_than_mean_face(shared_data):
    faces = np.load(shared_data / "olivetti" / "olivetti_faces_uint8.npy")
    small = faces[:, ::4, ::4]  # 16x16
    train, test = small[:300], small[300:]
    dbn = DBNReconstructor(
        (256, 64, 16), pretrain_epochs=10, finetune_epochs=100, finetune_lr=1e-3,
        batch_size=20, random_state=0,
    ).fit(train)
    mean_face_mse = np.mean((test / 255.0 - train.mean(0) / 255.0) ** 2)
    assert -dbn.score(test) < 0.6 * mean_face_mse
