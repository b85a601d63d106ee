"""skface.parallel.embed and ``skface embed``: Dask arrays and image files to arrays and Parquet."""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

_EXTRA = 'pip install "skface[distributed]"'
dask = pytest.importorskip("dask", reason=f"dask is not installed: {_EXTRA}")
da = pytest.importorskip("dask.array", reason=f"dask.array is not installed: {_EXTRA}")
distributed = pytest.importorskip("distributed", reason=f"distributed is not installed: {_EXTRA}")
pytest.importorskip("dask_ml", reason=f"dask-ml is not installed: {_EXTRA}")
pq = pytest.importorskip("pyarrow.parquet", reason=f"pyarrow is not installed: {_EXTRA}")

from skface import cli  # noqa: E402
from skface.parallel import _embed  # noqa: E402
from skface.parallel._embed import decode_images, embed  # noqa: E402

# Embeddings are float32 rows of unit norm. A worker runs torch on 1 thread and
# this process on several; on the CPUs tried the results are bit for bit equal,
# but a thread count may change a convolution's summation order: 1e-6 allows that.
ATOL = 1e-6


@pytest.fixture(scope="module")
def faces():
    rng = np.random.RandomState(0)
    X = rng.rand(32, 16, 16, 3).astype(np.float32)
    y = np.repeat(np.arange(4), 8)
    return X, y


@pytest.fixture(scope="module")
def model(faces):
    from skface.estimators import CenterLossEmbedder

    X, y = faces
    return CenterLossEmbedder(
        "small_cnn", backbone_params={"width": 2}, embedding_dim=8, max_epochs=1,
        batch_size=16, random_state=0, device="cpu", verbose=0,
    ).fit(X, y)


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.skface"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def client():
    """Two single-thread worker processes on 127.0.0.1, closed whatever the tests do."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """13 PNG and JPEG 16x16 RGB files, some in a subfolder, and a non-image to skip."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    (folder / "sub").mkdir()
    rng = np.random.RandomState(1)
    for i in range(13):
        pixels = (rng.rand(16, 16, 3) * 255).astype(np.uint8)
        name = f"sub/face{i:02d}.jpg" if i % 3 == 0 else f"face{i:02d}.png"
        Image.fromarray(pixels).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    files = _embed.collect_image_files([str(folder)])
    return folder, files


def _parquet(path):
    table = pq.read_table(path)
    columns = [c for c in table.column_names if c != "file"]
    return table.column("file").to_pylist(), np.column_stack(
        [table.column(c).to_numpy() for c in columns]
    ), columns


# -- Dask arrays ----------------------------------------------------------------------------


def test_embed_dask_array_on_workers_equals_transform(model, faces, client):
    X, _ = faces
    out = embed(model, da.from_array(X, chunks=10))
    assert out.shape == (32, 8) and out.chunks == ((10, 10, 10, 2), (8,))
    assert out.dtype == np.float32
    assert_allclose(out.compute(), model.transform(X), rtol=0, atol=ATOL)


def test_embed_grey_flat_and_rechunked_arrays_keep_shapes_and_values(model, faces):
    X, _ = faces
    expected = model.transform(X)
    flat = embed(model, da.from_array(X.reshape(32, -1), chunks=(8, 100)), batch_size=12)
    assert flat.chunks == ((12, 12, 8), (8,))
    assert_allclose(flat.compute(scheduler="sync"), expected, rtol=0, atol=ATOL)


