import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from skface.datasets import fetch_lfw_pairs, fetch_lfw_people, fetch_orl_faces, fetch_utkface
from skface.datasets import _cache
from skface.datasets._cache import MANIFEST, cached_arrays

from .conftest import write_jpeg


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of this test's own, so that its entries can be inspected."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SKFACE_CACHE", str(folder))
    return folder


def _entries(cache, name):
    folder = cache / name
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def _only_entry(cache, name):
    entries = _entries(cache, name)
    assert len(entries) == 1, entries
    return entries[0]


class Counter:
    """A ``compute`` that counts its calls and always returns the same arrays."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {
            "images": np.linspace(0, 1, 2 * 300 * 300, dtype=np.float64).reshape(2, 300, 300),
            "target": np.array([3, 1, 4], dtype=np.intp),
            "names": np.array(["Alice", "Bob"]),
            "skipped": np.array([], dtype=str),
        }


def _check_same(arrays, expected):
    assert sorted(arrays) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(arrays[key], expected[key])
        assert arrays[key].dtype == expected[key].dtype


# --- the key covers every source file ----------------------------------------------


def test_fetch_lfw_people_image_added_to_person_folder_decoded_again(lfw_home, cache):
    assert len(fetch_lfw_people(data_home=lfw_home).filenames) == 6
    person = lfw_home / "lfw" / "lfw-deepfunneled" / "Carol_White"
    write_jpeg(person / "Carol_White_0002.jpg", np.random.default_rng(1))
    bunch = fetch_lfw_people(data_home=lfw_home)
    assert len(bunch.filenames) == 7 and "Carol_White/Carol_White_0002.jpg" in bunch.filenames
    # Carol now has 2 images: min_faces_per_person=2 keeps her.
    assert "Carol White" in fetch_lfw_people(data_home=lfw_home, min_faces_per_person=2).target_names


def test_fetch_lfw_people_image_removed_from_person_folder_decoded_again(lfw_home, cache):
    assert len(fetch_lfw_people(data_home=lfw_home).filenames) == 6
    (lfw_home / "lfw" / "lfw-deepfunneled" / "Bob_Jones" / "Bob_Jones_0002.jpg").unlink()
    bunch = fetch_lfw_people(data_home=lfw_home)
    assert len(bunch.filenames) == 5 and "Bob_Jones/Bob_Jones_0002.jpg" not in bunch.filenames


def test_fetch_lfw_people_selected_image_overwritten_in_place_decoded_again(lfw_home, cache):
    # Only the images an entry was decoded from are checked one by one; this is one.
    first = fetch_lfw_people(data_home=lfw_home, min_faces_per_person=2)
    name = str(first.filenames[0])
    path = lfw_home / "lfw" / "lfw-deepfunneled" / name
    st = path.stat()
    write_jpeg(path, np.random.default_rng(7))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime; ctime still moves
    again = fetch_lfw_people(data_home=lfw_home, min_faces_per_person=2)
    index = list(again.filenames).index(name)
    assert not np.array_equal(again.images[index], first.images[0])


def _rewrite_keeping_times(path, text, same_size=True):
    """Replace a file's bytes but keep its mtime (and size), as a copy with times kept."""
    st = path.stat()
    assert not same_size or len(text.encode()) == st.st_size
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_fetch_lfw_pairs_edited_pairs_file_labels_not_stale(lfw_home, cache):
    path = lfw_home / "lfw" / "pairsDevTrain.txt"
    first = fetch_lfw_pairs(data_home=lfw_home, subset="dev_train")
    assert first.names[0].tolist() == ["Alice_Smith", "Alice_Smith"]
    # Same size and mtime, other pairs: only a hash of the bytes sees the edit.
    _rewrite_keeping_times(path, path.read_text().replace("Alice_Smith\t1\t2", "Bob_Jones\t\t\t1\t2"))
    second = fetch_lfw_pairs(data_home=lfw_home, subset="dev_train")
    assert second.names[0].tolist() == ["Bob_Jones", "Bob_Jones"]
    assert second.filenames[0].tolist() == ["Bob_Jones/Bob_Jones_0001.jpg", "Bob_Jones/Bob_Jones_0002.jpg"]


def test_fetch_lfw_people_edited_people_list_not_stale(lfw_home, cache):
    path = lfw_home / "lfw" / "peopleDevTest.txt"
    assert set(fetch_lfw_people(data_home=lfw_home, subset="dev_test").target_names) == {"Bob Jones"}
    _rewrite_keeping_times(path, "1\nAlice_Smith\t3\n", same_size=False)
    bunch = fetch_lfw_people(data_home=lfw_home, subset="dev_test")
    assert set(bunch.target_names) == {"Alice Smith"}


