import tarfile
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from skface.datasets import fetch, fetch_imdb_wiki
from skface.datasets import _imdb_wiki


def datenum(year, month, day, fraction=0.0):
    """MATLAB serial date number of a day (what the .mat files store in ``dob``)."""
    return date(year, month, day).toordinal() + 366 + fraction


NAN, INF = np.nan, np.inf
# (name, dob, photo_taken, gender (1 = male in the file), face_score, second_face_score,
#  expected age or the filter that drops the row)
ROWS = [
    ("Ann Lee", datenum(1981, 5, 5), 2009, 0.0, 4.3, NAN, 28),
    ("Bob Ray", datenum(1990, 9, 20), 2010, 1.0, 2.1, NAN, 19),  # born after July 1st
    ("No Face", datenum(1970, 1, 1), 2000, 1.0, -INF, NAN, "low_face_score"),
    ("Blurry", datenum(1970, 1, 1), 2000, 0.0, 0.5, 1.5, "low_face_score"),  # counted once
    ("Two Faces", datenum(1970, 1, 1), 2000, 0.0, 3.0, 1.2, "second_face"),
    ("Unknown", datenum(1970, 1, 1), 2000, NAN, 3.0, NAN, "unknown_gender"),
    ("Too Old", datenum(1850, 3, 1), 2008, 1.0, 3.0, NAN, "age_out_of_range"),
    ("Year Zero", 1.0, 2008, 1.0, 3.0, NAN, "age_out_of_range"),  # dob before year 1
    ("Unborn", datenum(2012, 1, 1), 2010, 1.0, 3.0, NAN, "age_out_of_range"),
    ("Baby", datenum(2000, 1, 1, 0.5), 2000, 0.0, 1.0, NAN, 0),
    ("", datenum(1955, 7, 1), 2005, 1.0, 5.0, NAN, 49),  # empty name cell
]
KEPT = [i for i, row in enumerate(ROWS) if not isinstance(row[-1], str)]
GREY_ROW = 1  # its image is written in grey, to check colour conversion


def _path(i):
    return f"{i % 100:02d}/{1000 + i}_{ROWS[i][2]}.jpg"


def _cells(values):
    values = list(values)
    cells = np.empty(len(values), dtype=object)
    cells[:] = list(values)
    return cells


def build_imdb_wiki(root, source="wiki"):
    """Write ``<source>_crop/<source>.mat`` (MATLAB v5 struct, real layout) and its images."""
    from PIL import Image
    from scipy.io import savemat

    crop = root / "imdb_wiki" / f"{source}_crop"
    rng = np.random.default_rng(0)
    for i in range(len(ROWS)):
        path = crop / _path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = 30 + 3 * i, 25 + 2 * i  # crops vary in size
        if i == GREY_ROW:
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(path)
        else:
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    names, dob, taken, gender, score, second, _ = zip(*ROWS)
    struct = {
        "dob": np.array(dob),
        "photo_taken": np.array(taken, dtype=np.uint16),
        "full_path": _cells(_path(i) for i in range(len(ROWS))),
        "gender": np.array(gender),
        "name": _cells(names),
        "face_location": _cells(np.array([[10.0, 12.0, 60.0, 70.0]]) for _ in ROWS),
        "face_score": np.array(score),
        "second_face_score": np.array(second),
    }
    if source == "imdb":
        struct["celeb_names"] = _cells(sorted(set(names)))
        struct["celeb_id"] = np.arange(1, len(ROWS) + 1, dtype=np.float64)
    savemat(crop / f"{source}.mat", {source: struct})
    return root


@pytest.fixture
def wiki_home(tmp_path):
    return build_imdb_wiki(tmp_path / "home")


def test_compute_age_matches_datenum_formula_with_mid_year_rule():
    dob = np.array([datenum(1981, 5, 5, 0.25), datenum(1990, 9, 20), datenum(1955, 7, 1)])
    for value, (year, month) in zip(dob, zip(*_imdb_wiki.birth_year_month(dob))):
        # The conversion the dataset's authors document for MATLAB datenums.
        born = datetime.fromordinal(int(value)) + timedelta(days=value % 1) - timedelta(days=366)
        assert (born.year, born.month) == (year, month)
    np.testing.assert_array_equal(_imdb_wiki.compute_age(dob, [2009, 2010, 2005]), [28, 19, 49])
    assert _imdb_wiki.compute_age([1.0, NAN], [2000, 2000]).tolist() == [-1, -1]


