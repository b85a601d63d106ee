"""Tests for the ``skface`` command line: every command's errors are one line and exit 2."""

import os
import pathlib
import socket
import subprocess
import sys
import zipfile

import pytest

import skface.datasets
import skface.models
from skface import cli
from skface._persist import ModelFormatError
from skface.datasets import ChecksumError


def _closed_port():
    # Bound then closed: nothing listens there, so a connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_network_no_traceback(monkeypatch):
    # A command that downloads must hit a closed local port, never the internet; and a
    # user's SKFACE_TRACEBACK must not change what these tests see.
    monkeypatch.setenv("SKFACE_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("SKFACE_TRACEBACK", raising=False)


def _error_line(capsys, command):
    """The one ``skface COMMAND: error: ...`` line on stderr; no traceback around it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"skface {command}: error: ")]
    assert len(lines) == 1, err
    assert err.rstrip().endswith(lines[0])  # the last thing printed
    return lines[0]


def _subprocess(args, env=None, timeout=120):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "skface", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


# -- fetch -----------------------------------------------------------------------------


def test_cli_fetch_unknown_dataset_one_line_lists_datasets(capsys):
    assert cli.main(["fetch", "no_such_set"]) == 2
    line = _error_line(capsys, "fetch")
    assert "Unknown dataset 'no_such_set'" in line and "lfw_people" in line


def test_cli_fetch_missing_data_home_one_line_names_folder(tmp_path, capsys):
    # UTKFace cannot be downloaded: the message says where to put it.
    home = tmp_path / "no_such_home"
    assert cli.main(["fetch", "utkface", "--data-home", str(home)]) == 2
    line = _error_line(capsys, "fetch")
    assert "utkface" in line.lower() and str(home) in line and "SKFACE_DATA" in line


def test_cli_fetch_closed_mirror_port_one_line_exit_2_no_folder_left(tmp_path):
    # `skface fetch --download` downloads what is missing; the mirror is a closed local port.
    home = tmp_path / "empty"
    proc = _subprocess(["fetch", "lfw_people", "--download", "--data-home", str(home)])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    # Announced before it starts: dataset, file and URL, destination.
    assert lines[0].startswith("skface: downloading LFW") and "lfw-deepfunneled.tgz" in lines[0]
    assert "127.0.0.1" in lines[0] and str(home / "lfw") in lines[0]
    last = lines[-1]
    # Whether skface wraps it (DownloadError) or not (requests' ConnectionError).
    assert last.startswith("skface fetch: error: ")
    assert "127.0.0.1" in last and "refused" in last.lower()
    assert not home.exists()  # no folder, no partial download left behind


def test_cli_fetch_missing_downloadable_without_download_flag_says_add_it(tmp_path, capsys):
    home = tmp_path / "home"
    assert cli.main(["fetch", "lfw_people", "--data-home", str(home)]) == 2
    line = _error_line(capsys, "fetch")
    assert "--download" in line and str(home / "lfw") in line
    assert not home.exists()  # nothing downloaded, no folder made


def test_cli_fetch_help_lists_downloadable_and_manual_datasets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fetch", "--help"])
    out = capsys.readouterr().out
    auto = next(line for line in out.splitlines() if "downloadable with --download" in line)
    manual = next(line for line in out.splitlines() if "by hand" in line)
    assert "lfw_people" in auto and "olivetti_faces" in auto and "utkface" not in auto
    assert "utkface" in manual and "lfw_people" not in manual
    assert "--download" in out


def test_cli_fetch_empty_pairs_file_one_line_not_stop_iteration_trace(tmp_path, capsys):
    # A zero-byte pairs.txt made the reader's next() raise a bare StopIteration; whether
    # the reader now says so itself or the CLI explains the bare StopIteration, one line.
    faces = tmp_path / "lfw" / "lfw-deepfunneled" / "A_B"
    faces.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (250, 250)).save(faces / "A_B_0001.jpg")
    (tmp_path / "lfw" / "pairs.txt").write_bytes(b"")
    assert cli.main(["fetch", "lfw_pairs", "--data-home", str(tmp_path)]) == 2
    line = _error_line(capsys, "fetch")
    assert "empty" in line


def test_cli_fetch_unreadable_image_one_line_names_file(tmp_path, capsys):
    # PIL's UnidentifiedImageError is an OSError: a damaged file, not a bug.
    faces = tmp_path / "lfw" / "lfw-deepfunneled" / "A_B"
    faces.mkdir(parents=True)
    (faces / "A_B_0001.jpg").write_bytes(b"not a jpeg")
    assert cli.main(["fetch", "lfw_people", "--data-home", str(tmp_path)]) == 2
    assert "A_B_0001.jpg" in _error_line(capsys, "fetch")


@pytest.mark.parametrize(
    "exc, expected",
    [(OSError("image file is truncated (3 bytes not processed)"),
      "OSError: image file is truncated (3 bytes not processed)"),
     (PermissionError(13, "Permission denied", "/data/lfw"),
      "[Errno 13] Permission denied: '/data/lfw'"),
     (EOFError("Compressed file ended before the end-of-stream marker was reached"),
      "EOFError: Compressed file ended before the end-of-stream marker was reached"),
     (EOFError(), "a file ended early (EOFError)"),
     (StopIteration(), "a file ended before the data it should hold (StopIteration)"),
     (KeyError("lfw_peeple"), "lfw_peeple"),
     (ChecksumError("lfw.tgz does not match its pinned checksum"),
      "lfw.tgz does not match its pinned checksum"),
     (ModelFormatError("m.skface is not an skface model"), "m.skface is not an skface model"),
     (zipfile.BadZipFile("File is not a zip file"), "BadZipFile: File is not a zip file"),
     (ConnectionRefusedError(111, "Connection refused"), "[Errno 111] Connection refused"),
     (ValueError("first line\n  second line\n"), "first line second line")],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_cli_fetch_expected_failures_one_line_exit_2(monkeypatch, capsys, exc, expected):
    def failing(name, **kwargs):
        raise exc

    monkeypatch.setattr(skface.datasets, "fetch", failing)
    assert cli.main(["fetch", "lfw_people"]) == 2
    line = _error_line(capsys, "fetch")
    assert line.endswith(expected) or expected in line, line


def test_cli_download_error_one_line(monkeypatch, capsys):
    # skface.datasets.DownloadError is an OSError: reported in one line like any other.
    assert issubclass(skface.datasets.DownloadError, OSError)

    def failing(name, **kwargs):
        raise skface.datasets.DownloadError(
            "lfw-deepfunneled.tgz: the server answered 503; try again later")

    monkeypatch.setattr(skface.datasets, "fetch", failing)
    assert cli.main(["fetch", "lfw_people"]) == 2
    assert "server answered 503" in _error_line(capsys, "fetch")


def test_cli_fetch_programming_error_keeps_traceback(monkeypatch):
    # A TypeError is a bug in skface or a plugin: hiding its trace would hide the bug.
    def broken(name, **kwargs):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(skface.datasets, "fetch", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli.main(["fetch", "lfw_people"])


# -- --traceback, SKFACE_TRACEBACK, Ctrl-C ----------------------------------------------


@pytest.mark.parametrize("argv", [["--traceback", "fetch", "no_such_set"],
                                  ["fetch", "no_such_set", "--traceback"]],
                         ids=["before", "after"])
def test_cli_traceback_flag_before_or_after_command_prints_trace(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "get_plugin" in err
    assert err.rstrip().splitlines()[-1].startswith("skface fetch: error: Unknown dataset")


@pytest.mark.parametrize("value, shown", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_cli_traceback_env_variable_prints_trace(monkeypatch, capsys, value, shown):
    monkeypatch.setenv("SKFACE_TRACEBACK", value)
    assert cli.main(["train", "no_such_recipe", "--out", "m.skface"]) == 2
    err = capsys.readouterr().err
    assert ("Traceback" in err) is shown
    assert err.rstrip().splitlines()[-1].startswith("skface train: error: Unknown recipe")


@pytest.mark.parametrize("command", [["datasets"], ["models"], ["fetch", "lfw_people"],
                                     ["train", "dbn_olivetti", "--out", "m.skface"]])
def test_cli_keyboard_interrupt_exits_130_without_trace(monkeypatch, capsys, command):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(skface.datasets, "list_datasets", interrupted)
    monkeypatch.setattr(skface.datasets, "fetch", interrupted)
    monkeypatch.setattr(skface.models, "get_model_cache", interrupted)
    from skface import train

    monkeypatch.setattr(train, "train", interrupted)
    assert cli.main(command + ["--quiet"] * (command[0] == "train")) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == f"skface {command[0]}: interrupted"


def test_cli_subprocess_traceback_flag_and_plain_run(tmp_path):
    plain = _subprocess(["fetch", "no_such_set"])
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.count("\n") == 1  # one line, nothing else
    traced = _subprocess(["fetch", "no_such_set", "--traceback"])
    assert traced.returncode == 2 and "Traceback" in traced.stderr


# -- datasets --------------------------------------------------------------------------


def test_cli_datasets_unreadable_folder_row_unreadable_others_listed(tmp_path, monkeypatch,
                                                                     capsys):
    # Tests run as root, where chmod 000 does not stop reads: the listing of the folder
    # fails as it would for another user.
    (tmp_path / "utkface" / "UTKFace").mkdir(parents=True)
    (tmp_path / "utkface" / "UTKFace" / "1_0_0_x.jpg").write_bytes(b"x")
    (tmp_path / "orl" / "att_faces").mkdir(parents=True)
    (tmp_path / "orl" / "att_faces" / "README").write_bytes(b"x" * 2048)
    locked = tmp_path / "utkface" / "UTKFace"
    real_iterdir = pathlib.Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    assert cli.main(["datasets", "--data-home", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines()[2:-1]}
    assert set(rows) == set(skface.datasets.list_datasets())  # every dataset still listed
    assert rows["utkface"][1:3] == ["unreadable", "-"]
    assert rows["orl_faces"][1:4] == ["yes", "2.0", "KB"]
    assert "Traceback" not in captured.err
    assert captured.err.strip() == (
        f"skface datasets: warning: cannot read utkface's folder: [Errno 13] Permission "
        f"denied: '{locked}'. Check its permissions, or point --data-home elsewhere."
    )


def _deny_like_chmod_000(monkeypatch, locked):
    """Make ``locked`` behave as a chmod 000 folder does for a user who is not root.

    Its listing fails, and so does reaching anything inside it (no search
    permission), whatever call asks: os.listdir (pathlib's iterdir), os.scandir
    (os.walk), os.stat (exists, is_dir). The folder itself can still be stat'ed.
    """
    locked = os.fspath(locked)

    def denied(path):
        return PermissionError(13, "Permission denied", os.fspath(path))

    def inside(path):
        try:
            path = os.path.abspath(os.fspath(path))
        except TypeError:  # a file descriptor
            return False
        return path.startswith(locked + os.sep)

    for name in ("listdir", "scandir"):
        real = getattr(os, name)

        def listing(path=".", _real=real):
            if os.path.abspath(os.fspath(path)) == locked or inside(path):
                raise denied(path)
            return _real(path)

        monkeypatch.setattr(os, name, listing)
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def stat(path, *args, _real=real, **kwargs):
            if inside(path):
                raise denied(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, stat)


def test_cli_datasets_chmod_000_folder_row_unreadable(tmp_path, monkeypatch, capsys):
    # It skipped as root (root reads any folder), so never ran in CI: the folder is now
    # refused as the system refuses it to another user.
    locked = tmp_path / "utkface" / "UTKFace"
    locked.mkdir(parents=True)
    (locked / "1_0_0_x.jpg").write_bytes(b"x")
    with monkeypatch.context() as patch:
        _deny_like_chmod_000(patch, locked)
        status = cli.main(["datasets", "--data-home", str(tmp_path)])
    assert status == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines()[2:-1]}
    assert rows["utkface"][1:3] == ["unreadable", "-"]
    assert set(rows) == set(skface.datasets.list_datasets())
    assert "Traceback" not in captured.err
    assert "cannot read utkface's folder" in captured.err and str(locked) in captured.err


def test_cli_datasets_shared_folder_size_once_others_say_shared_total_once(tmp_path, capsys):
    faces = tmp_path / "lfw" / "lfw-deepfunneled" / "A_B"
    faces.mkdir(parents=True)
    (faces / "A_B_0001.jpg").write_bytes(b"x" * 3072)
    (tmp_path / "lfw" / "pairs.txt").write_bytes(b"x" * 1024)  # lfw_pairs present too
    (tmp_path / "orl" / "att_faces").mkdir(parents=True)
    (tmp_path / "orl" / "att_faces" / "README").write_bytes(b"x" * 2048)
    assert cli.main(["datasets", "--data-home", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert rows["lfw_people"].split()[1:4] == ["yes", "4.0", "KB"]
    assert rows["lfw_pairs"].split()[1:5] == ["yes", "shared", "with", "lfw_people"]
    assert rows["lfw_gender"].split()[1:3] == ["no", "-"]  # its gender lists are absent
    # 4 KB of LFW counted once, not once per LFW dataset, plus ORL's 2 KB.
    assert lines[-1].startswith("total: 6.0 KB on disk in 2 dataset folders")


def test_cli_datasets_listing_fails_one_line_exit_2(tmp_path, monkeypatch, capsys):
    # Any other OSError of the listing itself (not of one row) ends the command in one line.
    def failing():
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(skface.datasets, "list_datasets", failing)
    assert cli.main(["datasets"]) == 2
    assert "Permission denied" in _error_line(capsys, "datasets")


# -- models ----------------------------------------------------------------------------


def test_cli_models_unreadable_cache_one_line(monkeypatch, capsys):
    source = skface.models.ModelSource(url="https://example.invalid/m.skface", sha256="ab" * 32)
    monkeypatch.setattr(skface.models, "_sources", lambda: {"m": source})

    def unreadable(name, **kwargs):
        raise PermissionError(13, "Permission denied", "/cache/models/m")

    monkeypatch.setattr(skface.models, "cached_path", unreadable)
    assert cli.main(["models"]) == 2
    assert "Permission denied: '/cache/models/m'" in _error_line(capsys, "models")


def test_cli_models_traceback_flag_after_command_prints_trace(monkeypatch, capsys):
    def bad():
        raise ValueError("sha256 must be 64 hex digits, got 'abc'.")

    monkeypatch.setattr(skface.models, "_sources", bad)
    assert cli.main(["models", "--traceback"]) == 2
    assert "Traceback" in capsys.readouterr().err


# -- info ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A DBN saved with training notes, and a KeypointRegressor (predict only), 16x16 grey."""
    import numpy as np

    from skface._persist import save

    folder = tmp_path_factory.mktemp("models")
    rng = np.random.RandomState(0)
    X = rng.rand(12, 16, 16).astype(np.float32)
    dbn = skface.DBNReconstructor(hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1,
                                  device="cpu").fit(X)
    save(dbn, folder / "dbn.skface", info={"recipe": "tiny", "n_images": 12})
    kp = skface.KeypointRegressor(layer_channels=(4,), convs_per_layer=1, input_size=16,
                                  max_epochs=1, device="cpu").fit(X, rng.rand(12, 10))
    kp.save(folder / "kp.skface")
    return folder


def test_cli_info_prints_class_input_notes_versions(tiny_models, capsys):
    # Nothing said what a model file expects until an input of another size failed.
    path = tiny_models / "dbn.skface"
    assert cli.main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = {line[:9].strip(): line[10:] for line in lines if line[:9].strip()}
    assert fields["class"] == "DBNReconstructor (skface.estimators._dbn), fitted"
    assert fields["input"] == "16x16 grey images (image_shape_ 16, 16, 1)"
    assert fields["trained"] == "recipe: tiny" and "          n_images: 12" in lines
    assert fields["versions"].startswith(f"skface {skface.__version__}, torch ")
    assert fields["file"].startswith(f"{path} (")


def test_cli_info_json_is_describe(tiny_models, capsys):
    import json

    from skface._persist import describe

    path = tiny_models / "kp.skface"
    assert cli.main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == describe(path)


def test_cli_info_missing_file_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "dbn.skfce")]) == 2
    assert _error_line(capsys, "info") == (
        f"skface info: error: No model file at {tmp_path / 'dbn.skfce'}.")


