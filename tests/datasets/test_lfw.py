import numpy as np
import pytest

from skface.datasets import fetch_lfw_gender, fetch_lfw_pairs, fetch_lfw_people

from .conftest import LFW_PEOPLE


def test_fetch_lfw_people_defaults_match_sklearn_shapes(lfw_home):
    bunch = fetch_lfw_people(data_home=lfw_home)
    assert bunch.images.shape == (6, 62, 47)
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (6, 62 * 47)
    assert 0.0 <= bunch.images.min() and bunch.images.max() <= 1.0
    assert list(bunch.target_names) == ["Alice Smith", "Bob Jones", "Carol White"]
    names = bunch.target_names[bunch.target]
    assert all(f.split("/")[0].replace("_", " ") == n for f, n in zip(bunch.filenames, names))
    assert "Huang" in bunch.DESCR and "Terms" in bunch.DESCR


def test_fetch_lfw_people_min_faces_keeps_frequent_people(lfw_home):
    bunch = fetch_lfw_people(data_home=lfw_home, min_faces_per_person=2)
    assert sorted(bunch.target_names) == ["Alice Smith", "Bob Jones"]
    assert len(bunch.target) == 5


def test_fetch_lfw_people_subset_uses_official_people_lists(lfw_home):
    train = fetch_lfw_people(data_home=lfw_home, subset="dev_train")
    test = fetch_lfw_people(data_home=lfw_home, subset="dev_test")
    assert set(train.target_names) == {"Alice Smith", "Carol White"}
    assert set(test.target_names) == {"Bob Jones"}


def test_fetch_lfw_people_color_box_resize_shape(lfw_home):
    bunch = fetch_lfw_people(data_home=lfw_home, color=True, box=(0, 0, 250, 250), resize=(40, 32))
    assert bunch.images.shape == (6, 40, 32, 3)
    bunch = fetch_lfw_people(data_home=lfw_home, box=(61, 61, 189, 189), resize=None)
    assert bunch.images.shape == (6, 128, 128)


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_fetch_lfw_people_non_square_resize_is_height_width(lfw_home, color, channels):
    bunch = fetch_lfw_people(data_home=lfw_home, resize=(12, 30), color=color)
    assert bunch.images.shape == (6, 12, 30) + channels


def test_fetch_lfw_people_float_resize_scales_height_and_width(lfw_home):
    # A (left, upper, right, lower) box 40 wide and 100 high, halved: 50 rows of 20.
    bunch = fetch_lfw_people(data_home=lfw_home, box=(10, 20, 50, 120), resize=0.5)
    assert bunch.images.shape == (6, 50, 20)


def test_fetch_lfw_pairs_non_square_resize_is_height_width(lfw_home):
    bunch = fetch_lfw_pairs(data_home=lfw_home, subset="dev_train", resize=(12, 30), color=True)
    assert bunch.pairs.shape == (2, 2, 12, 30, 3)


def test_fetch_lfw_gender_non_square_resize_is_height_width(lfw_home):
    bunch = fetch_lfw_gender(data_home=lfw_home, resize=(12, 30))
    assert bunch.images.shape == (len(bunch.target), 12, 30)


