import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from skface.datasets import fetch, fetch_facial_keypoints, fetch_youtube_faces_keypoints
from skface.datasets import _keypoints
from skface.datasets._keypoints import FEATURE_NAMES, write_keypoints_submission

# ---------------------------------------------------------------- Kaggle files


def _image_field(pixels):
    return " ".join(str(int(v)) for v in pixels.ravel())


def kaggle_train_rows(rng, n=3):
    """Pixels and 30 coordinates; row 0 complete, rows 1 and 2 with missing values."""
    pixels = rng.integers(0, 256, (n, 96, 96))
    coords = rng.uniform(0, 96, (n, 30)).round(4)
    coords[1, 4:10] = np.nan  # some corners missing
    coords[2, 4:] = np.nan  # only the eye centres: the commonest case in training.csv
    return pixels, coords


def write_kaggle_train(path, pixels, coords):
    frame = pd.DataFrame(coords, columns=list(FEATURE_NAMES))
    frame["Image"] = [_image_field(p) for p in pixels]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)  # NaN is written as an empty field, as Kaggle's file


def write_kaggle_test(path, pixels, image_ids=None):
    ids = np.arange(1, len(pixels) + 1) if image_ids is None else image_ids
    frame = pd.DataFrame({"ImageId": ids, "Image": [_image_field(p) for p in pixels]})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture
def kaggle(tmp_path):
    rng = np.random.default_rng(0)
    home = tmp_path / "home"
    folder = home / "kaggle_facial_keypoints"
    pixels, coords = kaggle_train_rows(rng)
    write_kaggle_train(folder / "training.csv", pixels, coords)
    test_pixels = rng.integers(0, 256, (2, 96, 96))
    write_kaggle_test(folder / "test.csv", test_pixels)
    return SimpleNamespace(home=home, pixels=pixels, coords=coords, test_pixels=test_pixels)


def test_fetch_facial_keypoints_missing_coordinates_kept_as_nan(kaggle):
    bunch = fetch_facial_keypoints(data_home=kaggle.home)
    # 2 of the 3 rows are incomplete: all 3 come back, none dropped.
    assert bunch.target.shape == (3, 30)
    assert bunch.target.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(bunch.target), np.isnan(kaggle.coords))
    np.testing.assert_allclose(bunch.target, kaggle.coords, rtol=1e-6, equal_nan=True)
    assert np.isnan(bunch.target).any(axis=1).tolist() == [False, True, True]


def test_fetch_facial_keypoints_pixels_parsed_into_96x96_images(kaggle):
    bunch = fetch_facial_keypoints(data_home=kaggle.home)
    assert bunch.images.shape == (3, 96, 96) and bunch.images.dtype == np.float32
    np.testing.assert_allclose(bunch.images, kaggle.pixels / 255.0, rtol=1e-6)
    assert bunch.data.shape == (3, 9216)
    np.testing.assert_array_equal(bunch.data[1], bunch.images[1].ravel())


def test_fetch_facial_keypoints_names_and_points_shaped_15x2(kaggle):
    bunch = fetch_facial_keypoints(data_home=kaggle.home)
    assert bunch.feature_names.shape == (30,) and bunch.feature_names[0] == "left_eye_center_x"
    assert bunch.keypoint_names.shape == (15,) and bunch.keypoint_names[-1] == (
        "mouth_center_bottom_lip"
    )
    assert bunch.keypoints.shape == (3, 15, 2)
    # Point k is (column 2k, column 2k + 1): (x, y) of the same named point.
    np.testing.assert_array_equal(bunch.keypoints[0, 10], bunch.target[0, 20:22])
    assert bunch.feature_names[20] == "nose_tip_x" and bunch.keypoint_names[10] == "nose_tip"
    assert "Kaggle" in bunch.DESCR and "Bengio" in bunch.DESCR


def test_fetch_facial_keypoints_test_subset_image_ids_and_no_target(kaggle):
    bunch = fetch_facial_keypoints(data_home=kaggle.home, subset="test")
    assert bunch.images.shape == (2, 96, 96)
    np.testing.assert_allclose(bunch.images, kaggle.test_pixels / 255.0, rtol=1e-6)
    assert bunch.target is None and "keypoints" not in bunch
    assert bunch.image_ids.tolist() == [1, 2]


def test_fetch_facial_keypoints_return_X_y_data_and_target(kaggle):
    X, y = fetch_facial_keypoints(data_home=kaggle.home, return_X_y=True)
    assert X.shape == (3, 9216) and y.shape == (3, 30)


