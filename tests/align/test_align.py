"""FaceDetector and FaceAligner: input layouts, geometry, missing faces, pipelines and persistence."""

import pickle
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from skimage import data

import skface
from skface.align import FaceAligner, FaceDetector, NoFaceError, similarity_matrix, template_points
from skface.align._aligner import _warp
from skface.align._images import read_image_list
from skface.align._templates import five_from_68

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The astronaut's face, by eye in data.astronaut() (x0, y0, x1, y1).
ASTRONAUT_FACE = (170, 60, 270, 170)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _inside(box, outer):
    x0, y0, x1, y1 = box
    return x0 >= outer[0] and y0 >= outer[1] and x1 <= outer[2] and y1 <= outer[3]


# -- geometry ------------------------------------------------------------------------


def test_similarity_matrix_known_transform_recovered():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (10, 2))
    angle, scale, shift = 0.3, 0.7, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = similarity_matrix(src, dst)
    np.testing.assert_allclose(matrix[:2, :2], rot, atol=1e-10)
    np.testing.assert_allclose(matrix[:2, 2], shift, atol=1e-10)


def test_similarity_matrix_mirrored_points_no_reflection():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    dst = src * np.array([-1.0, 1.0])
    assert np.linalg.det(similarity_matrix(src, dst)[:2, :2]) > 0


def test_template_points_layout_eyes_nose_mouth_ordered():
    five = template_points(5, 96, 0.25)
    left_eye, right_eye, nose, mouth_left, mouth_right = five
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    tight = template_points(68, 96, 0.0)
    np.testing.assert_allclose(tight.min(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(tight.max(axis=0), 96.0, atol=1e-9)
    np.testing.assert_allclose(five_from_68(tight[None])[0], template_points(5, 96, 0.0))


def test_warp_dots_land_on_template_pixels():
    # Bright dots at known points of a large image must land, after the warp,
    # on the pixels the template names (pixel centres at +0.5).
    image = np.zeros((300, 400, 1), np.float32)
    points = np.array([[100.5, 100.5], [200.5, 104.5], [140.5, 180.5]])
    for x, y in points:
        image[int(y), int(x)] = 1.0
    targets = (points - 100.5) * 0.25 + 20.5  # a similarity: fitted exactly
    crop = _warp(image, similarity_matrix(points, targets), 64)[..., 0]
    for x, y in targets:
        window = crop[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3]
        peak = np.unravel_index(window.argmax(), window.shape)
        assert peak == (2, 2), (x, y, window.round(2))


# -- input ---------------------------------------------------------------------------


def test_read_image_list_layouts_sizes_and_files(tmp_path):
    grey = np.zeros((2, 10, 12), np.uint8)
    assert read_image_list(grey).kind == "grey"
    batch = read_image_list([np.zeros((5, 7, 3)), np.ones((9, 4, 3))])
    assert [im.shape for im in batch.images] == [(5, 7, 3), (9, 4, 3)]
    assert batch.scale == 1.0 and batch.dtype == np.float32
    path = tmp_path / "face.png"
    Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(path)
    files = read_image_list([path, str(path)])
    assert files.names == [str(path)] * 2 and files.dtype == np.uint8
    assert files.images[0].shape == (6, 8, 3) and files.scale == 255.0
    flat = read_image_list(np.zeros((3, 20)), image_shape=(4, 5))
    assert flat.kind == "flat" and flat.images[0].shape == (4, 5, 1)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((3, 20)), "image_shape"),
        ([np.zeros((4, 4)), np.zeros((4, 4, 3))], "mix grey and colour"),
        ("face.jpg", "one path"),
        ([np.full((4, 4), np.nan)], "NaN"),
        ([], "no images"),
        ([np.zeros((4, 4, 2))], "1 or 3 channels"),
    ],
)
def test_read_image_list_bad_input_says_what(X, match):
    with pytest.raises((ValueError, TypeError), match=match):
        read_image_list(X)


def test_read_image_list_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_image_list([tmp_path / "nope.jpg"])


# -- detector ------------------------------------------------------------------------


def test_detector_cascade_astronaut_one_face_in_place(astronaut):
    detector = FaceDetector("cascade", min_face_size=60).fit()
    [faces] = detector.detect([astronaut])
    assert len(faces.boxes) == 1 and faces.landmarks is None
    assert _inside(faces.boxes[0], ASTRONAUT_FACE)
    row = detector.transform(astronaut[None])
    assert row.shape == (1, 16) and row[0, 0] == 1
    np.testing.assert_array_equal(row[0, 1:5], faces.boxes[0])
    assert np.isnan(row[0, 5:]).all()


