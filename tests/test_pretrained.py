"""Registered pretrained models: built at first use, loaded as fitted pipelines, saved, fine-tuned."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline, make_pipeline

import skface
from skface.align import FaceAligner, FaceDetector, template_points
from skface.estimators import CenterLossEmbedder
from skface.models import ModelSource, cached_path, fetch_model, get_model_info, list_models


def _tiny_embedder(**params):
    rng = np.random.RandomState(0)
    faces, people = rng.rand(40, 16, 16).astype(np.float32), np.repeat(np.arange(4), 10)
    emb = CenterLossEmbedder(backbone="small_cnn", backbone_params={"width": 4}, embedding_dim=8,
                             max_epochs=1, batch_size=16, random_state=0, verbose=0, **params)
    return emb.fit(faces, people), faces


def test_template_points_dlib_matches_dlib_chip_geometry():
    # dlib's chip: p * size in dlib's pixel-centre coordinates (+0.5 in skface's).
    five = template_points(5, 150, 0.25, "dlib")
    nose = (0.490127 + 0.25) / 1.5 * 150 + 0.5
    assert five[2, 0] == pytest.approx(nose)
    assert five[0, 0] < five[2, 0] < five[1, 0]  # image-left eye, nose, image-right eye
    full = template_points(68, 150, 0.25, "dlib")
    assert np.isnan(full[:17]).all() and not np.isnan(full[17:]).any()


def test_template_points_unknown_template_raises():
    with pytest.raises(ValueError, match="template must be one of"):
        template_points(5, 96, 0.0, "dlip")


def test_face_aligner_bad_template_raises_in_fit():
    aligner = FaceAligner(FaceDetector("cascade"), template="x")  # __init__ stores it
    with pytest.raises(ValueError, match="template"):
        aligner.fit()


def test_pipeline_save_load_roundtrip_same_embeddings(tmp_path):
    emb, faces = _tiny_embedder()
    pipe = make_pipeline(FaceAligner(FaceDetector("cascade"), size=16).fit(), FrozenEstimator(emb))
    path = skface.save(pipe, tmp_path / "p.skface")
    loaded = skface.load(path, device="cpu")
    assert isinstance(loaded, Pipeline)
    assert isinstance(loaded[-1], FrozenEstimator)
    np.testing.assert_array_equal(loaded[-1].transform(faces), emb.transform(faces))


def test_pipeline_with_sklearn_step_save_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="not an skface estimator"):
        skface.save(make_pipeline(LogisticRegression()), tmp_path / "p.skface")


def test_from_backbone_weights_fitted_without_identities_then_warm_start_fine_tunes():
    rng = np.random.RandomState(0)
    faces, people = rng.rand(40, 16, 16).astype(np.float32), np.repeat(["a", "b", "c", "d"], 10)
    trained, _ = _tiny_embedder()
    state = trained.net_.module_.backbone.state_dict()
    emb = CenterLossEmbedder.from_backbone_weights(
        state, image_shape=(16, 16, 1), mean=[0.5], std=[0.25], backbone="small_cnn",
        backbone_params={"width": 4}, embedding_dim=8, max_epochs=1, batch_size=16,
        random_state=0, verbose=0, device="cpu",
    )
    assert emb.classes_.shape == (0,) and emb.centers_.shape == (0, 8)
    before = emb.transform(faces)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, rtol=1e-5)
    emb.set_params(warm_start=True).fit(faces, people)
    assert list(emb.classes_) == ["a", "b", "c", "d"] and emb.centers_.shape == (4, 8)
    assert not np.allclose(emb.transform(faces), before)  # the backbone trained on


def test_from_backbone_weights_wrong_weights_raise():
    trained, _ = _tiny_embedder()
    with pytest.raises(ValueError, match="do not fit backbone"):
        CenterLossEmbedder.from_backbone_weights(
            {"nope": trained.net_.module_.backbone.state_dict()["features.0.0.weight"]},
            image_shape=(16, 16, 1), mean=[0.5], std=[0.25], backbone="small_cnn",
            backbone_params={"width": 4}, embedding_dim=8, device="cpu", verbose=0,
        )


def test_model_source_build_called_once_then_cached(tmp_path):
    calls = []
    emb, faces = _tiny_embedder()

    def build(path, *, cache_home):
        calls.append(path)
        skface.save(emb, path)

    source = ModelSource(build=build, filename="tiny.skface", license="MIT")
    assert source.is_built and source.sha256 is None
    from skface import models

    models._resolved = ({}, {"tiny": source})  # what _sources would give for this registry
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(models, "load_group", lambda *a, **k: models._resolved[0])
            path = fetch_model("tiny", cache_home=tmp_path)
            assert path == cached_path("tiny", cache_home=tmp_path) and path.is_file()
            fetch_model("tiny", cache_home=tmp_path)
    finally:
        models._resolved = (None, {})
    assert len(calls) == 1


@pytest.mark.parametrize("fields, message", [
    ({"build": print, "sha256": "a" * 64, "filename": "m.skface"}, "has no sha256"),
    ({"build": print}, "needs filename"),
    ({"build": "not callable", "filename": "m.skface"}, "must be a callable"),
])
def test_model_source_bad_build_fields_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelSource(**fields)


def test_faceapi_recognition_registered_with_provenance():
    assert "faceapi_recognition" in list_models()
    source = get_model_info("faceapi_recognition")
    assert source.is_built and "MIT" in source.license and source.citation
    assert "150x150" in source.input and "128" in source.output


@pytest.fixture(scope="module")
def recognition(tmp_path_factory):
    """skface.load of the registered model (downloads the pinned tarball; skip offline)."""
    from skface.pretrained._faceapi import faceapi_weights

    cache = tmp_path_factory.mktemp("faceapi_cache")
    try:
        faceapi_weights("face_recognition_model", cache_home=cache)
    except OSError as exc:
        pytest.skip(f"face-api weights not available: {type(exc).__name__}: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKFACE_CACHE", str(cache))
        return skface.load("faceapi_recognition", device="cpu"), cache


def test_faceapi_recognition_load_gives_fitted_frozen_pipeline(recognition):
    model, _ = recognition
    assert [name for name, _ in model.steps] == ["align", "embed"]
    aligner = model[0]
    assert (aligner.size, aligner.padding, aligner.template) == (150, 0.25, "dlib")
    embedder = model[-1].estimator
    assert embedder.image_shape_ == (150, 150, 3) and embedder.backbone == "faceapi_resnet"
    # clone keeps the frozen network fitted (a grid search clones its pipeline).
    assert clone(model)[-1].estimator is embedder


def test_faceapi_recognition_same_person_closer_than_others(recognition):
    from skimage import data

    model, _ = recognition
    astronaut = data.astronaut()
    shifted = np.roll(astronaut, 7, axis=1)
    other = data.chelsea()  # a cat: no human face, the centre is cropped
    with pytest.warns(UserWarning, match="no face"):
        desc = model.transform([astronaut, shifted, other])
    assert desc.shape == (3, 128)
    sims = desc @ desc.T
    assert sims[0, 1] > 0.95 > sims[0, 2]