def test_embed_saved_model_is_loaded_once_per_worker(model, model_path, faces, client):
    X, _ = faces
    images = da.from_array(X, chunks=4)  # 8 tasks over 2 workers
    before = client.run(lambda: _embed._LOADS)
    first = embed(model_path, images, device="cpu").compute()
    after_first = client.run(lambda: _embed._LOADS)
    second = embed(model_path, images, device="cpu").compute()
    after_second = client.run(lambda: _embed._LOADS)
    assert all(after_first[w] - before[w] <= 1 for w in before)
    assert after_second == after_first  # the second job reuses every worker's copy
    assert_array_equal(first, second)
    assert_allclose(first, model.transform(X), rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def classifier(faces):
    from skface.estimators import ConvSDAEFeatures, SDAEClassifier

    X, y = faces
    encoder = ConvSDAEFeatures((4, 8), pretrain_epochs=0, device="cpu", verbose=0)
    return SDAEClassifier(encoder=encoder, max_epochs=1, device="cpu", verbose=0,
                          random_state=0).fit(X, y)


@pytest.mark.parametrize("method, shape", [("predict_proba", (32, 4)), ("predict", (32,))])
def test_embed_predictions_go_through_parallel_postfit_on_flat_rows(
        classifier, faces, client, monkeypatch, method, shape):
    import dask_ml.wrappers

    X, _ = faces
    calls = []
    original = getattr(dask_ml.wrappers.ParallelPostFit, method)

    def spy(self, rows):
        calls.append(rows.shape)
        return original(self, rows)

    monkeypatch.setattr(dask_ml.wrappers.ParallelPostFit, method, spy)
    out = embed(classifier, da.from_array(X, chunks=10), method=method)
    assert calls == [(32, 16 * 16 * 3)]  # ParallelPostFit reads 2-D arrays: flat rows
    assert out.shape == shape and out.chunks[0] == (10, 10, 10, 2)
    expected = getattr(classifier, method)(X)
    assert out.dtype == expected.dtype
    assert_allclose(out.compute(), expected, rtol=0, atol=ATOL)


def test_embed_unknown_method_raises_naming_the_choices(model, faces):
    with pytest.raises(ValueError, match="transform, predict, predict_proba"):
        embed(model, da.from_array(faces[0]), method="fit")


# -- image files ----------------------------------------------------------------------------


def test_embed_files_decodes_to_fitted_shape_and_matches_transform(model_path, model,
                                                                   image_files):
    _, files = image_files
    out = embed(model_path, files, batch_size=5, device="cpu")
    assert out.chunks == ((5, 5, 3), (8,))
    expected = model.transform(decode_images(files, model.image_shape_))
    assert_allclose(out.compute(scheduler="sync"), expected, rtol=0, atol=ATOL)


def test_collect_image_files_folder_is_sorted_and_skips_non_images(image_files):
    folder, files = image_files
    assert len(files) == 13 and not any(f.endswith(".txt") for f in files)
    assert files == sorted(f for f in files if "sub" not in f) + sorted(
        f for f in files if "sub" in f)
    assert _embed.collect_image_files([str(folder / "**" / "*.jpg")]) == [
        f for f in files if f.endswith(".jpg")]


# -- the command line -----------------------------------------------------------------------


def test_cli_embed_on_scheduler_writes_rows_in_input_order(model_path, model, image_files,
                                                         client, tmp_path):
    folder, files = image_files
    out = tmp_path / "emb.parquet"
    status = cli.main(["embed", model_path, str(folder), "--out", str(out), "--chunk-size", "4",
                       "--scheduler", client.scheduler.address, "--device", "cpu", "--quiet"])
    assert status == 0
    names, values, columns = _parquet(out)
    assert names == files
    assert columns == [f"e{i}" for i in range(8)]
    expected = model.transform(decode_images(files, model.image_shape_))
    assert_allclose(values, expected, rtol=0, atol=ATOL)


def test_cli_embed_workers_zero_runs_in_process_without_dask(model_path, model, image_files,
                                                          tmp_path, monkeypatch):
    folder, files = image_files

    def refuse(*args, **kwargs):
        raise AssertionError("--workers 0 must not start Dask")

    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    monkeypatch.setattr(distributed, "Client", refuse)
    out = tmp_path / "emb.parquet"
    # A file, a folder and a pattern together, in the order given.
    args = [files[0], str(folder / "sub"), str(folder / "face1*.png")]
    assert cli.main(["embed", model_path, *args, "--out", str(out), "--workers", "0",
                     "--quiet"]) == 0
    expected_files = _embed.collect_image_files(args)
    names, values, _ = _parquet(out)
    assert names == expected_files
    expected = model.transform(decode_images(expected_files, model.image_shape_))
    assert_allclose(values, expected, rtol=0, atol=ATOL)


def test_cli_embed_local_cluster_gets_single_thread_workers_on_localhost(
        model_path, image_files, client, tmp_path, monkeypatch):
    folder, _ = image_files
    seen = {}

    class FakeCluster:
        # Records the options and hands over the running cluster: no second start-up.
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def __enter__(self):
            return client.cluster

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(distributed, "LocalCluster", FakeCluster)
    out = tmp_path / "emb.parquet"
    assert cli.main(["embed", model_path, str(folder), "--out", str(out), "--workers", "3",
                     "--quiet"]) == 0
    assert {k: seen[k] for k in ("n_workers", "threads_per_worker", "processes", "host",
                                 "dashboard_address")} == {
        "n_workers": 3, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None}
    assert pq.read_table(out).num_rows == 13


def test_cli_embed_missing_file_gives_one_line_error_naming_it(model_path, image_files,
                                                             tmp_path, capsys):
    folder, files = image_files
    missing = str(folder / "absent.png")
    out = tmp_path / "emb.parquet"
    status = cli.main(["embed", model_path, files[0], missing, "--out", str(out),
                       "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR
    assert err == f"skface embed: error: image file not found: {missing}"
    assert not out.exists()


def test_cli_embed_undecodable_file_fails_naming_it_and_writes_nothing(model_path, image_files,
                                                                     tmp_path, capsys):
    folder, files = image_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "emb.parquet"
    status = cli.main(["embed", model_path, files[0], str(broken), "--out", str(out),
                       "--workers", "0", "--chunk-size", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_ERROR and len(err) == 1 and str(broken) in err[0]
    assert list(tmp_path.iterdir()) == [broken]  # no table, no partial file


def test_cli_embed_missing_extra_names_the_install_command(model_path, image_files,
                                                         monkeypatch, capsys):
    _, files = image_files
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an absent package gives
    status = cli.main(["embed", model_path, files[0], "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_ERROR and len(err) == 1
    assert _EXTRA in err[0]


# -- --out, --box, full disks and links ---------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda tmp: tmp / "afolder", r"emb.*afolder: it is a folder; name a file in it"),
    (lambda tmp: tmp / "absent" / "emb.parquet", r"its folder .*absent does not exist"),
    (lambda tmp: tmp / "afile" / "emb.parquet", r"its folder .*afile is a file"),
], ids=["folder", "missing_parent", "parent_is_file"])
def test_cli_embed_bad_out_fails_before_the_model_is_read(image_files, tmp_path, capsys, make,
                                                          match):
    # It used to embed every image, then fail renaming its partial file onto the folder.
    (tmp_path / "afolder").mkdir()
    (tmp_path / "afile").write_text("")
    out = make(tmp_path)
    # No such model: an error about --out shows that it was checked first.
    status = cli.main(["embed", str(tmp_path / "absent.skface"), str(image_files[0]),
                       "--out", str(out), "--workers", "0", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_ERROR and len(err) == 1, err
    assert err[0].startswith("skface embed: error: Cannot write the embeddings table")
    assert pytest.importorskip("re").search(match, err[0]), err[0]


def test_cli_embed_unwritable_out_folder_fails_at_once(model_path, image_files, tmp_path,
                                                       capsys, monkeypatch):
    import tempfile

    # As root every folder is writable: refuse the write probe as the system would a user.
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(_embed, "_prepare", lambda *a: pytest.fail("the model was read"))
    status = cli.main(["embed", model_path, str(image_files[0]), "--out",
                       str(tmp_path / "emb.parquet"), "--workers", "0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR
    assert err == (f"skface embed: error: Cannot write the embeddings table "
                   f"{tmp_path / 'emb.parquet'}: {tmp_path} is not writable (Permission "
                   "denied); pass a path in a folder you can write to.")


@pytest.mark.parametrize("box, match", [
    (["10", "2", "4", "14"], r"box \(10, 2, 4, 14\) is inverted or empty"),
    (["0", "0", "5000", "5000"], r"box \(0, 0, 5000, 5000\) lies mostly outside .*face00\.png "
                                 r"\(16x16 pixels\): 0\.0% of it is image"),
], ids=["inverted", "mostly_outside"])
def test_cli_embed_bad_box_says_box_and_writes_nothing(model_path, image_files, tmp_path,
                                                      capsys, box, match):
    # An inverted box was reported as a damaged image file; a box mostly outside the
    # 250x250 images exited 0, having embedded black padding.
    import re

    folder, _ = image_files
    out = tmp_path / "emb.parquet"
    status = cli.main(["embed", model_path, str(folder / "face01.png"), "--out", str(out),
                       "--workers", "0", "--quiet", "--box", *box])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_ERROR and len(err) == 1, err
    assert re.search(match.replace("face00", "face01"), err[0]), err[0]
    assert "damaged" not in err[0]
    assert not out.exists()


def test_decode_images_box_mostly_outside_any_file_raises_naming_it(image_files, tmp_path):
    from PIL import Image

    _, files = image_files
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(big)
    box = (8, 8, 40, 40)  # inside the 64x64 image, mostly outside the 16x16 ones
    assert decode_images([big], (8, 8, 3), box=box).shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match=rf"lies mostly outside {files[1]} \(16x16"):
        decode_images([big, files[1]], (8, 8, 3), box=box)
    # Half inside is still a face with a margin: kept.
    assert decode_images([files[1]], (8, 8, 3), box=(-4, 0, 12, 16)).shape == (1, 8, 8, 3)


def test_cli_embed_full_disk_keeps_previous_table_and_says_so_in_one_line(model_path,
                                                                          image_files,
                                                                          tmp_path):
    import subprocess

    folder, _ = image_files
    out = tmp_path / "emb.parquet"
    out.write_bytes(b"the previous table")
    # ulimit -f 2: no file over 2 KB (the table is about 3 KB); Python ignores SIGXFSZ,
    # so the write fails with EFBIG, as on a full disk.
    proc = subprocess.run(
        ["bash", "-c", 'ulimit -f 2; exec "$0" -m skface embed "$@"', sys.executable,
         model_path, str(folder), "--out", str(out), "--workers", "0", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    # Warnings (two lines each) may come first; the error is one line, and the last.
    lines = [line for line in proc.stderr.splitlines() if line.startswith("skface embed:")]
    assert lines and proc.stderr.rstrip().endswith(lines[-1]), proc.stderr
    assert proc.returncode == cli.EXIT_ERROR, proc.stderr
    assert lines == [f"skface embed: error: Could not write the embeddings table {out}: the "
                     "disk is full (or a file-size limit was reached); the previous file is "
                     "unchanged."], proc.stderr
    assert out.read_bytes() == b"the previous table"
    assert [p.name for p in tmp_path.iterdir()] == ["emb.parquet"]  # no partial file


def test_embed_files_to_parquet_out_symlink_kept_target_replaced(model, image_files, tmp_path):
    _, files = image_files
    target = tmp_path / "store" / "emb.parquet"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "emb.parquet"
    link.symlink_to(target)
    _embed.embed_files_to_parquet(model, files[:3], link, progress=False)
    assert link.is_symlink() and link.resolve() == target
    names, values, _ = _parquet(target)
    assert names == files[:3] and values.shape == (3, 8)
