import os
import warnings

import numpy as np
import pytest

from skface.datasets import fetch, fetch_utkface
from skface.datasets import _utkface

VALID = {
    "25_0_0_20170116174525125.jpg.chip.jpg": (25, 0, 0),
    "3_1_2_20161219140530307.jpg.chip.jpg": (3, 1, 2),
    "116_1_4_20170110183726390.jpg.chip.jpg": (116, 1, 4),
    # One original file has a space before the extension; its labels are fine.
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 0, 1),
}
MALFORMED = [
    "39_1_20170116174525125.jpg.chip.jpg",  # missing field (as in the real set)
    "30_2_0_20170116174525125.jpg.chip.jpg",  # gender out of range
    "30_0_5_20170116174525125.jpg.chip.jpg",  # race out of range
    "117_0_0_20170116174525125.jpg.chip.jpg",  # age out of the documented 0-116
    "x_0_0_20170116174525125.jpg.chip.jpg",  # not a number
]


def write_jpeg(path, rng, size=(20, 20)):
    """A random RGB JPEG of ``size`` = (height, width), skface's order."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def build_utkface(root, names):
    rng = np.random.default_rng(0)
    for name in names:
        write_jpeg(root / "utkface" / "UTKFace" / name, rng)
    return root


@pytest.fixture
def utk_home(tmp_path):
    return build_utkface(tmp_path / "home", list(VALID) + MALFORMED)


def test_fetch_utkface_file_names_parsed_into_labels(utk_home):
    with pytest.warns(UserWarning, match="skipped 5 file"):
        bunch = fetch_utkface(data_home=utk_home)
    expected = sorted(VALID)
    assert list(bunch.filenames) == expected
    labels = np.array([VALID[f] for f in expected])
    np.testing.assert_array_equal(bunch.age, labels[:, 0])
    np.testing.assert_array_equal(bunch.gender, labels[:, 1])
    np.testing.assert_array_equal(bunch.race, labels[:, 2])
    np.testing.assert_array_equal(bunch.target, bunch.age)
    assert list(bunch.gender_names) == ["male", "female"]
    assert len(bunch.race_names) == 5
    assert "target_names" not in bunch  # age is a regression target
    assert "Zhang" in bunch.DESCR and "non-commercial" in bunch.DESCR


def test_fetch_utkface_malformed_names_skipped_and_reported(utk_home):
    with pytest.warns(UserWarning, match=r"skipped 5 file.*39_1_20170116174525125"):
        bunch = fetch_utkface(data_home=utk_home)
    assert list(bunch.skipped) == sorted(MALFORMED)
    assert len(bunch.filenames) + len(bunch.skipped) == len(VALID) + len(MALFORMED)


def test_fetch_utkface_clean_folder_no_warning_and_empty_skipped(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bunch = fetch_utkface(data_home=home)
    assert bunch.skipped.shape == (0,)


def test_fetch_utkface_hidden_files_and_folders_ignored(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    (home / "utkface" / "UTKFace" / ".DS_Store").write_bytes(b"\0")
    (home / "utkface" / "UTKFace" / "sub").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bunch = fetch_utkface(data_home=home)
    assert len(bunch.filenames) == len(VALID)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (64, 64, 3)),
        ({"size": None}, (20, 20, 3)),
        ({"size": (24, 16)}, (24, 16, 3)),
        ({"size": 8, "color": False}, (8, 8)),
    ],
)
def test_fetch_utkface_size_and_color_give_shapes_and_dtypes(tmp_path, kwargs, shape):
    home = build_utkface(tmp_path, list(VALID))
    bunch = fetch_utkface(data_home=home, **kwargs)
    n = len(VALID)
    assert bunch.images.shape == (n,) + shape
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (n, int(np.prod(shape)))
    assert 0.0 <= bunch.images.min() and bunch.images.max() <= 1.0
    assert bunch.age.dtype.kind == "i" and bunch.filenames.dtype.kind == "U"


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_fetch_utkface_non_square_size_is_height_width(tmp_path, color, channels):
    # (height, width), as the estimators' input_size: rows first, like images.shape.
    home = build_utkface(tmp_path, list(VALID))
    bunch = fetch_utkface(data_home=home, size=(12, 30), color=color)
    assert bunch.images.shape == (len(VALID), 12, 30) + channels


@pytest.mark.parametrize(
    "target, names", [("gender", ["male", "female"]), ("race", list(_utkface.RACE_NAMES))]
)
def test_fetch_utkface_classification_target_has_target_names(tmp_path, target, names):
    home = build_utkface(tmp_path, list(VALID))
    bunch = fetch_utkface(data_home=home, size=8, target=target)
    np.testing.assert_array_equal(bunch.target, bunch[target])
    assert list(bunch.target_names) == names


def test_fetch_utkface_return_X_y_gives_data_and_age(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    X, y = fetch_utkface(data_home=home, size=8, return_X_y=True)
    assert X.shape == (len(VALID), 8 * 8 * 3) and X.dtype == np.float32
    np.testing.assert_array_equal(y, [VALID[f][0] for f in sorted(VALID)])


def test_fetch_utkface_second_call_reads_cache(utk_home, monkeypatch):
    with pytest.warns(UserWarning):
        first = fetch_utkface(data_home=utk_home, size=8)

    def fail(*args, **kwargs):
        raise AssertionError("images were decoded again instead of read from the cache")

    monkeypatch.setattr(_utkface, "read_images", fail)
    # No warning again on a cached load: the Bunch still lists the files.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = fetch_utkface(data_home=utk_home, size=8)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.skipped, second.skipped)
    np.testing.assert_array_equal(first.age, second.age)


@pytest.mark.parametrize("download_if_missing", [False, True])
def test_fetch_utkface_missing_folder_raises_naming_folder_and_page(tmp_path, download_if_missing):
    with pytest.raises(FileNotFoundError) as info:
        fetch_utkface(data_home=tmp_path, download_if_missing=download_if_missing)
    message = str(info.value)
    assert str(tmp_path / "utkface") in message
    assert "UTKFace" in message and "susanqq.github.io/UTKFace" in message


def test_fetch_utkface_only_malformed_names_raises(tmp_path):
    home = build_utkface(tmp_path, MALFORMED)
    with pytest.raises(ValueError, match="No UTKFace image"):
        fetch_utkface(data_home=home)


@pytest.mark.parametrize(
    "kwargs, match", [({"target": "identity"}, "target"), ({"size": 0}, "size")]
)
def test_fetch_utkface_bad_parameter_raises_clear_error(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_utkface(data_home=tmp_path, **kwargs)


def test_fetch_utkface_registry_name_reaches_fetcher(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    bunch = fetch("utkface", data_home=home, size=8)
    assert len(bunch.filenames) == len(VALID)


@pytest.mark.realdata
def test_fetch_utkface_real_data_counts_and_labels(shared_data):
    folder = shared_data / "utkface" / "UTKFace"
    n_files = len([f for f in os.listdir(folder) if not f.startswith(".")])
    with pytest.warns(UserWarning, match="skipped 3 file"):
        bunch = fetch_utkface(data_home=shared_data, size=16, color=False)
    assert n_files == 12000
    assert len(bunch.filenames) + len(bunch.skipped) == n_files
    assert len(bunch.filenames) == 11997
    assert list(bunch.skipped) == [
        "39_1_20170116174525125.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_1_20170109150557335.jpg.chip.jpg",
    ]
    assert bunch.images.shape == (11997, 16, 16)
    assert (bunch.age.min(), bunch.age.max()) == (1, 116)
    np.testing.assert_array_equal(np.bincount(bunch.gender), [6261, 5736])
    np.testing.assert_array_equal(np.bincount(bunch.race), [5080, 2280, 1738, 2050, 849])


def test_fetch_utkface_non_image_files_ignored_not_reported(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    folder = home / "utkface" / "UTKFace"
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "._25_0_0_20170116174525125.jpg.chip.jpg").write_bytes(b"\0\5\26\7")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "skipped": they are not samples at all
        bunch = fetch_utkface(data_home=home, size=8)
    assert sorted(bunch.filenames) == sorted(VALID)


def test_fetch_utkface_truncated_image_error_names_file_dataset_and_fix(tmp_path):
    home = build_utkface(tmp_path, list(VALID))
    path = home / "utkface" / "UTKFace" / "3_1_2_20161219140530307.jpg.chip.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"UTKFace: image .*3_1_2_20161219140530307\.jpg\.chip\.jpg.*re-download"):
        fetch_utkface(data_home=home, size=8)


@pytest.mark.parametrize("through_registry", [False, True])
def test_fetch_utkface_skipped_warning_once_per_decode_at_callers_line(
    utk_home, through_registry
):
    load = (lambda: fetch("utkface", data_home=utk_home, size=8)) if through_registry else (
        lambda: fetch_utkface(data_home=utk_home, size=8)
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        load()
    skipped = [r for r in record if "skipped 5 file" in str(r.message)]
    assert len(skipped) == 1
    assert skipped[0].filename == __file__  # the user's line, not skface's registry
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        bunch = load()
    assert record == []  # cached: no warning again
    assert list(bunch.skipped) == sorted(MALFORMED)


def test_fetch_utkface_skipped_warning_once_per_folder_whatever_the_size(utk_home):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for size in (8, 6, 10):
            # Libraries reset the warning filters all the time (Python's once-per-line
            # memory with them): that must not bring the warning back.
            warnings.resetwarnings()
            warnings.simplefilter("always")
            bunch = fetch_utkface(data_home=utk_home, size=size, color=size != 6)
            assert list(bunch.skipped) == sorted(MALFORMED)  # still listed every time
    skipped = [r for r in record if "skipped 5 file" in str(r.message)]
    assert len(skipped) == 1
    assert skipped[0].filename == __file__


def test_fetch_utkface_skipped_warning_again_for_another_folder(utk_home, tmp_path):
    other = build_utkface(tmp_path / "other", list(VALID) + MALFORMED[:2])
    with pytest.warns(UserWarning, match="skipped 5 file"):
        fetch_utkface(data_home=utk_home, size=8)
    with pytest.warns(UserWarning, match="skipped 2 file"):
        fetch_utkface(data_home=other, size=8)