def test_detector_blank_image_no_face_nan_row():
    row = FaceDetector("cascade").fit().transform(np.zeros((1, 80, 80), np.uint8))
    assert row[0, 0] == 0 and np.isnan(row[0, 1:]).all()


def test_detector_set_output_pandas_named_columns(astronaut):
    frame = FaceDetector("cascade", min_face_size=60).set_output(transform="pandas").fit().transform(
        [astronaut, np.zeros((50, 50, 3), np.uint8)]
    )
    assert list(frame.columns[:6]) == ["n_faces", "x0", "y0", "x1", "y1", "score"]
    assert frame["n_faces"].tolist() == [1.0, 0.0]
    assert "left_eye_x" in frame.columns


@pytest.mark.parametrize(
    "params, match",
    [({"backend": "dlib"}, r"Unknown detector 'dlib'\. Available detectors: cascade, mtcnn, "
                           r"tiny_face\. "
                           r"Third-party detectors register under the 'skface\.detectors'"),
     ({"select": "big"}, "select"),
     ({"min_face_size": 0}, "min_face_size"), ({"thresholds": (0.5, 0.5)}, "thresholds")],
)
def test_detector_bad_params_raise_at_fit(params, match):
    detector = FaceDetector(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        detector.fit()


def test_detector_select_center_orders_by_distance():
    from skface.align._detector import _order

    boxes = np.array([[0, 0, 40, 40], [45, 45, 55, 55]], np.float32)
    det = (boxes, np.array([0.9, 0.5], np.float32), None)
    assert _order(det, "largest", (100, 100)).boxes[0][0] == 0
    assert _order(det, "center", (100, 100)).boxes[0][0] == 45
    assert _order(det, "score", (100, 100)).scores[0] == np.float32(0.9)


# -- aligner -------------------------------------------------------------------------


def test_aligner_astronaut_crop_layout_and_dtype(astronaut):
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), size=48).fit()
    result = aligner.align([astronaut])
    assert result.images.shape == (1, 48, 48, 3) and result.images.dtype == np.uint8
    assert result.found.tolist() == [True]
    # The box maps onto the template's face box: the crop's centre is the box's.
    grey = FaceAligner(FaceDetector("cascade", min_face_size=60), size=48).fit().transform(
        (astronaut.mean(axis=2) / 255.0)[None]
    )
    assert grey.shape == (1, 48, 48) and grey.dtype == np.float32
    flat = clone(aligner).set_params(image_shape=astronaut.shape).fit().transform(
        astronaut.reshape(1, -1).astype(np.float32) / 255
    )
    assert flat.shape == (1, 48 * 48 * 3)


def test_aligner_box_crop_matches_box_pixels(astronaut):
    # padding 0: the crop is the detector's (square) box resized.
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), landmarks="box", size=32,
                          padding=0.0).fit()
    result = aligner.align([astronaut])
    x0, y0, x1, y1 = result.boxes[0].astype(int)
    from skimage.transform import resize

    expected = resize(astronaut[y0:y1, x0:x1], (32, 32), anti_aliasing=True, preserve_range=True)
    assert np.abs(result.images[0].astype(float) - expected).mean() < 6.0


def test_detector_default_backend_is_mtcnn_aligner_aligns_on_its_points():
    # MTCNN finds all 770 YouTube Faces test frames, the cascade 73 % (bench/RESULTS.md).
    assert FaceDetector().backend == "mtcnn"
    aligner = FaceAligner().fit()  # resolves the backend; no weights needed yet
    assert aligner.detector_.backend == "mtcnn" and aligner.landmarks_ == "detector"
    assert FaceAligner(FaceDetector("cascade")).fit().landmarks_ == "box"


def test_aligner_no_face_raise_names_images():
    images = [np.zeros((60, 60, 3), np.uint8), np.full((60, 70, 3), 9, np.uint8)]
    with pytest.raises(NoFaceError, match=r"2 of 2 image\(s\): image 0, image 1"):
        FaceAligner(FaceDetector("cascade"), no_face="raise").fit().transform(images)