def test_fetch_facial_keypoints_kaggle_zip_read_without_extracting(tmp_path):
    import zipfile

    rng = np.random.default_rng(1)
    pixels, coords = kaggle_train_rows(rng)
    folder = tmp_path / "kaggle_facial_keypoints"
    write_kaggle_train(tmp_path / "training.csv", pixels, coords)
    folder.mkdir()
    with zipfile.ZipFile(folder / "training.zip", "w") as zf:
        zf.write(tmp_path / "training.csv", "training.csv")
    bunch = fetch_facial_keypoints(data_home=tmp_path)
    assert bunch.images.shape == (3, 96, 96)
    np.testing.assert_array_equal(np.isnan(bunch.target), np.isnan(coords))
    assert not (folder / "training.csv").exists()


def test_fetch_facial_keypoints_wrong_pixel_count_raises_naming_row(tmp_path):
    pixels, coords = kaggle_train_rows(np.random.default_rng(0))
    path = tmp_path / "kaggle_facial_keypoints" / "training.csv"
    write_kaggle_train(path, pixels, coords)
    frame = pd.read_csv(path)
    frame.loc[1, "Image"] = frame.loc[1, "Image"].rsplit(" ", 1)[0]  # one pixel short
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="row 1 has 9215 values"):
        fetch_facial_keypoints(data_home=tmp_path)


def test_fetch_facial_keypoints_non_integer_pixel_raises(tmp_path):
    pixels, coords = kaggle_train_rows(np.random.default_rng(0))
    path = tmp_path / "kaggle_facial_keypoints" / "training.csv"
    write_kaggle_train(path, pixels, coords)
    frame = pd.read_csv(path)
    frame.loc[0, "Image"] = "x " + frame.loc[0, "Image"].split(" ", 1)[1]
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="9216 space-separated integers"):
        fetch_facial_keypoints(data_home=tmp_path)


def test_fetch_facial_keypoints_unexpected_columns_raise(tmp_path):
    path = tmp_path / "kaggle_facial_keypoints" / "training.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"nose_x": [1.0], "Image": [" ".join(["0"] * 9216)]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="30 keypoint columns"):
        fetch_facial_keypoints(data_home=tmp_path)


@pytest.mark.parametrize("download_if_missing", [True, False])
def test_fetch_facial_keypoints_absent_files_raise_naming_folder_and_url(
    tmp_path, download_if_missing
):
    with pytest.raises(FileNotFoundError) as info:
        fetch_facial_keypoints(data_home=tmp_path, download_if_missing=download_if_missing)
    message = str(info.value)
    assert str(tmp_path / "kaggle_facial_keypoints") in message
    assert "training.csv" in message
    assert "kaggle.com/c/facial-keypoints-detection" in message


def test_fetch_facial_keypoints_second_call_served_from_cache(kaggle, monkeypatch):
    first = fetch_facial_keypoints(data_home=kaggle.home)

    def fail(*args):
        raise AssertionError("the CSV was parsed again")

    monkeypatch.setattr(_keypoints, "_parse_pixels", fail)
    second = fetch_facial_keypoints(data_home=kaggle.home)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.target, second.target)


def test_fetch_facial_keypoints_registered_entry_point(kaggle):
    bunch = fetch("facial_keypoints", data_home=kaggle.home, subset="test")
    assert bunch.images.shape == (2, 96, 96)


# ------------------------------------------------------------------ submission


def _lookup(rows):
    return pd.DataFrame(
        {
            "RowId": np.arange(1, len(rows) + 1),
            "ImageId": [r[0] for r in rows],
            "FeatureName": [r[1] for r in rows],
            "Location": np.nan,
        }
    )


def test_write_keypoints_submission_locations_by_image_and_feature(tmp_path):
    predictions = np.arange(60, dtype=float).reshape(2, 30) + 0.25
    lookup = _lookup(
        [(1, "left_eye_center_x"), (2, "nose_tip_y"), (1, "mouth_center_bottom_lip_y")]
    )
    out = tmp_path / "submission.csv"
    write_keypoints_submission(predictions, lookup, out)
    written = pd.read_csv(out)
    assert list(written.columns) == ["RowId", "Location"]
    assert written["RowId"].tolist() == [1, 2, 3]
    assert written["Location"].tolist() == [0.25, 30 + 21.25, 29.25]


