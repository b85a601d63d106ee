import numpy as np
import pytest

from skface.datasets import fetch_lfw_gender, fetch_lfw_pairs, fetch_lfw_people


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