def test_fetch_lfw_people_return_X_y_gives_data_and_target(lfw_home):
    X, y = fetch_lfw_people(data_home=lfw_home, return_X_y=True)
    assert X.shape == (6, 62 * 47) and y.shape == (6,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "aligned"}, "variant"),
        ({"subset": "train"}, "subset"),
        ({"min_faces_per_person": -1}, "min_faces_per_person"),
        ({"min_faces_per_person": 10}, "min_faces_per_person"),
        ({"box": (0, 0, 300, 250)}, "box"),
        ({"resize": 0}, "resize"),
    ],
)
def test_fetch_lfw_people_bad_parameter_raises_clear_error(lfw_home, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_lfw_people(data_home=lfw_home, **kwargs)


def test_fetch_lfw_people_missing_variant_no_download_names_folder_and_url(lfw_home):
    with pytest.raises(FileNotFoundError, match=r"lfw_funneled.*lfw-funneled\.tgz|lfw-funneled"):
        fetch_lfw_people(data_home=lfw_home, variant="funneled", download_if_missing=False)


def test_fetch_lfw_people_second_call_reads_cache(lfw_home, monkeypatch):
    from skface.datasets import _lfw

    first = fetch_lfw_people(data_home=lfw_home, min_faces_per_person=1, resize=0.25)

    def fail(*args, **kwargs):
        raise AssertionError("images were decoded again instead of read from the cache")

    monkeypatch.setattr(_lfw, "read_images", fail)
    second = fetch_lfw_people(data_home=lfw_home, min_faces_per_person=1, resize=0.25)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.target_names, second.target_names)