def test_write_keypoints_submission_values_clipped_to_image(tmp_path):
    predictions = np.full((1, 15, 2), 50.0)
    predictions[0, 0] = [-3.0, 120.0]
    lookup = _lookup([(1, "left_eye_center_x"), (1, "left_eye_center_y"), (1, "nose_tip_x")])
    sub = write_keypoints_submission(predictions, lookup, tmp_path / "s.csv")
    assert sub["Location"].tolist() == [0.0, 96.0, 50.0]


def test_write_keypoints_submission_image_ids_map_prediction_rows(tmp_path):
    predictions = np.stack([np.full(30, 10.0), np.full(30, 20.0)])
    lookup = _lookup([(7, "nose_tip_x"), (3, "nose_tip_x")])
    sub = write_keypoints_submission(predictions, lookup, tmp_path / "s.csv", image_ids=[3, 7])
    assert sub["Location"].tolist() == [20.0, 10.0]


def test_write_keypoints_submission_lookup_read_from_csv_path(tmp_path):
    lookup_path = tmp_path / "IdLookupTable.csv"
    _lookup([(1, "nose_tip_x")]).to_csv(lookup_path, index=False)
    sub = write_keypoints_submission(np.full((1, 30), 5.0), lookup_path, tmp_path / "s.csv")
    assert sub["Location"].tolist() == [5.0]


def test_write_keypoints_submission_image_without_prediction_raises(tmp_path):
    lookup = _lookup([(1, "nose_tip_x"), (5, "nose_tip_x")])
    with pytest.raises(ValueError, match=r"ImageId \[5\]"):
        write_keypoints_submission(np.zeros((2, 30)), lookup, tmp_path / "s.csv")