def test_aligner_default_no_face_keeps_going_one_warning_not_found_(astronaut, tmp_path):
    # A Pipeline's long fit is not lost over a few faceless files: by default their
    # centres are cropped, one warning counts them and names the first, and
    # not_found_ names them all.
    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.fromarray(astronaut if i == 3 else np.full((40, 40, 3), 20 * i, np.uint8)).save(path)
        paths.append(str(path))
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), size=16)
    assert aligner.no_face == "center"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        crops = aligner.fit_transform(paths)
    messages = [str(w.message) for w in record if "no face" in str(w.message)]
    assert len(messages) == 1
    assert messages[0].startswith(
        f"FaceAligner found no face in 6 of 7 image(s) ({paths[0]}, {paths[1]}, {paths[2]}, "
        f"{paths[4]}, {paths[5]} and 1 more) and cropped their centres; not_found_ names "
        "them all. Pass no_face='raise' to stop instead."
    )
    assert crops.shape == (7, 16, 16, 3)
    assert aligner.not_found_ == [p for i, p in enumerate(paths) if i != 3]
    # transform changes no attribute (scikit-learn's rule); its warning points at align.
    with pytest.warns(UserWarning, match=r"no face in 1 of 2 image\(s\) \(.*0\.png\) .* "
                                         r"align\(X\)\.found says which"):
        aligner.transform(paths[3::-3])
    assert aligner.not_found_ == [p for i, p in enumerate(paths) if i != 3]


def test_aligner_no_face_center_warns_and_records(astronaut):
    blank = np.zeros((100, 60, 3), np.uint8)
    blank[8:92, :] = 255  # the centre square (rows 20-80) lies inside the bright band
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), size=16, no_face="center").fit()
    with pytest.warns(UserWarning, match=r"no face in 1 of 2 image\(s\) \(image 1\)"):
        result = aligner.align([astronaut, blank])
    assert result.found.tolist() == [True, False]
    assert np.isnan(result.boxes[1]).all()
    assert result.images[1].min() >= 250  # the centre square only (smoothed edges)


def test_aligner_bad_params_raise_at_fit():
    with pytest.raises(ValueError, match="no_face"):
        FaceAligner(no_face="drop").fit()
    with pytest.raises(TypeError, match="FaceDetector"):
        FaceAligner(detector="mtcnn").fit()
    with pytest.raises(TypeError, match="KeypointRegressor"):
        FaceAligner(landmarks=LogisticRegression()).fit()
    with pytest.raises(ValueError, match="landmarks must be one of"):
        FaceAligner(landmarks="dlib").fit()


@pytest.fixture(scope="module")
def keypoint_model():
    from skface.estimators import KeypointRegressor

    rng = np.random.default_rng(0)
    images = rng.random((16, 24, 24)).astype(np.float32)
    points = rng.uniform(4, 20, (16, 68, 2))
    return KeypointRegressor(layer_channels=(4,), convs_per_layer=1, input_size=16,
                             max_epochs=1, batch_size=8, random_state=0).fit(images, points)


def test_aligner_keypoint_regressor_68_points_aligned(astronaut, keypoint_model):
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), FrozenEstimator(keypoint_model),
                          size=24).fit()
    result = aligner.align([astronaut])
    assert result.images.shape == (1, 24, 24, 3)
    assert result.landmarks.shape == (1, 68, 2) and np.isfinite(result.landmarks).all()
    # clone keeps the frozen regressor fitted.
    clone(aligner).fit().transform([astronaut])


def test_aligner_unfitted_or_wrong_regressor_refused(keypoint_model):
    from skface.estimators import KeypointRegressor

    with pytest.raises(ValueError, match="not fitted"):
        FaceAligner(landmarks=KeypointRegressor()).fit()
    rng = np.random.default_rng(1)
    small = clone(keypoint_model).fit(rng.random((8, 24, 24)), rng.uniform(4, 20, (8, 15, 2)))
    with pytest.raises(ValueError, match="68-point"):
        FaceAligner(landmarks=small).fit()


def test_aligner_in_pipeline_with_set_output(astronaut):
    from skface.estimators import ConvSDAEFeatures

    faces = [astronaut, astronaut[:, ::-1], astronaut[10:], astronaut[:, 10:]] * 2
    y = np.array([0, 1, 0, 1] * 2)
    pipe = make_pipeline(
        FaceAligner(FaceDetector("cascade", min_face_size=60), size=16),
        ConvSDAEFeatures(layer_channels=(4,), pretrain_epochs=1, batch_size=8, random_state=0),
        LogisticRegression(),
    )
    pipe.set_output(transform="pandas")
    pipe.fit(faces, y)
    assert pipe.predict(faces).shape == (8,)
    features = pipe[:-1].transform(faces)
    assert hasattr(features, "columns") and len(features) == 8