# -- embed: the model is checked before the images ---------------------------------------


def test_cli_embed_method_the_model_lacks_suggests_one_before_listing_images(
    tiny_models, tmp_path, monkeypatch, capsys
):
    # It searched the folders, then loaded the model, then said only "has no transform".
    from skface.parallel import _embed

    def collect(images):
        raise AssertionError("the images were listed before the model was checked")

    monkeypatch.setattr(_embed, "collect_image_files", collect)
    status = cli.main(["embed", str(tiny_models / "kp.skface"), str(tmp_path), "--workers", "0",
                       "--out", str(tmp_path / "e.parquet")])
    assert status == 2
    assert _error_line(capsys, "embed") == (
        "skface embed: error: KeypointRegressor has no transform method; it has predict: run "
        "again with --method predict.")


# -- cache -----------------------------------------------------------------------------


def _fill_cache(root):
    """Two datasets' decoded entries, a model, and a file skface did not write."""
    for name, key, nbytes in [("utkface", "a1", 3072), ("utkface", "b2", 1024),
                              ("lfw_people", "c3", 2048)]:
        entry = root / name / key
        entry.mkdir(parents=True)
        (entry / "manifest.json").write_text("{}")
        (entry / "images.npy").write_bytes(b"x" * (nbytes - 2))
    (root / "models" / "mtcnn").mkdir(parents=True)
    (root / "models" / "mtcnn" / "w.safetensors").write_bytes(b"x" * 1024)
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_bytes(b"keep me")


