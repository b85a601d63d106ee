"""Every image-file fetcher's Bunch gives each sample's absolute image path in ``paths``."""

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from skface.datasets import (
    _celeba,
    _imdb_wiki,
    _keypoints,
    _lfw,
    _orl,
    _utkface,
    fetch_celeba,
    fetch_imdb_wiki,
    fetch_lfw_gender,
    fetch_lfw_pairs,
    fetch_lfw_people,
    fetch_orl_faces,
    fetch_utkface,
    fetch_youtube_faces_keypoints,
)

from .conftest import build_lfw
from .test_celeba import build_celeba
from .test_imdb_wiki import build_imdb_wiki
from .test_keypoints import YT_TRAIN, write_youtube
from .test_orl import build_orl
from .test_utkface import VALID, build_utkface


def _youtube(home):
    write_youtube(home, "training", YT_TRAIN, np.random.default_rng(0))
    write_youtube(home, "test", {"Valerie_Harper_30.jpg": (64, 64)}, np.random.default_rng(1))


# name -> (build the data home, fetch from it, the images folder the filenames are relative to)
CASES = {
    "lfw_people": (build_lfw, lambda h: fetch_lfw_people(data_home=h, download_if_missing=False),
                   "lfw/lfw-deepfunneled"),
    "lfw_pairs": (build_lfw, lambda h: fetch_lfw_pairs(data_home=h, subset="dev_test",
                                                       download_if_missing=False),
                  "lfw/lfw-deepfunneled"),
    "lfw_gender": (build_lfw, lambda h: fetch_lfw_gender(data_home=h, download_if_missing=False),
                   "lfw/lfw-deepfunneled"),
    "utkface": (lambda h: build_utkface(h, list(VALID)),
                lambda h: fetch_utkface(data_home=h, size=8), "utkface/UTKFace"),
    "celeba": (build_celeba, lambda h: fetch_celeba(data_home=h, size=8, download_if_missing=False),
               "celeba/img_align_celeba"),
    "imdb_wiki": (build_imdb_wiki, lambda h: fetch_imdb_wiki(data_home=h, size=8,
                                                             download_if_missing=False),
                  "imdb_wiki/wiki_crop"),
    "youtube_faces_keypoints": (_youtube, lambda h: fetch_youtube_faces_keypoints(
        data_home=h, size=8), "youtube_faces_keypoints/training"),
    "orl_faces": (build_orl, lambda h: fetch_orl_faces(data_home=h, size=8), "orl/att_faces"),
}


def _check_paths(bunch, home, images_dir):
    paths = bunch.paths
    assert paths.shape == bunch.filenames.shape
    assert paths.dtype.kind == "U"
    root = os.path.join(str(home), *images_dir.split("/"))
    for path, name in zip(paths.ravel(), bunch.filenames.ravel()):
        assert os.path.isabs(path) and os.path.isfile(path)
        assert Path(path) == Path(root) / name  # the file the sample was decoded from


@pytest.mark.parametrize("name", sorted(CASES))
def test_fetcher_paths_absolute_existing_files_of_each_sample(tmp_path, name, monkeypatch):
    build, load, images_dir = CASES[name]
    home = tmp_path / "home"
    build(home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # UTKFace's skipped files: not the point
        first = load(home)
    _check_paths(first, home.resolve(), images_dir)

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of read from the cache")

    # From the cache, too: the paths are made at return time, not stored.
    for module in (_celeba, _imdb_wiki, _keypoints, _lfw, _orl, _utkface):
        monkeypatch.setattr(module, "read_images", fail)
    second = load(home)
    np.testing.assert_array_equal(first.paths, second.paths)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fetcher_paths_follow_a_copied_data_home(tmp_path, name):
    build, load, images_dir = CASES[name]
    home = tmp_path / "home"
    build(home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        load(home)
        # A copy elsewhere (a data home moved or mounted at another path) gives its own files.
        moved = tmp_path / "elsewhere" / "home"
        shutil.copytree(home, moved)
        shutil.rmtree(home)
        bunch = load(moved)
    _check_paths(bunch, moved.resolve(), images_dir)


@pytest.mark.realdata
@pytest.mark.parametrize("name, kwargs", [
    ("utkface", dict(size=12, color=False)),
    ("orl_faces", dict(size=16)),
    ("youtube_faces_keypoints", dict(subset="test", size=16)),
    ("lfw_people", dict(subset="dev_test", resize=0.1)),
    ("lfw_pairs", dict(subset="dev_test", resize=0.1)),
])
def test_fetcher_paths_real_data_every_file_exists(shared_data, name, kwargs):
    from skface.datasets import fetch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        bunch = fetch(name, data_home=shared_data, download_if_missing=False, **kwargs)
    paths = bunch.paths.ravel()
    assert len(paths) == bunch.filenames.size > 0
    assert all(os.path.isfile(p) for p in paths)
    assert all(p.startswith(str(shared_data) + os.sep) for p in paths)