def test_fetch_utkface_image_overwritten_in_place_decoded_again(tmp_path, cache):
    folder = tmp_path / "utkface" / "UTKFace"
    path = folder / "25_0_0_20170116174525125.jpg.chip.jpg"
    write_jpeg(path, np.random.default_rng(0), size=(20, 20))
    write_jpeg(folder / "3_1_2_20161219140530307.jpg.chip.jpg", np.random.default_rng(1), size=(20, 20))
    before = fetch_utkface(data_home=tmp_path, size=8).images.copy()
    st = path.stat()
    write_jpeg(path, np.random.default_rng(7), size=(20, 20))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its old mtime
    after = fetch_utkface(data_home=tmp_path, size=8).images
    assert not np.allclose(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_fetch_lfw_people_unchanged_files_served_from_cache_one_entry(lfw_home, cache, monkeypatch):
    from skface.datasets import _lfw

    first = fetch_lfw_people(data_home=lfw_home)
    monkeypatch.setattr(_lfw, "read_images", pytest.fail)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = fetch_lfw_people(data_home=lfw_home)
    np.testing.assert_array_equal(first.images, second.images)
    assert len(_entries(cache, "lfw_people")) == 1


def test_cached_arrays_stale_entry_replaced_not_kept(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"1")
    cached_arrays("t", {}, src, Counter(), cache_home=tmp_path / "c")
    (src / "b.jpg").write_bytes(b"2")
    cached_arrays("t", {}, src, Counter(), cache_home=tmp_path / "c")
    # The entry of the old files is removed, not left to fill the disk.
    assert len(_entries(tmp_path / "c", "t")) == 1


def test_cached_arrays_dangling_link_in_source_still_served_warm(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"1")
    (src / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    compute = Counter()
    cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    assert compute.calls == 1
    (tmp_path / "nowhere.jpg").write_bytes(b"2")  # the link now leads to a file
    cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    assert compute.calls == 2


@pytest.mark.realdata
def test_cached_arrays_lfw_13233_files_recorded_and_checked_under_a_second(shared_data):
    import time

    paths = [shared_data / "lfw" / "lfw-deepfunneled", shared_data / "lfw" / "pairs.txt"]
    _cache._snapshot(paths)  # the first walk also warms the OS's caches
    start = time.perf_counter()
    records = _cache._snapshot(paths)
    assert time.perf_counter() - start < 1.0
    assert len(records[0]["files"]) == 13233 and len(records[0]["dirs"]) == 5749 + 1
    start = time.perf_counter()
    assert _cache._changed(json.loads(json.dumps(records))) is None
    assert time.perf_counter() - start < 1.0


# --- damaged entries are rebuilt, never served, never a crash ------------------------


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _retype_header(path):
    # Same length, so only the header's dtype differs: float64 read as int64.
    data = path.read_bytes()
    assert b"'<f8'" in data[:128]
    path.write_bytes(data.replace(b"'<f8'", b"'<i8'", 1))


DAMAGE = {
    "byte altered": (lambda e: _flip_last_byte(e / "images.npy"), "images.npy does not match"),
    "dtype in header changed": (lambda e: _retype_header(e / "images.npy"), "images.npy does not match"),
    "zero-byte member": (lambda e: (e / "target.npy").write_bytes(b""), "target.npy has 0 bytes"),
    "missing member": (lambda e: (e / "target.npy").unlink(), "target.npy is missing"),
    "small member altered": (lambda e: _flip_last_byte(e / "target.npy"), "target.npy does not match"),
    "no completion manifest": (lambda e: (e / MANIFEST).unlink(), "never completed"),
    "zero-byte manifest": (lambda e: (e / MANIFEST).write_bytes(b""), "cannot be read"),
    "sources record altered": (lambda e: _flip_last_byte(e / "sources.json"), "sources.json does not"),
    "sources record missing": (lambda e: (e / "sources.json").unlink(), "sources.json is missing"),
    "manifest edited": (
        lambda e: (e / MANIFEST).write_text((e / MANIFEST).read_text().replace('"<f8"', '"<i8"')),
        "altered",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_cached_arrays_damaged_entry_rebuilt_with_warning(tmp_path, damage):
    spoil, reason = DAMAGE[damage]
    src = tmp_path / "src"
    src.mkdir()
    compute = Counter()
    expected = compute()
    cached_arrays("lfw_people", {}, src, compute, cache_home=tmp_path / "c")
    spoil(_only_entry(tmp_path / "c", "lfw_people"))
    with pytest.warns(RuntimeWarning, match=f"cached lfw_people arrays.*{reason}") as record:
        arrays = cached_arrays("lfw_people", {}, src, compute, cache_home=tmp_path / "c")
    assert len(record) == 1
    assert compute.calls == 3  # decoded again, not served
    _check_same(arrays, expected)
    # Repaired: the next load is a warm one, silent and exact.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrays = cached_arrays("lfw_people", {}, src, compute, cache_home=tmp_path / "c")
    assert compute.calls == 3
    _check_same(arrays, expected)
    assert len(_entries(tmp_path / "c", "lfw_people")) == 1


def test_fetch_orl_faces_zero_byte_cache_member_rebuilt_not_crash(tmp_path, cache):
    from .test_orl import build_orl

    build_orl(tmp_path, subjects=(1, 2), images=(1, 2))
    first = fetch_orl_faces(data_home=tmp_path)
    entry = _only_entry(cache, "orl_faces")
    (entry / "target.npy").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="orl_faces.*target.npy"):
        second = fetch_orl_faces(data_home=tmp_path)
    np.testing.assert_array_equal(first.target, second.target)
    (entry / "target.npy").unlink()
    with pytest.warns(RuntimeWarning, match="orl_faces.*target.npy is missing"):
        third = fetch_orl_faces(data_home=tmp_path)
    np.testing.assert_array_equal(first.target, third.target)


def test_cached_arrays_warm_arrays_writable_and_cache_untouched(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    compute = Counter()
    cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    warm = cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    warm["images"][:] = -1.0  # a map of the cache file, copy-on-write
    warm["target"][:] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cached_arrays("t", {}, src, compute, cache_home=tmp_path / "c")
    _check_same(again, Counter()())
    assert compute.calls == 1


def test_cached_arrays_zero_size_and_scalar_members_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    arrays = {"empty": np.zeros((0, 3), np.float32), "n": np.array(7), "s": np.array([], dtype=str)}
    cached_arrays("t", {}, src, lambda: arrays, cache_home=tmp_path / "c")
    warm = cached_arrays("t", {}, src, pytest.fail, cache_home=tmp_path / "c")
    _check_same(warm, arrays)


def test_cached_arrays_manifest_records_sha256_of_each_member(tmp_path):
    import hashlib

    src = tmp_path / "src"
    src.mkdir()
    cached_arrays("t", {}, src, Counter(), cache_home=tmp_path / "c")
    entry = _only_entry(tmp_path / "c", "t")
    members = json.loads((entry / MANIFEST).read_text())["entry"]["members"]
    assert sorted(members) == ["images", "names", "skipped", "target"]
    for key, meta in members.items():
        assert meta["sha256"] == hashlib.sha256((entry / f"{key}.npy").read_bytes()).hexdigest()


# --- concurrent cold loads ----------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import hashlib, pathlib, sys, time, warnings
    import numpy as np
    from skface.datasets._cache import cached_arrays

    src, cache, ready, n = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]), int(sys.argv[4])
    (ready / sys.argv[5]).touch()
    while len(list(ready.iterdir())) < n:  # start together
        time.sleep(0.01)

    def compute():
        time.sleep(0.3)  # all of them decode at once
        rng = np.random.default_rng(0)
        return {"images": rng.random((50, 100, 100)), "target": np.arange(50)}

    warnings.simplefilter("error")  # a damaged entry warns: none may be seen
    arrays = cached_arrays("lfw_people", {"k": 1}, src, compute, cache_home=cache)
    digest = hashlib.sha256(np.ascontiguousarray(arrays["images"]).tobytes())
    digest.update(np.ascontiguousarray(arrays["target"]).tobytes())
    print(digest.hexdigest())
    """
)


def test_cached_arrays_four_processes_cold_loading_agree(tmp_path):
    src, cache, ready = tmp_path / "src", tmp_path / "cache", tmp_path / "ready"
    src.mkdir()
    ready.mkdir()
    (src / "a.jpg").write_bytes(b"x")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    # The workers import the skface under test, wherever it was imported from here.
    import skface

    root = str(Path(skface.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(src), str(cache), str(ready), "4", str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    digests = {out.strip() for out, _ in outputs}
    rng = np.random.default_rng(0)
    import hashlib

    expected = hashlib.sha256(rng.random((50, 100, 100)).tobytes())
    expected.update(np.arange(50).tobytes())
    assert digests == {expected.hexdigest()}
    # One complete entry, no temporary folder left, and it loads warm and silent.
    assert [p.name for p in (cache / "lfw_people").iterdir() if p.name.startswith(".")] == []
    _only_entry(cache, "lfw_people")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warm = cached_arrays("lfw_people", {"k": 1}, src, pytest.fail, cache_home=cache)
    np.testing.assert_array_equal(warm["target"], np.arange(50))


@pytest.mark.realdata
def test_fetch_lfw_people_real_warm_load_ten_times_faster_than_cold(shared_data, cache):
    import time

    start = time.perf_counter()
    cold = fetch_lfw_people(data_home=shared_data, min_faces_per_person=70)
    cold_s = time.perf_counter() - start
    warm_s = []
    for _ in range(3):
        start = time.perf_counter()
        warm = fetch_lfw_people(data_home=shared_data, min_faces_per_person=70)
        warm_s.append(time.perf_counter() - start)
    np.testing.assert_array_equal(cold.images, warm.images)
    # The foundation's bar; the checks (a stat per image, a sha256 of the arrays) cost
    # about 0.1 s of a warm load.
    assert cold_s >= 10 * min(warm_s), (cold_s, warm_s)