def test_fetch_imdb_wiki_mat_metadata_parsed(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home)
    assert list(bunch.filenames) == [_path(i) for i in KEPT]
    np.testing.assert_array_equal(bunch.age, [ROWS[i][-1] for i in KEPT])
    np.testing.assert_array_equal(bunch.target, bunch.age)
    assert list(bunch.name) == [ROWS[i][0] for i in KEPT]
    np.testing.assert_array_equal(bunch.photo_taken, [ROWS[i][2] for i in KEPT])
    np.testing.assert_allclose(bunch.face_score, [ROWS[i][4] for i in KEPT])
    assert "Rothe" in bunch.DESCR and "academic research" in bunch.DESCR


def test_fetch_imdb_wiki_gender_mapped_to_zero_male_one_female(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home)
    # The .mat says 1 = male; skface says 0 = male, 1 = female.
    np.testing.assert_array_equal(bunch.gender, [1 - int(ROWS[i][3]) for i in KEPT])
    assert list(bunch.gender_names) == ["male", "female"]
    assert bunch.gender[bunch.name == "Ann Lee"][0] == 1


def test_fetch_imdb_wiki_filtered_rows_counted_by_rule(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home)
    assert bunch.n_total == len(ROWS)
    assert bunch.n_filtered == {
        "low_face_score": 2,
        "second_face": 1,
        "unknown_gender": 1,
        "age_out_of_range": 3,
    }
    assert bunch.n_total - sum(bunch.n_filtered.values()) == len(bunch.age)


def test_fetch_imdb_wiki_second_face_kept_when_not_dropped(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home, drop_second_face=False)
    assert "Two Faces" in bunch.name
    assert bunch.n_filtered["second_face"] == 0


def test_fetch_imdb_wiki_min_face_score_lower_keeps_weak_never_missing_faces(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home, min_face_score=-10, drop_second_face=False)
    assert "Blurry" in bunch.name and "No Face" not in bunch.name
    assert bunch.n_filtered["low_face_score"] == 1
    strict = fetch_imdb_wiki(data_home=wiki_home, min_face_score=4.0)
    assert list(strict.name) == ["Ann Lee", ""]


@pytest.mark.parametrize(
    "kwargs, shape",
    [({}, (64, 64, 3)), ({"size": (10, 20)}, (10, 20, 3)), ({"color": False}, (64, 64))],
)
def test_fetch_imdb_wiki_varied_crops_resized_to_shape(wiki_home, kwargs, shape):
    bunch = fetch_imdb_wiki(data_home=wiki_home, **kwargs)
    assert bunch.images.shape == (len(KEPT),) + shape
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (len(KEPT), int(np.prod(shape)))
    assert 0.0 <= bunch.images.min() and bunch.images.max() <= 1.0


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_fetch_imdb_wiki_non_square_size_is_height_width(wiki_home, color, channels):
    bunch = fetch_imdb_wiki(data_home=wiki_home, size=(12, 30), color=color)
    assert bunch.images.shape == (len(KEPT), 12, 30) + channels


def test_fetch_imdb_wiki_grey_image_repeated_over_channels(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home, size=16)
    grey = bunch.images[list(bunch.filenames).index(_path(GREY_ROW))]
    np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])


def test_fetch_imdb_wiki_size_none_on_varied_crops_asks_for_size(wiki_home):
    with pytest.raises(ValueError, match="pass a size"):
        fetch_imdb_wiki(data_home=wiki_home, size=None)


def test_fetch_imdb_wiki_max_images_keeps_first_kept_rows(wiki_home):
    bunch = fetch_imdb_wiki(data_home=wiki_home, size=8, max_images=2)
    assert list(bunch.filenames) == [_path(i) for i in KEPT[:2]]
    assert bunch.n_total == len(ROWS)


