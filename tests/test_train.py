"""Tests for skface.train: the training recipes and ``skface train``."""

import hashlib
import inspect
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import Bunch

import skface
from skface import cli, train
from skface._persist import describe
from skface.datasets import get_fetcher, list_datasets

EXPECTED = {"sdae_utkface", "dbn_olivetti", "keypoints_68", "centerloss_lfw"}


def test_recipes_registry_complete_and_every_preset_clonable():
    assert EXPECTED <= set(train.RECIPES)
    for name, recipe in train.RECIPES.items():
        assert recipe.dataset in list_datasets(), name
        assert set(recipe.presets) == set(train.PRESETS), name
        assert recipe.description and "\n" not in recipe.description
        assert len(recipe.description) < 80
        for preset in train.PRESETS:
            estimator = recipe.build(preset)
            twin = clone(estimator)
            assert type(twin) is type(estimator)
            assert twin.get_params(deep=False).keys() == estimator.get_params(deep=False).keys()
            assert recipe.build(preset) is not estimator  # a fresh estimator each time


def test_recipes_fetch_kwargs_match_their_fetchers_signature():
    # A misspelt fetch keyword would otherwise only show after minutes of decoding.
    for name, recipe in train.RECIPES.items():
        fetcher = get_fetcher(recipe.dataset)
        for preset in train.PRESETS:
            kwargs = train._fetch_kwargs(recipe.preset(preset))
            inspect.signature(fetcher).bind(data_home=None, **kwargs)


def test_get_recipe_unknown_name_lists_recipes():
    with pytest.raises(ValueError,
                       match=r"Unknown recipe 'nope'\. Available recipes: .*dbn_olivetti"):
        train.get_recipe("nope")
    with pytest.raises(ValueError, match="Unknown preset 'huge'.*quick, full"):
        train.get_recipe("dbn_olivetti").preset("huge")