def test_write_keypoints_submission_nan_prediction_raises(tmp_path):
    predictions = np.zeros((1, 30))
    predictions[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_keypoints_submission(predictions, _lookup([(1, "nose_tip_x")]), tmp_path / "s.csv")


def test_write_keypoints_submission_wrong_width_raises(tmp_path):
    with pytest.raises(ValueError, match="30 columns"):
        write_keypoints_submission(np.zeros((1, 28)), _lookup([(1, "nose_tip_x")]), tmp_path / "s")


@pytest.mark.realdata
def test_write_keypoints_submission_real_lookup_matches_sample_submission(
    shared_data, tmp_path
):
    folder = shared_data / "kaggle_facial_keypoints"
    lookup = pd.read_csv(folder / "IdLookupTable.csv")
    sample = pd.read_csv(folder / "SampleSubmission.csv")
    n_test = int(lookup["ImageId"].max())
    # Synthetic test faces (each a flat grey level), read by the fetcher, then a
    # stand-in model: the point positions shift with the face's brightness.
    levels = np.arange(n_test) % 256
    home = tmp_path / "home"
    path = home / "kaggle_facial_keypoints" / "test.csv"
    path.parent.mkdir(parents=True)
    rows = [f"{i + 1},{' '.join([str(v)] * 9216)}" for i, v in enumerate(levels)]
    path.write_text("ImageId,Image\n" + "\n".join(rows) + "\n")
    test = fetch_facial_keypoints(data_home=home, subset="test")
    assert test.images.shape == (n_test, 96, 96)
    brightness = test.data.mean(axis=1)
    predictions = 10.0 + np.outer(brightness, np.linspace(0, 100, 30))  # some exceed 96

    sub = write_keypoints_submission(
        predictions, folder / "IdLookupTable.csv", tmp_path / "submission.csv",
        image_ids=test.image_ids,
    )
    written = pd.read_csv(tmp_path / "submission.csv")
    assert len(written) == len(sample) == 27124
    assert list(written.columns) == list(sample.columns) == ["RowId", "Location"]
    np.testing.assert_array_equal(written["RowId"], sample["RowId"])
    assert written["Location"].between(0, 96).all()
    assert (written["Location"] == 96).any()
    # Spot-check the mapping on the real table.
    col = {name: j for j, name in enumerate(FEATURE_NAMES)}
    for i in [0, 1000, 27123]:
        image_id, feature = lookup.loc[i, "ImageId"], lookup.loc[i, "FeatureName"]
        expected = min(predictions[image_id - 1, col[feature]], 96.0)
        assert written.loc[i, "Location"] == pytest.approx(expected)
    assert len(sub) == 27124


# ------------------------------------------------------- YouTube Faces keypoints

# File name -> (height, width); the real images vary in size.
YT_TRAIN = {
    "Luis_Fonsi_21.jpg": (100, 80),
    "Abdel_Aziz_Al-Hakim_00.jpg": (60, 120),
    "Luis_Fonsi_40.jpg": (50, 50),
}


def _write_jpeg(path, rng, size):
    """A random RGB JPEG of ``size`` = (height, width)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, tuple(size) + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def write_youtube(home, subset_dir, files, rng):
    """Images plus ``<subset>_frames_keypoints.csv`` (header ``,0,...,135``)."""
    folder = home / "youtube_faces_keypoints"
    keypoints = {}
    for name, (h, w) in files.items():
        _write_jpeg(folder / subset_dir / name, rng, (h, w))
        pts = np.column_stack([rng.uniform(0, w, 68), rng.uniform(0, h, 68)]).round(1)
        keypoints[name] = pts
    frame = pd.DataFrame(
        [keypoints[n].ravel() for n in files], index=list(files), columns=range(136)
    )
    frame.to_csv(folder / f"{subset_dir}_frames_keypoints.csv")
    return keypoints


@pytest.fixture
def youtube(tmp_path):
    rng = np.random.default_rng(0)
    home = tmp_path / "home"
    keypoints = write_youtube(home, "training", YT_TRAIN, rng)
    write_youtube(home, "test", {"Valerie_Harper_30.jpg": (64, 64)}, rng)
    return SimpleNamespace(home=home, keypoints=keypoints)


def test_fetch_youtube_faces_keypoints_csv_layout_parsed(youtube):
    header = (youtube.home / "youtube_faces_keypoints" / "training_frames_keypoints.csv")
    assert header.read_text().split("\n")[0].startswith(",0,1,2,")
    bunch = fetch_youtube_faces_keypoints(data_home=youtube.home, size=32)
    assert list(bunch.filenames) == list(YT_TRAIN)  # CSV order
    assert bunch.images.shape == (3, 32, 32) and bunch.images.dtype == np.float32
    assert bunch.keypoints.shape == (3, 68, 2) and bunch.keypoints.dtype == np.float32
    assert bunch.target.shape == (3, 136)
    np.testing.assert_array_equal(bunch.target, bunch.keypoints.reshape(3, -1))
    assert bunch.data.shape == (3, 32 * 32)
    assert "Wolf" in bunch.DESCR and "Udacity" in bunch.DESCR


def test_fetch_youtube_faces_keypoints_resize_scales_keypoints(youtube):
    bunch = fetch_youtube_faces_keypoints(data_home=youtube.home, size=(20, 40))
    assert bunch.images.shape == (3, 20, 40)
    # (height, width), the order of size and of images.shape.
    assert bunch.original_sizes.tolist() == [list(s) for s in YT_TRAIN.values()]
    for i, (name, (h, w)) in enumerate(YT_TRAIN.items()):
        expected = youtube.keypoints[name] * [40 / w, 20 / h]
        np.testing.assert_allclose(bunch.keypoints[i], expected, rtol=1e-5)
    # The documented way back to the file's pixels; reversed as points are (x, y).
    back = bunch.keypoints * (bunch.original_sizes / [20, 40])[:, None, ::-1]
    for i, name in enumerate(YT_TRAIN):
        np.testing.assert_allclose(back[i], youtube.keypoints[name], rtol=1e-5)


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_fetch_youtube_faces_keypoints_non_square_size_is_height_width(
    youtube, color, channels
):
    bunch = fetch_youtube_faces_keypoints(data_home=youtube.home, size=(12, 30), color=color)
    assert bunch.images.shape == (3, 12, 30) + channels
    assert "(height, width) = (12, 30)" in bunch.DESCR


def test_fetch_youtube_faces_keypoints_keypoint_follows_resized_image(tmp_path):
    from PIL import Image

    # A white square centred on the keypoint stays centred on the scaled keypoint.
    folder = tmp_path / "youtube_faces_keypoints"
    (folder / "training").mkdir(parents=True)
    pixels = np.zeros((60, 120, 3), dtype=np.uint8)
    pixels[20:30, 40:50] = 255  # centre (x, y) = (45, 25) in continuous coordinates
    Image.fromarray(pixels).save(folder / "training" / "A_B_01.png")
    row = np.tile([45.0, 25.0], 68)
    pd.DataFrame([row], index=["A_B_01.png"], columns=range(136)).to_csv(
        folder / "training_frames_keypoints.csv"
    )
    bunch = fetch_youtube_faces_keypoints(data_home=tmp_path, size=(40, 60))
    assert bunch.images.shape == (1, 40, 60)
    face = bunch.images[0]
    ys, xs = np.mgrid[: face.shape[0], : face.shape[1]] + 0.5
    centroid = [(xs * face).sum() / face.sum(), (ys * face).sum() / face.sum()]
    np.testing.assert_allclose(bunch.keypoints[0, 0], [22.5, 25 * 40 / 60], rtol=1e-6)
    np.testing.assert_allclose(bunch.keypoints[0, 0], centroid, atol=0.3)


def test_fetch_youtube_faces_keypoints_identity_from_file_name(youtube):
    bunch = fetch_youtube_faces_keypoints(data_home=youtube.home, size=16)
    assert bunch.identity.tolist() == ["Luis_Fonsi", "Abdel_Aziz_Al-Hakim", "Luis_Fonsi"]


def test_fetch_youtube_faces_keypoints_test_subset_and_color(youtube):
    bunch = fetch_youtube_faces_keypoints(
        data_home=youtube.home, subset="test", size=(16, 24), color=True
    )
    assert bunch.images.shape == (1, 16, 24, 3)
    assert bunch.identity.tolist() == ["Valerie_Harper"]


def test_fetch_youtube_faces_keypoints_size_none_keeps_equal_sizes(tmp_path):
    rng = np.random.default_rng(0)
    files = {"A_1.jpg": (40, 30), "A_2.jpg": (40, 30)}
    keypoints = write_youtube(tmp_path, "training", files, rng)
    bunch = fetch_youtube_faces_keypoints(data_home=tmp_path, size=None)
    assert bunch.images.shape == (2, 40, 30)
    assert bunch.original_sizes.tolist() == [[40, 30], [40, 30]]
    np.testing.assert_allclose(bunch.keypoints[1], keypoints["A_2.jpg"], rtol=1e-6)


def test_fetch_youtube_faces_keypoints_size_none_varying_sizes_raises(youtube):
    with pytest.raises(ValueError, match="pass a size"):
        fetch_youtube_faces_keypoints(data_home=youtube.home, size=None)


def test_fetch_youtube_faces_keypoints_return_X_y_flat_keypoints(youtube):
    X, y = fetch_youtube_faces_keypoints(data_home=youtube.home, size=8, return_X_y=True)
    assert X.shape == (3, 64) and y.shape == (3, 136)


def test_fetch_youtube_faces_keypoints_missing_image_raises(youtube):
    (youtube.home / "youtube_faces_keypoints" / "training" / "Luis_Fonsi_40.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="Luis_Fonsi_40.jpg"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


def test_fetch_youtube_faces_keypoints_wrong_column_count_raises(youtube):
    path = youtube.home / "youtube_faces_keypoints" / "training_frames_keypoints.csv"
    frame = pd.read_csv(path, index_col=0)
    frame.iloc[:, :100].to_csv(path)
    with pytest.raises(ValueError, match="136 coordinates"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


@pytest.mark.parametrize("download_if_missing", [True, False])
def test_fetch_youtube_faces_keypoints_absent_files_raise_naming_folder(
    tmp_path, download_if_missing
):
    with pytest.raises(FileNotFoundError) as info:
        fetch_youtube_faces_keypoints(data_home=tmp_path, download_if_missing=download_if_missing)
    message = str(info.value)
    assert str(tmp_path / "youtube_faces_keypoints") in message
    assert "training_frames_keypoints.csv" in message
    assert "train-test-data.zip" in message


def test_fetch_youtube_faces_keypoints_invalid_subset_raises(youtube):
    with pytest.raises(ValueError, match="subset"):
        fetch_youtube_faces_keypoints(data_home=youtube.home, subset="validation")


def test_fetch_youtube_faces_keypoints_registered_entry_point(youtube):
    bunch = fetch("youtube_faces_keypoints", data_home=youtube.home, subset="test", size=8)
    assert bunch.images.shape == (1, 8, 8)


@pytest.mark.realdata
def test_fetch_youtube_faces_keypoints_real_counts_and_shapes(shared_data):
    folder = shared_data / "youtube_faces_keypoints"
    for subset, stem, n in [("train", "training", 3462), ("test", "test", 770)]:
        start = time.perf_counter()
        bunch = fetch_youtube_faces_keypoints(data_home=shared_data, subset=subset, size=48)
        cold = time.perf_counter() - start
        assert bunch.images.shape == (n, 48, 48)
        assert bunch.keypoints.shape == (n, 68, 2)
        assert bunch.target.shape == (n, 136)
        assert np.isfinite(bunch.keypoints).all()
        assert 72 <= bunch.original_sizes.min() and bunch.original_sizes.max() <= 494
        # Mapping back to each file's pixels gives the CSV's values.
        csv = pd.read_csv(folder / f"{stem}_frames_keypoints.csv", index_col=0)
        assert list(bunch.filenames) == list(csv.index)
        back = bunch.keypoints * (bunch.original_sizes / 48.0)[:, None, ::-1]
        np.testing.assert_allclose(back.reshape(n, -1), csv.to_numpy(), atol=1e-3)
        # Scaled points lie on the 48x48 image (a few train points slightly outside).
        inside = ((bunch.keypoints >= -2) & (bunch.keypoints <= 50)).all(axis=(1, 2))
        assert inside.mean() > 0.99
        assert 300 < len(set(bunch.identity)) < 400
        start = time.perf_counter()
        fetch_youtube_faces_keypoints(data_home=shared_data, subset=subset, size=48)
        assert time.perf_counter() - start < cold


# ------------------------------------------------- stale caches, damaged files


def test_fetch_youtube_faces_keypoints_edited_csv_coordinates_not_stale(youtube):
    import os

    path = youtube.home / "youtube_faces_keypoints" / "training_frames_keypoints.csv"
    first = fetch_youtube_faces_keypoints(data_home=youtube.home, size=32)
    st = path.stat()
    frame = pd.read_csv(path, index_col=0)
    frame.iloc[0, 0] += 1.0  # one x coordinate moved by a pixel
    frame.to_csv(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its old mtime
    second = fetch_youtube_faces_keypoints(data_home=youtube.home, size=32)
    delta = second.keypoints - first.keypoints
    assert delta[0, 0, 0] == pytest.approx(32 / 80)  # 1 px of the 80-wide original
    assert np.count_nonzero(delta) == 1


def test_fetch_youtube_faces_keypoints_truncated_image_error_names_file_and_dataset(youtube):
    path = youtube.home / "youtube_faces_keypoints" / "training" / "Luis_Fonsi_40.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"YouTube Faces keypoints: image .*Luis_Fonsi_40\.jpg.*re-download"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


def test_fetch_youtube_faces_keypoints_unreadable_image_header_names_file(youtube):
    path = youtube.home / "youtube_faces_keypoints" / "training" / "Luis_Fonsi_40.jpg"
    path.write_bytes(b"")
    with pytest.raises(OSError, match=r"YouTube Faces keypoints: image .*Luis_Fonsi_40\.jpg cannot be decoded"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


def test_fetch_youtube_faces_keypoints_zero_byte_csv_raises_naming_file(youtube):
    (youtube.home / "youtube_faces_keypoints" / "training_frames_keypoints.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"YouTube Faces keypoints: .*training_frames_keypoints\.csv is empty"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


def test_fetch_youtube_faces_keypoints_non_numeric_coordinate_raises_naming_file(youtube):
    path = youtube.home / "youtube_faces_keypoints" / "training_frames_keypoints.csv"
    frame = pd.read_csv(path, index_col=0).astype(object)
    frame.iloc[1, 5] = "12,5px"
    frame.to_csv(path)
    with pytest.raises(ValueError, match=r"training_frames_keypoints\.csv has a coordinate that is not a number"):
        fetch_youtube_faces_keypoints(data_home=youtube.home)


@pytest.mark.parametrize("subset, name", [("train", "training.csv"), ("test", "test.csv")])
def test_fetch_facial_keypoints_zero_byte_csv_raises_naming_file(kaggle, subset, name):
    (kaggle.home / "kaggle_facial_keypoints" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"Kaggle facial keypoints: .*{name} is empty.*kaggle\.com"):
        fetch_facial_keypoints(data_home=kaggle.home, subset=subset)


def test_write_keypoints_submission_zero_byte_lookup_raises_naming_file(tmp_path):
    (tmp_path / "IdLookupTable.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"IdLookupTable\.csv is empty"):
        write_keypoints_submission(np.zeros((1, 30)), tmp_path / "IdLookupTable.csv", tmp_path / "s.csv")