def test_fetch_imdb_wiki_return_X_y_gives_data_and_age(wiki_home):
    X, y = fetch_imdb_wiki(data_home=wiki_home, size=8, return_X_y=True)
    assert X.shape == (len(KEPT), 8 * 8 * 3)
    np.testing.assert_array_equal(y, [ROWS[i][-1] for i in KEPT])


def test_fetch_imdb_wiki_second_call_reads_cache(wiki_home, monkeypatch):
    first = fetch_imdb_wiki(data_home=wiki_home, size=8)

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of read from the cache")

    monkeypatch.setattr(_imdb_wiki, "read_images", fail)
    monkeypatch.setattr(_imdb_wiki, "_read_metadata", fail)
    second = fetch_imdb_wiki(data_home=wiki_home, size=8)
    for key in ("images", "age", "gender", "name", "filenames"):
        np.testing.assert_array_equal(first[key], second[key])
    assert first.n_filtered == second.n_filtered and first.n_total == second.n_total


def test_fetch_imdb_wiki_imdb_source_reads_imdb_struct(tmp_path):
    home = build_imdb_wiki(tmp_path, source="imdb")
    bunch = fetch_imdb_wiki(data_home=home, source="imdb", size=8)
    assert list(bunch.filenames) == [_path(i) for i in KEPT]
    assert "IMDb" in bunch.DESCR


def test_fetch_imdb_wiki_missing_no_download_names_folder_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fetch_imdb_wiki(data_home=tmp_path, download_if_missing=False)
    message = str(info.value)
    assert str(tmp_path / "imdb_wiki") in message and "wiki_crop/wiki.mat" in message
    assert "data.vision.ee.ethz.ch" in message and "wiki_crop.tar" in message


def test_fetch_imdb_wiki_missing_image_raises_naming_it(wiki_home):
    (wiki_home / "imdb_wiki" / "wiki_crop" / _path(0)).unlink()
    with pytest.raises(FileNotFoundError, match=_path(0)):
        fetch_imdb_wiki(data_home=wiki_home)


def test_fetch_imdb_wiki_mat_without_struct_raises(wiki_home):
    from scipy.io import savemat

    savemat(wiki_home / "imdb_wiki" / "wiki_crop" / "wiki.mat", {"other": np.zeros(3)})
    with pytest.raises(ValueError, match="'wiki' struct"):
        fetch_imdb_wiki(data_home=wiki_home)


def test_fetch_imdb_wiki_everything_filtered_raises(wiki_home):
    with pytest.raises(ValueError, match="lower min_face_score"):
        fetch_imdb_wiki(data_home=wiki_home, min_face_score=100)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": "imdb_crop"}, "source"),
        ({"max_images": 1.5}, "max_images"),
        ({"size": -1}, "size"),
    ],
)
def test_fetch_imdb_wiki_bad_parameter_raises_clear_error(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_imdb_wiki(data_home=tmp_path, **kwargs)


@pytest.mark.network
def test_fetch_imdb_wiki_missing_downloads_tar_from_mirror(mirror, tmp_path):
    built = build_imdb_wiki(tmp_path / "built")
    archive = tmp_path / "wiki_crop.tar"
    with tarfile.open(archive, "w") as tf:  # the real archive is an uncompressed tar
        tf.add(built / "imdb_wiki" / "wiki_crop", arcname="wiki_crop")
    mirror(archive)
    home = tmp_path / "home"
    bunch = fetch("imdb_wiki", data_home=home, size=8)
    assert list(bunch.filenames) == [_path(i) for i in KEPT]
    assert (home / "imdb_wiki" / "wiki_crop" / "wiki.mat").is_file()
    assert not (home / "imdb_wiki" / "wiki_crop.tar").exists()


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file" + b"\0" * 10], ids=["zero-byte", "truncated"])
def test_fetch_imdb_wiki_damaged_mat_raises_naming_file(wiki_home, content):
    (wiki_home / "imdb_wiki" / "wiki_crop" / "wiki.mat").write_bytes(content)
    with pytest.raises(ValueError, match=r"IMDB-WIKI: .*wiki\.mat cannot be read as a MATLAB file"):
        fetch_imdb_wiki(data_home=wiki_home, download_if_missing=False)