def test_cli_cache_sizes_per_dataset_and_model_and_total(tmp_path, capsys):
    _fill_cache(tmp_path)
    assert cli.main(["cache", "--cache-home", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache: {tmp_path}"
    rows = [line.split() for line in lines[2:5]]
    assert rows == [["dataset", "lfw_people", "2.0", "KB", "1", "decoded", "version"],
                    ["dataset", "utkface", "4.0", "KB", "2", "decoded", "versions"],
                    ["model", "mtcnn", "1.0", "KB", "1", "file"]]
    assert lines[5].startswith("total: 7.0 KB in 3 entries")
    assert lines[6] == "not skface's, never cleared: notes"


def test_cli_cache_clear_named_removes_only_those(tmp_path, capsys):
    _fill_cache(tmp_path)
    assert cli.main(["cache", "--cache-home", str(tmp_path), "--clear", "utkface",
                     "mtcnn"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["removed utkface (4.0 KB)", f"removed {os.path.join('models', 'mtcnn')} "
                       "(1.0 KB)", "freed 5.0 KB"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lfw_people", "models", "notes"]
    assert list((tmp_path / "models").iterdir()) == []


def test_cli_cache_clear_all_keeps_what_skface_did_not_write(tmp_path, capsys):
    _fill_cache(tmp_path)
    assert cli.main(["cache", "--cache-home", str(tmp_path), "--clear"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "freed 7.0 KB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "notes"]
    assert (tmp_path / "notes" / "mine.txt").read_bytes() == b"keep me"


def test_cli_cache_clear_unknown_name_removes_nothing_exit_2(tmp_path, capsys):
    _fill_cache(tmp_path)
    assert cli.main(["cache", "--cache-home", str(tmp_path), "--clear", "utkface",
                     "notes"]) == 2
    line = _error_line(capsys, "cache")
    assert "nothing called 'notes'" in line and "Nothing was removed" in line
    assert sorted(p.name for p in (tmp_path / "utkface").iterdir()) == ["a1", "b2"]


def test_cli_cache_real_fetch_entry_listed_and_cleared(tmp_path, monkeypatch, capsys):
    # The listing reads the cache layout skface.datasets writes, not a copy of it.
    import numpy as np

    from skface.datasets._cache import cached_arrays

    monkeypatch.setenv("SKFACE_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "src.txt"
    source.write_text("x")
    cached_arrays("orl_faces", {"size": 8}, source,
                  lambda: {"images": np.zeros((4, 8, 8), np.float32)})
    assert cli.main(["cache"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:2] == ["dataset", "orl_faces"] and row[4:] == ["1", "decoded", "version"]
    assert cli.main(["cache", "--clear", "orl_faces"]) == 0
    assert not (tmp_path / "cache" / "orl_faces").exists()


# -- train -----------------------------------------------------------------------------


def test_cli_train_unknown_recipe_one_line_lists_recipes(tmp_path, capsys):
    assert cli.main(["train", "no_such_recipe", "--out", str(tmp_path / "m.skface")]) == 2
    line = _error_line(capsys, "train")
    assert "Unknown recipe 'no_such_recipe'" in line and "dbn_olivetti" in line


def test_cli_train_missing_data_home_one_line_before_training(tmp_path, capsys):
    out = tmp_path / "m.skface"
    code = cli.main(["train", "sdae_utkface", "--out", str(out), "--data-home",
                     str(tmp_path / "no_such_home"), "--device", "cpu", "--quiet"])
    assert code == 2
    line = _error_line(capsys, "train")
    assert "missing UTKFace" in line and str(tmp_path / "no_such_home") in line
    assert not out.exists()


def test_cli_train_closed_mirror_port_one_line(tmp_path, capsys):
    # Olivetti downloads when missing; the download fails on the closed port.
    code = cli.main(["train", "dbn_olivetti", "--out", str(tmp_path / "m.skface"),
                     "--data-home", str(tmp_path / "empty"), "--device", "cpu", "--quiet"])
    assert code == 2
    line = _error_line(capsys, "train")
    assert "127.0.0.1" in line and "refused" in line.lower()


def test_python_m_skface_train_same_handling_as_skface_train(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "skface.train", "--traceback", "no_such_recipe", "--out",
         str(tmp_path / "m.skface")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("skface train: error: Unknown recipe")


# -- demo ------------------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Make every demo stage fail the test if it runs: the --out check comes first."""
    pytest.importorskip("matplotlib")
    from skface.demo import _run

    def stage(ctx):
        """A stage that must not run."""
        raise AssertionError("a stage ran before the output folder was checked")

    monkeypatch.setattr(_run, "STAGES", tuple((key, stage) for key, _ in _run.STAGES))


@pytest.mark.parametrize("out", ["afile", "afile/report"], ids=["file", "under_file"])
def test_cli_demo_out_is_or_under_a_file_exit_2_before_training(tmp_path, capsys, no_training,
                                                                 out):
    (tmp_path / "afile").write_text("")
    assert cli.main(["demo", "--out", str(tmp_path / out), "--preset", "smoke", "--quiet",
                     "--data-home", str(tmp_path / "empty")]) == 2
    line = _error_line(capsys, "demo")
    assert f"Cannot write the demo's output folder {tmp_path / out}" in line
    assert f"{tmp_path / 'afile'} is a file, not a folder" in line and "--out" in line


def test_cli_demo_out_not_writable_exit_2_before_training(tmp_path, monkeypatch, capsys,
                                                          no_training):
    import tempfile

    # As root a chmod'ed folder stays writable: the write probe fails as it would for a user.
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert cli.main(["demo", "--out", str(tmp_path / "out"), "--preset", "smoke",
                     "--quiet"]) == 2
    line = _error_line(capsys, "demo")
    assert f"output folder {tmp_path / 'out'}: permission denied" in line


def test_cli_demo_failed_stage_exit_1_names_it_even_quiet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from skface.demo import _run

    def broken(ctx):
        """A stage that breaks."""
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(_run, "STAGES", (("dbn", broken),))
    assert cli.main(["demo", "--out", str(tmp_path / "out"), "--preset", "smoke",
                     "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == (f"skface demo: 1 of 1 stages failed (dbn); the report shows their "
                           f"errors: {tmp_path / 'out' / 'report.html'}")


def test_cli_demo_quiet_prints_only_the_report_path(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from skface.demo import _run

    from skface.demo._stages import Section

    def fine(ctx):
        """A stage that works."""
        return Section("dbn", "DBNReconstructor", "DBNReconstructor", status="ok")

    monkeypatch.setattr(_run, "STAGES", (("dbn", fine),))
    assert cli.main(["demo", "--out", str(tmp_path / "out"), "--preset", "smoke",
                     "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str((tmp_path / "out" / "report.html").resolve())


def test_cli_library_warning_one_line_named_for_the_command(monkeypatch, capsys):
    import warnings

    from skface._command import run_command

    def command(args):
        warnings.warn("UTKFace: skipped 3 file(s)\n  that could not be parsed", UserWarning)
        return 0

    assert run_command(command, object(), "skface fetch") == 0
    assert capsys.readouterr().err == (
        "skface fetch: warning: UTKFace: skipped 3 file(s) that could not be parsed\n")


def test_cli_bad_usage_exits_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--preset", "huge"])
    assert exit_.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_cli_version_prints_package_version(capsys):
    import skface

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"skface {skface.__version__}"


def test_cli_subcommand_unknown_option_prints_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: skface demo") and "unrecognized arguments: --bogus" in err


def test_cli_help_has_no_rst_markup(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "``" not in capsys.readouterr().out


@pytest.mark.parametrize("code", [None, 0, 3, "bye"])
def test_cli_system_exit_inside_a_command_one_line_never_success(monkeypatch, capsys, code):
    # A hostile model file naming skface.cli:sys.exit made `skface embed` exit 0.
    def exiting(name, **kwargs):
        raise SystemExit(code)

    monkeypatch.setattr(skface.datasets, "fetch", exiting)
    assert cli.main(["fetch", "lfw_people"]) == cli.EXIT_UNEXPECTED_EXIT == 1
    assert _error_line(capsys, "fetch") == (
        f"skface fetch: error: stopped by an unexpected SystemExit({code!r}) raised by code it "
        "ran; the command did not finish (run again with --traceback to see where)")


def _hostile_copy(model_file, path, class_path, params):
    """``model_file`` with its estimator's class and parameters replaced."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(model_file, "np") as f:
        spec = json.loads(f.metadata()["skface"])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    spec["estimator"]["class"], spec["estimator"]["params"] = class_path, params
    save_file(tensors, path, {"skface": json.dumps(spec)})
    return path


@pytest.mark.parametrize("class_path, params", [
    ("skface.cli:sys.exit", {}),
    ("skface.cli:main", {"argv": ["datasets"]}),
    ("skface._persist:os.system", {}),
], ids=["sys_exit", "cli_main", "os_system"])
def test_cli_embed_hostile_model_file_one_line_nonzero_nothing_written(tmp_path, capsys,
                                                                      class_path, params):
    # `skface embed evil.skface IMAGES` ran the file's code, then printed a traceback
    # (or, for sys.exit, exited 0).
    import numpy as np
    from PIL import Image

    from skface.estimators import DBNReconstructor

    good = tmp_path / "good.skface"
    DBNReconstructor(hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1,
                     device="cpu").fit(np.random.RandomState(0).rand(8, 6, 6)).save(good)
    evil = _hostile_copy(good, tmp_path / "evil.skface", class_path, params)
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "face.png")
    out = tmp_path / "emb.parquet"
    status = cli.main(["embed", str(evil), str(tmp_path / "face.png"), "--out", str(out),
                       "--workers", "0", "--quiet"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status != 0 and len(lines) == 1, captured.err
    assert lines[0].startswith("skface embed: error: ") and "Traceback" not in captured.err
    assert "data home" not in captured.out  # `skface datasets` did not run
    assert not out.exists()


def test_cli_datasets_data_home_is_a_file_one_line_exit_2(tmp_path, capsys):
    # `skface datasets --data-home /etc/passwd` listed every dataset as absent and exited 0.
    home = tmp_path / "passwd"
    home.write_text("root:x:0:0\n")
    for command in ("datasets", "fetch"):
        argv = [command, "olivetti_faces"] if command == "fetch" else [command]
        assert cli.main([*argv, "--data-home", str(home)]) == cli.EXIT_ERROR
        assert _error_line(capsys, command) == (
            f"skface {command}: error: the data home {home} is a file, not a folder: pass "
            "--data-home (or set SKFACE_DATA to) the folder that holds the datasets, or one "
            "to create.")
