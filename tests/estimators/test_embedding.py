"""Tests for CenterLossEmbedder: unit embeddings, warm start, reproducibility, pipelines."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skface.estimators import CenterLossEmbedder
from skface.nn.small_cnn import SmallConvNet

from ._callbacks import RecordRates


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: one thread avoids OpenMP oversubscription on shared, busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _faces(n_people=4, per_person=10, size=12, channels=None, noise=0.15, seed=0):
    """Noisy copies of one random template per person: identities a CNN can tell apart."""
    rng = np.random.RandomState(seed)
    shape = (size, size) if channels is None else (size, size, channels)
    templates = rng.rand(n_people, *shape)
    y = np.repeat(np.arange(n_people), per_person)
    X = templates[y] + noise * rng.randn(len(y), *shape)
    return np.clip(X, 0, 1).astype(np.float32), y


def _embedder(**params):
    defaults = dict(
        backbone="small_cnn", backbone_params={"width": 4}, embedding_dim=8, max_epochs=3,
        batch_size=16, random_state=0,
    )
    return CenterLossEmbedder(**{**defaults, **params})


def test_transform_returns_unit_vectors_of_embedding_dim():
    X, y = _faces(channels=3)
    Z = _embedder().fit(X, y).transform(X)
    assert Z.shape == (40, 8) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_transform_float64_input_float64_output():
    X, y = _faces()
    Z = _embedder(max_epochs=1).fit(X, y).transform(X.astype(np.float64))
    assert Z.dtype == np.float64


def test_fit_same_random_state_same_embeddings():
    X, y = _faces()
    a = _embedder(crop_size=10).fit(X, y).transform(X)
    b = _embedder(crop_size=10).fit(X, y).transform(X)
    c = _embedder(crop_size=10, random_state=1).fit(X, y).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_training_loss_falls_on_separable_identities():
    X, y = _faces(per_person=16)
    emb = _embedder(max_epochs=12, lr=0.05).fit(X, y)
    losses = emb.net_.history[:, "train_loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_fit_history_has_every_batch_loss_without_per_batch_sync():
    X, y = _faces()
    emb = _embedder(max_epochs=2).fit(X, y)
    batches = emb.net_.history[-1, "batches"]
    assert len(batches) == 3  # 40 images in batches of 16
    assert all(isinstance(b["train_loss"], float) for b in batches)
    expected = np.average([b["train_loss"] for b in batches],
                          weights=[b["train_batch_size"] for b in batches])
    assert emb.net_.history[-1, "train_loss"] == pytest.approx(expected)


def test_fit_last_batch_of_one_image_is_skipped():
    X, y = _faces(per_person=4)  # 16 images
    emb = _embedder(batch_size=15, max_epochs=1).fit(X[:16], y[:16])
    assert [b["train_batch_size"] for b in emb.net_.history[-1, "batches"]] == [15]


@pytest.mark.parametrize("schedule", ["onecycle", "constant"])
def test_fit_lr_schedule_per_batch_momentum_kept(schedule):
    X, y = _faces()  # 40 images: 3 batches of 16 per epoch
    rates = RecordRates()
    emb = _embedder(lr=0.1, momentum=0.5, lr_schedule=schedule, callbacks=[("rates", rates)])
    emb.fit(X, y)
    assert not hasattr(rates, "seen")  # the caller's callback is left as it was
    lrs, momenta = np.array(dict(emb.net_.callbacks_)["rates"].seen).T
    assert len(lrs) == 9
    np.testing.assert_array_equal(momenta, 0.5)  # the user's momentum, never cycled
    if schedule == "constant":
        np.testing.assert_array_equal(lrs, 0.1)
    else:
        assert lrs[0] == pytest.approx(0.1 / 25) and lrs[-1] == pytest.approx(0.1 / 2.5e5)
        assert lrs.max() == pytest.approx(0.1, rel=0.05)


def test_warm_start_new_identities_get_new_rows_backbone_kept():
    X, y = _faces(n_people=6)
    old = y < 4
    emb = _embedder(warm_start=True).fit(X[old], y[old])
    net = emb.net_
    backbone = {k: v.clone() for k, v in net.module_.backbone.state_dict().items()}
    head = net.module_.head.weight.detach().clone()
    # Zero epochs: only the bookkeeping of the new identities.
    emb.set_params(max_epochs=0).fit(X[~old], y[~old] + 10)
    assert emb.net_ is net
    np.testing.assert_array_equal(emb.classes_, [0, 1, 2, 3, 14, 15])
    assert emb.centers_.shape == (6, 8)
    assert net.module_.head.weight.shape == (6, 8)
    torch.testing.assert_close(net.module_.head.weight[:4].detach(), head)
    for key, value in net.module_.backbone.state_dict().items():
        torch.testing.assert_close(value, backbone[key])
    # Training continues from there, on the new identities.
    emb.set_params(max_epochs=2).fit(X[~old], y[~old] + 10)
    assert len(net.history) == 5
    assert emb.transform(X).shape == (60, 8)


def test_warm_start_false_refits_from_scratch():
    X, y = _faces()
    emb = _embedder().fit(X, y)
    net = emb.net_
    emb.fit(X, y + 5)
    assert emb.net_ is not net
    np.testing.assert_array_equal(emb.classes_, [5, 6, 7, 8])


def test_warm_start_other_image_size_raises():
    X, y = _faces()
    emb = _embedder(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        emb.fit(X[:, :10, :10], y)


def test_test_flip_embeddings_invariant_to_mirroring():
    X, y = _faces(size=14)
    emb = _embedder(crop_size=12).fit(X, y)
    np.testing.assert_allclose(emb.transform(X), emb.transform(X[:, :, ::-1]), atol=1e-5)


def test_crop_size_larger_than_images_raises():
    X, y = _faces()
    with pytest.raises(ValueError, match="crop_size=20 is larger"):
        _embedder(crop_size=20).fit(X, y)


def test_fit_single_identity_raises():
    X, y = _faces()
    with pytest.raises(ValueError, match="at least 2 identities"):
        _embedder().fit(X, np.zeros(len(X)))


@pytest.mark.parametrize(
    "param, value",
    [("lambda_center", -1.0), ("alpha_center", 2.0), ("lr_schedule", "cosine"),
     ("backbone", "no_such_net"), ("backbone_params", [1]), ("embedding_dim", 0)],
)
def test_fit_bad_parameter_raises(param, value):
    X, y = _faces()
    with pytest.raises(ValueError, match=param if param != "backbone" else "Unknown backbone"):
        _embedder(**{param: value}).fit(X, y)


def test_backbone_instance_refused_class_and_params_asked():
    X, y = _faces()
    mine = SmallConvNet(in_channels=1, embedding_dim=8, width=4)
    with pytest.raises(TypeError, match="backbone=SmallConvNet"):
        _embedder(backbone=mine, backbone_params=None).fit(X, y)
    emb = _embedder(backbone=SmallConvNet, backbone_params={"width": 4}).fit(X, y)
    assert isinstance(emb.net_.module_.backbone, SmallConvNet)


def test_lambda_center_zero_centers_still_tracked():
    X, y = _faces()
    emb = _embedder(lambda_center=0.0).fit(X, y)
    assert np.abs(emb.centers_).sum() > 0


def test_pipeline_with_svc_identifies_people():
    X, y = _faces(n_people=4, per_person=12, size=12, channels=3)
    pipe = make_pipeline(_embedder(max_epochs=6, lr=0.05), SVC())
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.5  # chance is 0.25


def test_pickle_roundtrip_same_embeddings():
    X, y = _faces()
    emb = _embedder().fit(X, y)
    clone = pickle.loads(pickle.dumps(emb))
    np.testing.assert_array_equal(clone.transform(X), emb.transform(X))


def test_get_feature_names_out_prefixed():
    X, y = _faces()
    names = _embedder(max_epochs=1).fit(X, y).get_feature_names_out()
    assert list(names[:2]) == ["centerlossembedder0", "centerlossembedder1"]


def test_skface_lazy_names_resolve():
    import skface

    assert skface.CenterLossEmbedder is CenterLossEmbedder
    assert {"CenterLossEmbedder", "backbones", "metrics", "preprocessing"} <= set(dir(skface))
    assert skface.preprocessing.lfw_crop(64, jitter=8)["resize"] == (72, 72)