@pytest.mark.parametrize("subset, n_pairs", [("dev_train", 2), ("dev_test", 2), ("10_folds", 20)])
def test_fetch_lfw_pairs_subset_counts_and_targets(lfw_home, subset, n_pairs):
    bunch = fetch_lfw_pairs(data_home=lfw_home, subset=subset)
    assert bunch.pairs.shape == (n_pairs, 2, 62, 47)
    assert bunch.data.shape == (n_pairs, 2 * 62 * 47)
    assert bunch.target.tolist() == [1, 0] * (n_pairs // 2)
    assert bunch.names.shape == (n_pairs, 2)
    assert ("fold" in bunch) == (subset == "10_folds")


def test_fetch_lfw_pairs_10_folds_marks_each_fold(lfw_home):
    bunch = fetch_lfw_pairs(data_home=lfw_home)
    assert np.bincount(bunch.fold).tolist() == [2] * 10
    # Both faces of a matched pair come from the same person's folder.
    assert bunch.filenames[0].tolist() == ["Alice_Smith/Alice_Smith_0001.jpg", "Alice_Smith/Alice_Smith_0003.jpg"]
    same = fetch_lfw_people(data_home=lfw_home)
    i = list(same.filenames).index("Alice_Smith/Alice_Smith_0001.jpg")
    np.testing.assert_array_equal(bunch.pairs[0, 0], same.images[i])


def test_fetch_lfw_gender_conflicts_and_unlabelled_are_excluded(lfw_home):
    bunch = fetch_lfw_gender(data_home=lfw_home)
    assert sorted(bunch.excluded) == ["Bob_Jones/Bob_Jones_0002.jpg", "Carol_White/Carol_White_0001.jpg"]
    assert len(bunch.target) == 4
    labels = dict(zip(bunch.filenames, bunch.target))
    assert labels["Bob_Jones/Bob_Jones_0001.jpg"] == 0
    assert labels["Alice_Smith/Alice_Smith_0002.jpg"] == 1
    assert list(bunch.target_names) == ["male", "female"]


# --- real data -----------------------------------------------------------------


@pytest.mark.realdata
def test_fetch_lfw_people_real_data_agrees_with_sklearn(shared_data, tmp_path):
    from sklearn.datasets import fetch_lfw_people as sk_fetch

    ours = fetch_lfw_people(data_home=shared_data, min_faces_per_person=70)
    # scikit-learn reads <home>/lfw_home/lfw_funneled and wants the pairs files
    # there: point it at the same deep-funneled JPEGs through links.
    sk_home = tmp_path / "sk"
    lfw_home = sk_home / "lfw_home"
    lfw_home.mkdir(parents=True)
    (lfw_home / "lfw_funneled").symlink_to(shared_data / "lfw" / "lfw-deepfunneled")
    for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        (lfw_home / name).symlink_to(shared_data / "lfw" / name)
    theirs = sk_fetch(data_home=sk_home, min_faces_per_person=70, download_if_missing=False)
    assert ours.images.shape == theirs.images.shape == (1288, 62, 47)
    assert len(ours.target_names) == 7
    np.testing.assert_array_equal(ours.target, theirs.target)
    np.testing.assert_array_equal(ours.target_names, theirs.target_names)
    np.testing.assert_allclose(ours.images, theirs.images, atol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("subset, n_pairs", [("dev_train", 2200), ("dev_test", 1000), ("10_folds", 6000)])
def test_fetch_lfw_pairs_real_data_official_counts(shared_data, subset, n_pairs):
    bunch = fetch_lfw_pairs(data_home=shared_data, subset=subset, resize=0.25)
    assert len(bunch.target) == n_pairs
    assert bunch.target.sum() == n_pairs // 2
    if subset == "10_folds":
        assert np.bincount(bunch.fold).tolist() == [600] * 10
        for k in range(10):
            assert bunch.target[bunch.fold == k].sum() == 300


@pytest.mark.realdata
def test_fetch_lfw_gender_real_data_counts(shared_data):
    bunch = fetch_lfw_gender(data_home=shared_data, resize=0.1)
    # 13,233 images: 5 are in both lists and 3 in neither (shared data README).
    assert len(bunch.target) + len(bunch.excluded) == 13233
    assert len(bunch.excluded) == 8
    assert np.bincount(bunch.target).tolist() == [10268 - 5, 2967 - 5]


# --- pairs.txt layout from its header -------------------------------------------------


def _write_view2(lfw, n_folds, per_fold):
    """A pairs.txt of ``n_folds`` folds of ``per_fold`` matched then mismatched pairs."""
    lines = [f"{n_folds}\t{per_fold}"]
    for k in range(n_folds):
        lines += [f"Alice_Smith\t{1 + (k + i) % 3}\t{1 + (k + i + 1) % 3}" for i in range(per_fold)]
        lines += [f"Bob_Jones\t{1 + (k + i) % 2}\tCarol_White\t1" for i in range(per_fold)]
    (lfw / "pairs.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("n_folds, per_fold", [(3, 1), (7, 2), (1, 3)])
def test_fetch_lfw_pairs_10_folds_fold_from_header_when_not_multiple_of_ten(
    lfw_home, n_folds, per_fold
):
    _write_view2(lfw_home / "lfw", n_folds, per_fold)
    bunch = fetch_lfw_pairs(data_home=lfw_home, resize=0.1)
    n_pairs = 2 * n_folds * per_fold
    assert bunch.fold.shape == bunch.target.shape == (n_pairs,)
    np.testing.assert_array_equal(bunch.fold, np.repeat(np.arange(n_folds), 2 * per_fold))
    for k in range(n_folds):
        assert bunch.target[bunch.fold == k].tolist() == [1] * per_fold + [0] * per_fold


def test_fetch_lfw_pairs_count_unlike_header_raises_naming_file(lfw_home):
    pairs = lfw_home / "lfw" / "pairs.txt"
    pairs.write_text("10\t1\n" + "Alice_Smith\t1\t2\nBob_Jones\t1\tCarol_White\t1\n" * 9)
    with pytest.raises(ValueError, match=r"pairs\.txt lists 18 pairs.*10 fold\(s\) of 1.*\(20\)"):
        fetch_lfw_pairs(data_home=lfw_home)


def test_fetch_lfw_pairs_fold_out_of_order_raises_naming_fold(lfw_home):
    pairs = lfw_home / "lfw" / "pairs.txt"
    lines = pairs.read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]  # fold 2: mismatched before matched
    pairs.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"fold 2 of .*pairs\.txt is out of order"):
        fetch_lfw_pairs(data_home=lfw_home)


# --- malformed and empty list files ---------------------------------------------------


@pytest.mark.parametrize(
    "filename, call",
    [
        ("pairs.txt", lambda home: fetch_lfw_pairs(data_home=home)),
        ("pairsDevTrain.txt", lambda home: fetch_lfw_pairs(data_home=home, subset="dev_train")),
        ("peopleDevTest.txt", lambda home: fetch_lfw_people(data_home=home, subset="dev_test")),
        ("gender/male_names.txt", lambda home: fetch_lfw_gender(data_home=home)),
    ],
)
@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["zero-byte", "blank"])
def test_fetch_lfw_empty_list_file_raises_naming_file(lfw_home, filename, call, content):
    path = lfw_home / "lfw" / filename
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"LFW: .*{filename.split('/')[-1]} is empty"):
        call(lfw_home)