def test_aligner_pickle_clone_and_save_load_same_crops(astronaut, tmp_path):
    aligner = FaceAligner(FaceDetector("cascade", min_face_size=60), size=32).fit()
    expected = aligner.transform([astronaut])
    again = pickle.loads(pickle.dumps(aligner))
    np.testing.assert_array_equal(again.transform([astronaut]), expected)
    assert clone(aligner).get_params()["size"] == 32
    path = tmp_path / "aligner.skface"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skface.save(aligner, path)
    loaded = skface.load(path)
    assert isinstance(loaded.detector_, FaceDetector)
    np.testing.assert_array_equal(loaded.transform([astronaut]), expected)


# -- 16-bit images ---------------------------------------------------------------------


def _sixteen_bit_copies(image, tmp_path):
    """The same pixels as uint16, as int32 (PIL's mode "I") and as a 16-bit grey PNG."""
    wide = image.astype(np.uint16) * 257  # 255 -> 65535: the same picture in 16 bits
    grey8 = np.rint(image.mean(axis=2)).astype(np.uint8)
    Image.fromarray(grey8).save(tmp_path / "grey8.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    # Pillow >= 9.3 opens a 16-bit PNG as "I;16", older releases as "I" (32-bit).
    assert Image.open(tmp_path / "grey16.png").mode in ("I;16", "I")
    return wide, str(tmp_path / "grey8.png"), str(tmp_path / "grey16.png")


def test_detector_cascade_16bit_copies_find_the_same_faces(astronaut, tmp_path):
    # 16-bit pixels were clipped to white: no face where the 8-bit copy had 2.
    wide, grey8, grey16 = _sixteen_bit_copies(astronaut, tmp_path)
    detector = FaceDetector("cascade").fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is lost: no warning
        expected = detector.detect([astronaut])[0].boxes
        assert len(expected) == 2
        for batch in ([wide], [wide.astype(np.int32)], wide[None]):
            np.testing.assert_array_equal(detector.detect(batch)[0].boxes, expected)
        from_file = detector.detect([grey8])[0].boxes
        assert len(from_file) >= 1
        np.testing.assert_array_equal(detector.detect([grey16])[0].boxes, from_file)


def test_aligner_16bit_crops_on_the_16bit_scale(astronaut):
    aligner = FaceAligner(FaceDetector("cascade"), size=32).fit()
    crops8 = aligner.transform([astronaut])
    crops16 = aligner.transform([astronaut.astype(np.uint16) * 257])
    assert crops16.dtype == np.float32 and crops16.max() > 255  # the caller's scale, kept
    np.testing.assert_allclose(crops16 / 257, crops8, atol=1)


def test_read_image_list_16bit_scales_and_refusals(tmp_path):
    assert read_image_list(np.zeros((1, 4, 4), np.uint16)).scale == 65535.0
    assert read_image_list(np.full((1, 4, 4), 200, np.int64)).scale == 255.0  # 8-bit values
    assert read_image_list(np.full((1, 4, 4), 4000, np.int64)).scale == 65535.0
    batch = read_image_list([np.full((2, 2), 65535, np.uint16)])
    assert (batch.as_uint8(0) == 255).all()
    with pytest.raises(ValueError, match=r"mix 16-bit pixels \(image 0, uint16\) with others "
                                         r"\(image 1, uint8\)"):
        read_image_list([np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.uint8)])
    with pytest.warns(UserWarning, match=r"image 0 has 1 pixel value\(s\) outside 0\.\.32767"):
        read_image_list([np.array([[-5, 100], [0, 32767]], np.int16)])
    # A 32-bit grey TIFF (mode "I") with values past 16 bits: clipped, and said.
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 70000], [65535, 100]], np.int32)).save(path)
    with pytest.warns(UserWarning, match=r"1 pixel value\(s\) outside 0\.\.65535"):
        pixels = read_image_list([path]).images[0]
    assert pixels.dtype == np.uint8 and pixels[:, :, 0].tolist() == [[0, 255], [255, 0]]