@pytest.mark.parametrize("command", [["-m", "skface", "train"], ["-m", "skface.train"]])
def test_cli_train_unknown_recipe_exits_nonzero_with_one_line(command, tmp_path):
    proc = subprocess.run(
        [sys.executable, *command, "no_such_recipe", "--out", str(tmp_path / "m.skface")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no_such_recipe" in lines[0] and all(name in lines[0] for name in EXPECTED)
    assert not (tmp_path / "m.skface").exists()


def test_cli_train_help_lists_every_recipe(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name, recipe in train.RECIPES.items():
        assert name in out and recipe.description in out


def test_train_subset_and_target_fit_and_save(tmp_path, monkeypatch):
    import skface.datasets

    rng = np.random.RandomState(0)
    images, labels = rng.rand(30, 8, 8).astype(np.float32), np.arange(30)
    seen = {}

    def fake_fetch(name, **kwargs):
        seen.update(name=name, **kwargs)
        return Bunch(images=images, target=labels)

    real_fit = skface.DBNReconstructor.fit

    def recording_fit(self, X, y=None):
        seen["fit"] = (X, y)
        return real_fit(self, X)

    # Patched on the class, not subclassed: save() writes skface's own classes only.
    monkeypatch.setattr(skface.DBNReconstructor, "fit", recording_fit)
    recipe = train.Recipe(
        dataset="olivetti_faces", target="target", description="tiny",
        presets={"quick": train.Preset(
            lambda: skface.DBNReconstructor(hidden_layer_sizes=(4,), pretrain_epochs=1,
                                            finetune_epochs=1),
            fetch_kwargs={"shuffle": True}, n_images=12,
        )},
    )
    monkeypatch.setitem(train.RECIPES, "tiny", recipe)
    monkeypatch.setattr(skface.datasets, "fetch", fake_fetch)
    out = tmp_path / "sub" / "tiny.skface"
    fitted = train.train("tiny", out, data_home=tmp_path, device="cpu", random_state=1)
    assert seen["name"] == "olivetti_faces" and seen["shuffle"] is True
    assert seen["data_home"] == tmp_path
    X, y = seen["fit"]
    assert len(X) == 12 and np.array_equal(images[y], X)  # images and targets stay paired
    assert fitted.random_state == 1 and fitted.device == "cpu"
    assert out.is_file()
    train.train("tiny", out, n_images=100, device="cpu")  # more than there are: all of them
    assert len(seen["fit"][0]) == 30


@pytest.fixture
def fetch_must_not_run(monkeypatch):
    """Fail the test if the dataset is read: a bad --out must stop ``train`` first."""
    import skface.datasets

    def fetch(name, **kwargs):
        raise AssertionError("the dataset was fetched before --out was checked")

    monkeypatch.setattr(skface.datasets, "fetch", fetch)


@pytest.mark.parametrize("out, error, what", [
    ("afile/m.skface", FileExistsError, "afile is a file, not a folder"),
    ("afolder", IsADirectoryError, "it is a folder; name a file in it"),
], ids=["under_file", "folder"])
def test_train_out_unwritable_raises_before_fetching(tmp_path, fetch_must_not_run, out, error,
                                                     what):
    # It used to train for minutes, then fail in save() with "[Errno 17] File exists".
    (tmp_path / "afile").write_text("")
    (tmp_path / "afolder").mkdir()
    with pytest.raises(error, match=rf"Cannot write the model file .*{out}: .*{what}\. "
                                    "Pass another --out"):
        train.train("dbn_olivetti", tmp_path / out, device="cpu")


def test_train_out_folder_not_writable_raises_before_fetching(tmp_path, monkeypatch,
                                                              fetch_must_not_run):
    import tempfile

    # As root every folder is writable: refuse the write probe as the system would a user.
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError, match="m.skface: permission denied"):
        train.train("dbn_olivetti", tmp_path / "m.skface", device="cpu")


def test_cli_train_out_under_file_one_line_exit_2(tmp_path, capsys, fetch_must_not_run):
    (tmp_path / "afile").write_text("")
    code = cli.main(["train", "dbn_olivetti", "--out", str(tmp_path / "afile" / "m.skface"),
                     "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == (f"skface train: error: Cannot write the model file "
                           f"{tmp_path / 'afile' / 'm.skface'}: {tmp_path / 'afile'} is a file, "
                           "not a folder. Pass another --out, a file in a folder you can "
                           "write to.")


@pytest.mark.realdata
def test_cli_train_dbn_olivetti_quick_end_to_end_loads_into_pipeline(
    shared_data, tmp_path, capsys
):
    if not (shared_data / "olivetti").is_dir():
        pytest.skip("no olivetti/ in the shared data")
    out = tmp_path / "dbn.skface"
    code = cli.main(["train", "dbn_olivetti", "--preset", "quick", "--out", str(out),
                     "--data-home", str(shared_data), "--device", "cpu", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert hashlib.sha256(out.read_bytes()).hexdigest() in printed  # what a ModelSource pins
    from sklearn import frozen
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    loaded = skface.load(out, device="cpu")
    faces = skface.datasets.fetch_olivetti_faces(data_home=shared_data)
    codes = loaded.transform(faces.images)
    assert codes.shape == (400, loaded.n_components_)
    # The trained model is a fixed feature extractor in front of a scikit-learn head.
    pipe = make_pipeline(frozen.FrozenEstimator(loaded), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(pipe, faces.images, faces.target, cv=cv).mean()
    assert accuracy > 0.3  # 40 people: chance is 0.025
    np.testing.assert_array_equal(loaded.transform(faces.images), codes)  # never refitted


# A child process that trains a tiny recipe (no dataset read) under a file-size limit:
# the DBN's weights (256 x 1024 float32, 1 MB) exceed it, as a full disk would.
_FULL_DISK_CHILD = """
import sys
import numpy as np
from sklearn.utils import Bunch
import skface, skface.datasets
from skface import cli, train

def fetch(name, **kwargs):
    return Bunch(images=np.random.RandomState(0).rand(20, 32, 32).astype(np.float32))

skface.datasets.fetch = fetch
train.RECIPES["tiny"] = train.Recipe(
    dataset="olivetti_faces", target=None, description="tiny",
    presets={"quick": train.Preset(lambda: skface.DBNReconstructor(
        hidden_layer_sizes=(256,), pretrain_epochs=1, finetune_epochs=1))},
)
sys.exit(cli.main(["train", "tiny", "--out", sys.argv[1], "--device", "cpu", "--quiet"]))
"""


def test_cli_train_full_disk_keeps_previous_file_and_says_so_in_one_line(tmp_path):
    # It printed a raw SafetensorError traceback and lost the trained model.
    out = tmp_path / "m.skface"
    out.write_bytes(b"the previous model")
    spare = tmp_path / "tmp"
    spare.mkdir()
    proc = subprocess.run(
        ["bash", "-c", 'ulimit -f 100; exec "$0" -c "$1" "$2"', sys.executable,
         _FULL_DISK_CHILD, str(out)],
        capture_output=True, text=True, timeout=300, env={**_env(), "TMPDIR": str(spare)},
    )
    # Warnings (two lines each) may come first; the error is one line, and the last.
    lines = [line for line in proc.stderr.splitlines() if line.startswith("skface train:")]
    assert lines and proc.stderr.rstrip().endswith(lines[-1]), proc.stderr
    assert proc.returncode == cli.EXIT_ERROR, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"skface train: error: Could not write the model file {out}: "
                               "the disk is full (or a file-size limit was reached); the "
                               "previous file is unchanged.")
    # The limit is the process's: the copy in the temporary folder fails too, and says so.
    assert f"could not be saved in {spare} either" in lines[0]
    assert out.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skface", "tmp"]  # no partials
    assert not list(spare.glob("m-*"))  # nor a partial copy (torch may keep its own folder)


def _env():
    import os

    return dict(os.environ)


def test_train_out_disk_full_saves_the_model_in_the_temp_folder(tmp_path, monkeypatch):
    import errno
    import tempfile

    import skface.datasets
    from skface._atomic import WriteError

    images = np.random.RandomState(0).rand(12, 8, 8).astype(np.float32)
    monkeypatch.setattr(skface.datasets, "fetch", lambda name, **kw: Bunch(images=images))
    monkeypatch.setitem(train.RECIPES, "tiny", train.Recipe(
        dataset="olivetti_faces", target=None, description="tiny",
        presets={"quick": train.Preset(lambda: skface.DBNReconstructor(
            hidden_layer_sizes=(4,), pretrain_epochs=1, finetune_epochs=1))},
    ))
    out_disk, spare = tmp_path / "full", tmp_path / "spare"
    out_disk.mkdir()
    spare.mkdir()
    out = out_disk / "m.skface"
    out.write_bytes(b"the previous model")
    real_save = train._save

    def save(estimator, path, **kwargs):  # out's disk is full; the temporary folder's is not
        if str(path).startswith(str(out_disk)):
            raise WriteError(errno.ENOSPC, f"Could not write the model file {path}: the disk "
                                           "is full; the previous file is unchanged.")
        return real_save(estimator, path, **kwargs)

    monkeypatch.setattr(train, "_save", save)
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    with pytest.raises(train.UnsavedModelError, match=r"saved instead to .*spare.*m-") as info:
        train.train("tiny", out, device="cpu")
    err = info.value
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert out.read_bytes() == b"the previous model"
    assert err.fallback.parent == spare and err.fallback.is_file()
    loaded = skface.load(err.fallback, device="cpu")
    np.testing.assert_array_equal(loaded.transform(images), err.estimator.transform(images))
    assert describe(err.fallback)["info"]["recipe"] == "tiny"  # the copy keeps its notes


@pytest.fixture
def tiny_recipe(monkeypatch):
    """A recipe "tiny" of a 4-unit DBN on 20 random 8x8 images (no dataset read)."""
    import skface.datasets

    images = np.random.RandomState(0).rand(20, 8, 8).astype(np.float32)
    monkeypatch.setattr(skface.datasets, "fetch", lambda name, **kw: Bunch(images=images))
    monkeypatch.setitem(train.RECIPES, "tiny", train.Recipe(
        dataset="olivetti_faces", target=None, description="tiny",
        presets={"quick": train.Preset(
            lambda: skface.DBNReconstructor(hidden_layer_sizes=(4,), pretrain_epochs=1,
                                            finetune_epochs=1),
            fetch_kwargs={"shuffle": True}, n_images=12)},
    ))
    return images


def test_train_records_what_it_trained_on_in_the_file(tmp_path, tiny_recipe):
    # Nothing in the file said what it was trained on, or at what size.
    out = tmp_path / "m.skface"
    train.train("tiny", out, device="cpu", random_state=3)
    assert describe(out)["info"] == {
        "recipe": "tiny", "preset": "quick", "dataset": "olivetti_faces",
        "dataset_options": "shuffle=True", "target": "none (unsupervised)", "n_images": 12,
        "n_images_available": 20, "image_size": "8x8", "random_state": 3,
    }


def test_cli_train_prints_the_model_files_info(tmp_path, tiny_recipe, capsys):
    out = tmp_path / "m.skface"
    assert cli.main(["train", "tiny", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote {out} (")
    assert "  input     8x8 grey images (image_shape_ 8, 8, 1)" in printed
    assert "  trained   recipe: tiny" in printed and "            n_images: 12" in printed


def test_cli_train_without_out_writes_recipe_skface_here(tmp_path, tiny_recipe, monkeypatch,
                                                         capsys):
    # `skface train RECIPE --preset quick` stopped at "the following arguments are required".
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "tiny", "--preset", "quick", "--device", "cpu", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("wrote tiny.skface (")
    assert describe(tmp_path / "tiny.skface")["info"]["recipe"] == "tiny"


def test_cli_train_default_out_existing_refused_before_fetching(tmp_path, monkeypatch, capsys,
                                                                fetch_must_not_run):
    # The default name is skface's choice: a second run must not replace the first model.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dbn_olivetti.skface").write_bytes(b"an earlier model")
    assert cli.main(["train", "dbn_olivetti", "--device", "cpu", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"skface train: error: {tmp_path / 'dbn_olivetti.skface'} exists (the default --out "
        "of dbn_olivetti); pass --out FILE to write another file, or --force to replace it.")
    assert (tmp_path / "dbn_olivetti.skface").read_bytes() == b"an earlier model"


@pytest.mark.parametrize("argv", [["--force"], ["--out", "tiny.skface"]], ids=["force", "out"])
def test_cli_train_existing_file_replaced_with_force_or_named_out(tmp_path, tiny_recipe,
                                                                  monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.skface").write_bytes(b"an earlier model")
    assert cli.main(["train", "tiny", *argv, "--device", "cpu", "--quiet"]) == 0
    assert describe(tmp_path / "tiny.skface")["info"]["recipe"] == "tiny"