@pytest.mark.parametrize(
    "filename, text, match",
    [
        ("pairs.txt", "10\t1\nAlice_Smith\tx\t2\n", r"pairs\.txt line 2 is 'Alice_Smith x 2'"),
        ("pairs.txt", "10\t1\nAlice_Smith\t1\n", r"pairs\.txt line 2 is 'Alice_Smith 1'"),
        ("pairs.txt", "ten\nAlice_Smith\t1\t2\n", r"pairs\.txt starts with 'ten'"),
        ("pairsDevTrain.txt", "1\nAlice_Smith\t1\t2\n", r"pairsDevTrain\.txt lists 1 pairs"),
        ("peopleDevTest.txt", "3\nBob_Jones\t2\n", r"peopleDevTest\.txt starts with '3' but lists 1"),
        ("peopleDevTest.txt", "1\nBob_Jones two\n", r"peopleDevTest\.txt line 2"),
        ("gender/male_names.txt", "Bob_Jones_0001.jpg,male\n", r"male_names\.txt line 1"),
        ("pairs.txt", b"\xff\xfe\x00binary", r"pairs\.txt is not a text file"),
    ],
)
def test_fetch_lfw_malformed_list_file_raises_naming_file_and_line(lfw_home, filename, text, match):
    path = lfw_home / "lfw" / filename
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    call = {
        "pairs.txt": lambda: fetch_lfw_pairs(data_home=lfw_home),
        "pairsDevTrain.txt": lambda: fetch_lfw_pairs(data_home=lfw_home, subset="dev_train"),
        "peopleDevTest.txt": lambda: fetch_lfw_people(data_home=lfw_home, subset="dev_test"),
        "gender/male_names.txt": lambda: fetch_lfw_gender(data_home=lfw_home),
    }[filename]
    with pytest.raises(ValueError, match=match):
        call()


# --- stray files and damaged images ---------------------------------------------------


def test_fetch_lfw_people_hidden_and_non_image_files_skipped(lfw_home):
    images = lfw_home / "lfw" / "lfw-deepfunneled"
    (images / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (images / "Alice_Smith" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (images / "Alice_Smith" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (images / "Bob_Jones" / "._Bob_Jones_0001.jpg").write_bytes(b"\0\5\26\7")  # macOS fork
    (images / "Bob_Jones" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (images / ".Trashes").mkdir()
    (images / ".Trashes" / "x.jpg").write_bytes(b"")
    bunch = fetch_lfw_people(data_home=lfw_home)
    assert sorted(bunch.filenames) == sorted(
        f"{p}/{p}_{i:04d}.jpg" for p, n in LFW_PEOPLE.items() for i in range(1, n + 1)
    )
    # min_faces_per_person counts images only: Carol (1 image) stays out at 2.
    assert fetch_lfw_people(data_home=lfw_home, min_faces_per_person=3).target_names.tolist() == [
        "Alice Smith"
    ]


@pytest.mark.parametrize("damage", ["truncated", "zero-byte", "not an image"])
def test_fetch_lfw_people_damaged_jpeg_error_names_file_dataset_and_fix(lfw_home, damage):
    path = lfw_home / "lfw" / "lfw-deepfunneled" / "Bob_Jones" / "Bob_Jones_0002.jpg"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "zero-byte": b"", "not an image": b"<html>"}[damage])
    with pytest.raises(OSError, match=r"LFW \(deepfunneled\): image .*Bob_Jones_0002\.jpg.*re-download") as info:
        fetch_lfw_people(data_home=lfw_home)
    assert "remove the file" in str(info.value)
