"""scikit-learn's estimator checks over every skface estimator, and package-level checks."""

import subprocess
import sys

import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from skface.align import FaceAligner, FaceDetector
from skface.estimators import (
    CenterLossEmbedder,
    ConvSDAEFeatures,
    DBNReconstructor,
    JitterAugmented,
    KeypointRegressor,
    SDAEClassifier,
    SDAERegressor,
)
from skface.preprocessing import LocalContrastNormalizer

# The checks' toy data is flat rows of any length: the convolutional estimators
# raise on flat rows without image_shape, so they read them as 1-pixel-high strips
# on purpose (the fully connected DBNReconstructor needs no shape).
STRIP = (1, -1)
# The SDAE heads' encoders on the toy strips: the raw-pixel settings (see below).
_RAW_STRIPS = dict(contrast=None, test_flip=False, feature_layers="top", noise="mask",
                   noise_level=0.3)

# Every skface estimator, configured small enough for the checks' toy data.
ESTIMATORS = [
    DBNReconstructor(
        hidden_layer_sizes=(6, 2), pretrain_epochs=2, finetune_epochs=2, batch_size=16
    ),
    CenterLossEmbedder(
        backbone="small_cnn", backbone_params={"width": 2}, embedding_dim=4, max_epochs=2,
        batch_size=16, image_shape=STRIP,
    ),
    # Unscaled here and below: standardising these toy codes (some nearly constant)
    # multiplies float32 rounding past the subset-invariance check's 1e-7 tolerance.
    ConvSDAEFeatures(layer_channels=(4,), pretrain_epochs=1, batch_size=16,
                     feature_scale=None, image_shape=STRIP),
    # The frozen-features recipe's transform path: every layer, mirror-averaged.
    ConvSDAEFeatures(layer_channels=(4, 4), pretrain_epochs=1, batch_size=16,
                     feature_layers="all", test_flip=True, feature_scale=None,
                     image_shape=STRIP),
    # The checks' toy rows are 1-pixel-high strips of unrelated features: flips
    # and shifts would scramble them, so augmentation and mirror averaging are off
    # here, and so is contrast normalisation (it takes away each strip's level).
    SDAEClassifier(
        ConvSDAEFeatures(layer_channels=(8,), pretrain_epochs=1, batch_size=16, **_RAW_STRIPS),
        max_epochs=10, lr=1e-2, batch_size=32, flip=False, max_shift=0.0, image_shape=STRIP,
    ),
    SDAERegressor(
        ConvSDAEFeatures(layer_channels=(8,), pretrain_epochs=1, batch_size=16, **_RAW_STRIPS),
        max_epochs=10, lr=1e-2, batch_size=32, flip=False, max_shift=0.0, image_shape=STRIP,
    ),
    # Toy rows are strips of unrelated features, not faces: no augmentation.
    KeypointRegressor(
        layer_channels=(4, 8), convs_per_layer=1, input_size=8, flip_pairs=None,
        rotation=0.0, scale=0.0, shift=0.0, max_epochs=2, batch_size=16, image_shape=STRIP,
    ),
    LocalContrastNormalizer(image_shape=STRIP),
    # Strips hold no faces: the aligner crops their centres (and says so).
    FaceDetector(image_shape=STRIP),
    FaceAligner(size=8, no_face="center", image_shape=STRIP),
    # Jitter would move the strips' unrelated features into each other: the
    # classifier and regressor configurations check the delegation with
    # copies that are the originals (and the classifier's prediction through its
    # averaging over test copies), the transformer one with real jitter.
    JitterAugmented(LogisticRegression(), copies=1, shift=0.0, scale=0.0, rotation=0.0,
                    test_copies=1, image_shape=STRIP),
    JitterAugmented(Ridge(), copies=1, shift=0.0, scale=0.0, rotation=0.0, image_shape=STRIP),
    JitterAugmented(
        ConvSDAEFeatures(layer_channels=(4,), pretrain_epochs=1, batch_size=16,
                         feature_scale=None, image_shape=STRIP, random_state=0),
        copies=1, image_shape=STRIP,
    ),
]

_ANY_SIZE = (
    "detectors and aligners take images of any size, each its own, so they have no "
    "n_features_in_ and accept other sizes after fit"
)

# Checks expected to fail, with the reason, per estimator class.
EXPECTED_FAILED_CHECKS = {
    "DBNReconstructor": {},
    "CenterLossEmbedder": {},
    "ConvSDAEFeatures": {},
    "SDAEClassifier": {},
    "SDAERegressor": {},
    "KeypointRegressor": {},
    "LocalContrastNormalizer": {},
    "JitterAugmented": {},
    "FaceDetector": {
        "check_n_features_in_after_fitting": _ANY_SIZE,
        "check_n_features_in": _ANY_SIZE,
    },
    "FaceAligner": {
        "check_n_features_in_after_fitting": _ANY_SIZE,
        "check_n_features_in": _ANY_SIZE,
        "check_transformer_general": _ANY_SIZE,
        "check_transformer_general(readonly_memmap=True)": _ANY_SIZE,
    },
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def uncovered_estimators():
    """Registered estimator classes (skface._registry) that ESTIMATORS does not configure."""
    from skface._registry import estimator_names

    covered = {type(estimator).__name__ for estimator in ESTIMATORS}
    return [name for name in estimator_names() if name not in covered]


def test_common_checks_cover_every_registered_estimator():
    assert uncovered_estimators() == []


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_estimator_sklearn_checks_pass(estimator, check):
    check(estimator)


def test_import_skface_light_modules_stay_unloaded():
    code = (
        "import sys, skface; heavy = [m for m in ('torch', 'PIL', 'pooch', 'skorch', "
        "'sklearn', 'matplotlib') if m in sys.modules]; print(heavy); assert not heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_skface_lazy_name_dbnreconstructor_resolves():
    import skface

    assert skface.DBNReconstructor is DBNReconstructor
    assert "DBNReconstructor" in dir(skface)


def test_skface_nn_import_no_sklearn():
    code = "import sys, skface.nn; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
