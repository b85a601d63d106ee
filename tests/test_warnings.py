"""Warnings name the user's line, not skface's, scikit-learn's or skorch's frames."""

import os
import warnings

import numpy as np
import pytest


def _caught(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return record


@pytest.mark.parametrize("in_pipeline", [False, True, "first_step"])
def test_face_aligner_no_face_warning_names_users_line_not_sklearn(in_pipeline):
    from skimage import data
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skface.align import FaceAligner, FaceDetector

    cat = data.chelsea()  # no face
    aligner = FaceAligner(FaceDetector("cascade"), size=16, no_face="center")
    if in_pipeline == "first_step":  # Pipeline.fit calls it through joblib's Memory
        record = _caught(lambda: make_pipeline(aligner, FunctionTransformer()).fit([cat]))
    elif in_pipeline:
        record = _caught(lambda: make_pipeline(aligner).fit_transform([cat]))
    else:
        record = _caught(lambda: aligner.fit([cat]).transform([cat]))
    found = [r for r in record if "found no face" in str(r.message)]
    assert len(found) == 1
    assert found[0].filename == __file__, found[0].filename
    sklearn_dir = os.path.dirname(__import__("sklearn").__file__)
    assert not found[0].filename.startswith(sklearn_dir)


def test_warn_once_same_key_once_even_after_filters_reset():
    from skface import _warnings

    key = ("test_warn_once", np.random.default_rng().integers(1 << 62))
    shown = []
    with warnings.catch_warnings(record=True) as record:
        for _ in range(3):
            warnings.resetwarnings()  # forgets Python's own once-per-line memory
            warnings.simplefilter("always")
            shown.append(_warnings.warn_once(key, "said once"))
    assert shown == [True, False, False]
    assert [str(r.message) for r in record] == ["said once"]
    assert record[0].filename == __file__
