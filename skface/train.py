"""Training recipes: ``skface train RECIPE [--out FILE]`` fits a named model and saves it."""

import argparse
import functools
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._atomic import WriteError
from ._command import TRACEBACK_ENV, describe_lines, human_size, run_command
from ._persist import describe
from ._persist import save as _save
from ._registry import estimator_class

__all__ = ["PRESETS", "RECIPES", "Preset", "Recipe", "UnsavedModelError", "get_recipe", "train"]

#: Preset names every recipe defines.
PRESETS = ("quick", "full")


def _estimator(class_name, **params):
    # Imported on call: listing recipes (``skface train --help``) must not load torch.
    return estimator_class(class_name)(**params)


def _make(class_name, **params):
    return functools.partial(_estimator, class_name, **params)


@dataclass(frozen=True)
class Preset:
    """How much data and model one preset of a recipe uses.

    Parameters
    ----------
    estimator : callable
        Called with no arguments, returns a fresh unfitted estimator.
    fetch_kwargs : dict or callable, default={}
        Keyword arguments of the dataset's fetcher (besides ``data_home``),
        or a function of no arguments returning them (called at training
        time, for settings that need heavier imports).
    n_images : int or None, default=None
        Train on a random subset of this many images; None: all of them.
    """

    estimator: callable
    fetch_kwargs: dict = field(default_factory=dict)
    n_images: int = None


@dataclass(frozen=True)
class Recipe:
    """A named way to train a model: dataset, target and an estimator per preset.

    Parameters
    ----------
    dataset : str
        Name of the dataset, for :func:`skface.datasets.fetch`.
    target : str or None
        Field of the fetched Bunch passed to ``fit`` as ``y``; None for an
        unsupervised model (``fit(images)``).
    description : str
        One line, shown by ``skface train --help``.
    presets : dict of str to Preset
        ``"quick"`` (minutes on two CPU cores) and ``"full"`` (meant for a GPU).
    """

    dataset: str
    target: str
    description: str
    presets: dict

    def preset(self, name):
        """The :class:`Preset` called ``name``.

        Raises
        ------
        ValueError
            For a preset the recipe does not define.
        """
        try:
            return self.presets[name]
        except KeyError:
            raise ValueError(
                f"Unknown preset {name!r}; choose one of {', '.join(self.presets)}."
            ) from None

    def build(self, preset="quick"):
        """A fresh, unfitted estimator of the given preset."""
        return self.preset(preset).estimator()


def _lfw_kwargs(size):
    # Deferred: skface.preprocessing imports torch. Faces resized to ``size + size // 8``
    # for random crops of ``size``, as the demo does; dev_train leaves View 1's test
    # people out, so that the embedder can be scored on pairsDevTest.
    from .preprocessing import lfw_crop

    return {"subset": "dev_train", **lfw_crop(size, jitter=max(size // 8, 1), color=True)}


#: Recipe name -> :class:`Recipe`: what ``skface train RECIPE`` fits.
RECIPES = {
    "sdae_utkface": Recipe(
        dataset="utkface",
        target=None,
        description="ConvSDAEFeatures: unsupervised face features, utkface (RGB)",
        presets={
            # About 1 to 2 minutes on two CPU cores.
            "quick": Preset(
                _make("ConvSDAEFeatures", layer_channels=(16, 32), pretrain_epochs=3,
                      batch_size=128),
                fetch_kwargs={"size": 32, "color": True},
                n_images=3000,
            ),
            # ConvSDAEFeatures' defaults (the frozen recipe for linear heads), on every
            # face at 48 px, where they were measured (bench/sdae.py's one-liner rows).
            "full": Preset(
                _make("ConvSDAEFeatures", batch_size=128),
                fetch_kwargs={"size": 48, "color": True},
            ),
        },
    ),
    "dbn_olivetti": Recipe(
        dataset="olivetti_faces",
        target=None,
        description="DBNReconstructor: face autoencoder, olivetti_faces (64x64 grey)",
        presets={
            # Seconds: the test suite trains it end to end.
            "quick": Preset(
                _make("DBNReconstructor", hidden_layer_sizes=(256, 64), pretrain_epochs=5,
                      finetune_epochs=20, batch_size=50),
            ),
            "full": Preset(
                _make("DBNReconstructor", hidden_layer_sizes=(1000, 500, 250, 64),
                      pretrain_epochs=50, finetune_epochs=400, batch_size=50),
            ),
        },
    ),
    "keypoints_68": Recipe(
        dataset="youtube_faces_keypoints",
        target="keypoints",
        description="KeypointRegressor: 68 iBUG keypoints, youtube_faces_keypoints",
        presets={
            # About 2 to 3 minutes on two CPU cores.
            "quick": Preset(
                _make("KeypointRegressor", layer_channels=(16, 32, 64, 64), convs_per_layer=1,
                      input_size=48, max_epochs=8, batch_size=32),
                fetch_kwargs={"subset": "train", "size": 48, "color": False},
            ),
            "full": Preset(
                _make("KeypointRegressor", pretrain="sdae", pretrain_epochs=5, input_size=96,
                      max_epochs=80),
                fetch_kwargs={"subset": "train", "size": 96, "color": False},
            ),
        },
    ),
    "centerloss_lfw": Recipe(
        dataset="lfw_people",
        target="target",
        description="CenterLossEmbedder: face embeddings, lfw_people (dev_train people)",
        presets={
            # About 2 to 3 minutes on two CPU cores.
            "quick": Preset(
                _make("CenterLossEmbedder", backbone="small_cnn", backbone_params={"width": 16},
                      crop_size=48, max_epochs=8, batch_size=128),
                fetch_kwargs=functools.partial(_lfw_kwargs, 48),
            ),
            "full": Preset(
                _make("CenterLossEmbedder", backbone="nn4_small2", crop_size=96, max_epochs=30),
                fetch_kwargs=functools.partial(_lfw_kwargs, 96),
            ),
        },
    ),
}


def get_recipe(name):
    """The :class:`Recipe` called ``name``.

    Raises
    ------
    ValueError
        If there is no such recipe; the message lists them.
    """
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown recipe {name!r}. Available recipes: {', '.join(RECIPES)}."
        ) from None


class UnsavedModelError(WriteError):
    """A model was trained but could not be written to ``out`` (a full disk, say).

    The file at ``out`` is unchanged. The message says where a copy was
    saved instead, if one could be.

    Attributes
    ----------
    estimator : skface estimator
        The trained estimator, in memory: ``err.estimator.save(path)``
        saves it elsewhere.
    fallback : pathlib.Path or None
        The copy written in the system's temporary folder, or None when
        that failed too.
    """

    def __init__(self, message, *, estimator, fallback, errno_=None):
        import errno

        super().__init__(errno_ or errno.EIO, message)
        self.estimator = estimator
        self.fallback = fallback


def _fetch_kwargs(preset):
    kwargs = preset.fetch_kwargs
    return dict(kwargs() if callable(kwargs) else kwargs)


def train(recipe, out, *, preset="quick", data_home=None, device="auto", n_images=None,
          random_state=0, verbose=0):
    """Fit a recipe's estimator on its dataset and save it to one file.

    Parameters
    ----------
    recipe : str
        A name of :data:`RECIPES`.
    out : path-like
        The model file to write, with notes on what it was trained on
        (recipe, preset, dataset and its options, number and size of the
        images) that ``skface info FILE`` shows; read it back with
        :func:`skface.load`. Its folder is created if needed.
    preset : {"quick", "full"}, default="quick"
        "quick" trains in minutes on two CPU cores; "full" is meant for a GPU.
    data_home : path-like, default=None
        Where the dataset is; see :func:`skface.datasets.get_data_home`.
    device : str, default="auto"
        Torch device of the estimator.
    n_images : int or None, default=None
        Train on a random subset of this many images, instead of the
        preset's number (which is all of them unless it says otherwise).
    random_state : int, default=0
        Seeds the subset and the estimator.
    verbose : int, default=0
        The estimator's ``verbose``: 1 shows progress bars.

    Returns
    -------
    estimator : skface estimator
        The fitted estimator, as saved.

    Raises
    ------
    OSError
        If ``out`` cannot be written (it is a folder, a file stands where
        one of its folders should be, or permission is denied); checked
        before any data is read or model trained.
    UnsavedModelError
        If the trained model cannot be written to ``out`` (the disk filled
        up during training): the file at ``out`` is unchanged, a copy is
        saved in the system's temporary folder where that works (the
        error's ``fallback``), and the estimator is the error's
        ``estimator``.
    """
    import numpy as np

    from .datasets import fetch

    recipe_ = get_recipe(recipe)
    settings = recipe_.preset(preset)
    _check_out(out)
    estimator = settings.estimator()
    estimator.set_params(device=device, random_state=random_state, verbose=verbose)
    fetch_kwargs = _fetch_kwargs(settings)
    bunch = fetch(recipe_.dataset, data_home=data_home, **fetch_kwargs)
    X = bunch.images
    n_available = len(X)
    y = None if recipe_.target is None else bunch[recipe_.target]
    n_images = settings.n_images if n_images is None else int(n_images)
    if n_images is not None and n_images < len(X):
        if n_images < 1:
            raise ValueError(f"n_images must be positive, got {n_images}.")
        keep = np.sort(np.random.RandomState(random_state).choice(len(X), n_images,
                                                                  replace=False))
        X = X[keep]
        y = None if y is None else y[keep]
    if y is None:
        estimator.fit(X)
    else:
        estimator.fit(X, y)
    # What it was trained on, in the file's header: `skface info FILE` shows it.
    info = {
        "recipe": recipe, "preset": preset, "dataset": recipe_.dataset,
        "dataset_options": ", ".join(f"{k}={v}" for k, v in fetch_kwargs.items()) or "none",
        "target": recipe_.target or "none (unsupervised)",
        "n_images": len(X), "n_images_available": n_available,
        "image_size": "x".join(str(n) for n in X.shape[1:]), "random_state": random_state,
    }
    try:
        _save(estimator, out, info=info)
    except OSError as exc:
        raise _unsaved(estimator, out, exc, info) from exc
    return estimator


def _unsaved(estimator, out, exc, info):
    """The error for a trained model that ``out`` could not take, after saving a copy elsewhere.

    The copy goes to the system's temporary folder: often another disk than
    ``out``'s, and minutes or hours of training are not lost to a full one.
    """
    out = Path(out)
    said = str(exc).rstrip(".")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fallback = Path(tempfile.gettempdir()) / f"{out.stem}-{stamp}-{os.getpid()}{out.suffix}"
    try:
        _save(estimator, fallback, info=info)
    except OSError as second:
        return UnsavedModelError(
            f"{said}. The trained model could not be saved in {fallback.parent} either "
            f"({str(second).rstrip('.')}), so it is lost: free some space (or raise the "
            "file-size limit) and train again.",
            estimator=estimator, fallback=None, errno_=exc.errno,
        )
    return UnsavedModelError(
        f"{said}. The trained model was saved instead to {fallback}: move it where you want "
        "it (skface.load reads it from anywhere).",
        estimator=estimator, fallback=fallback, errno_=exc.errno,
    )


def _check_out(out):
    """Create ``out``'s folder and prove it writable, before any training depends on it."""
    out = Path(out)
    try:
        if out.is_dir():
            raise IsADirectoryError(f"{out} is a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        # A link is written at its target (skface._atomic.atomic_path): probe the target's folder.
        folder = Path(os.path.realpath(out)).parent
        fd, probe = tempfile.mkstemp(prefix=".skface-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        what = (exc.strerror or str(exc)).lower()
        try:  # say what is in the way, where that can be seen
            blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
            if out.is_dir():
                what = "it is a folder; name a file in it"
            elif blocker is not None:
                what = f"{blocker} is a file, not a folder"
        except OSError:
            pass
        raise type(exc)(
            f"Cannot write the model file {out}: {what}. Pass another --out, a file in a "
            "folder you can write to."
        ) from exc


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recipes_help():
    """The recipe list shown at the end of ``skface train --help``."""
    width = max(map(len, RECIPES))
    lines = ["recipes:"]
    for name, recipe in RECIPES.items():
        lines.append(f"  {name:<{width}}  {recipe.description}")
    lines.append("")
    lines.append("The data home is --data-home, else $SKFACE_DATA, else ~/skface_data.")
    return "\n".join(lines)


def add_arguments(parser):
    """Add ``skface train``'s arguments to an ``argparse`` parser."""
    parser.add_argument("recipe", metavar="RECIPE", help="a recipe name (listed below)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="model file to write (read it with skface.load); default: "
                             "RECIPE.skface in the current folder, never replaced without "
                             "--force")
    parser.add_argument("--force", action="store_true",
                        help="replace RECIPE.skface when --out is not given (an --out you "
                             "name is replaced anyway)")
    parser.add_argument("--preset", default="quick", choices=PRESETS,
                        help="quick: minutes on 2 CPU cores (default); full: for a GPU")
    parser.add_argument("--data-home", default=None,
                        help="data home (default: $SKFACE_DATA or ~/skface_data)")
    parser.add_argument("--device", default="auto",
                        help="torch device (default: auto, CUDA if present)")
    parser.add_argument("--n-images", type=int, default=None, metavar="N",
                        help="train on a random subset of N images (default: the preset's)")
    parser.add_argument("--random-state", type=int, default=0, metavar="SEED",
                        help="seed of the subset and the estimator (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``skface train`` from parsed arguments; the exit status."""
    recipe = get_recipe(args.recipe)  # an unknown name fails before any work
    out = _default_out(args.recipe, args.force) if args.out is None else Path(args.out)
    say = (lambda *a: None) if args.quiet else functools.partial(print, file=sys.stderr)
    say(f"skface train: {args.recipe} ({args.preset}) on {recipe.dataset}")
    start = time.perf_counter()
    train(args.recipe, out, preset=args.preset, data_home=args.data_home, device=args.device,
          n_images=args.n_images, random_state=args.random_state,
          verbose=0 if args.quiet else 1)
    seconds = time.perf_counter() - start
    # The sha256 is what a ModelSource entry pins: printed so that the file can be published.
    print(f"wrote {out} ({human_size(out.stat().st_size)}, sha256 {_sha256_of(out)}) "
          f"in {seconds:.0f} s")
    # What the file expects (input size, channels) and holds, as `skface info` shows it.
    for line in describe_lines(describe(out)):
        print(f"  {line}")
    return 0


def _default_out(recipe, force):
    """``RECIPE.skface`` in the current folder, refused if it exists unless ``force``.

    The name is skface's choice, not the user's: running a recipe again (a
    quick run after a full one) must not replace a model that took hours,
    so an existing default file is kept unless ``--force`` says otherwise.
    An ``--out`` the user names is theirs to replace.
    """
    out = Path(f"{recipe}.skface")
    if out.exists() and not force:
        raise FileExistsError(
            f"{out.resolve()} exists (the default --out of {recipe}); pass --out FILE to "
            "write another file, or --force to replace it."
        )
    return out


def build_parser(parser=None):
    """The ``skface train`` parser (a new one, or ``parser`` filled in)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m skface.train")
    parser.description = "Fit a named recipe on its dataset and write the model to one file."
    parser.epilog = recipes_help()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return add_arguments(parser)


def main(argv=None):
    """``python -m skface.train``: the same command as ``skface train``.

    Errors the user can fix print one line and exit with status 2, as
    ``skface train`` does (see :func:`skface._command.run_command`).
    """
    parser = build_parser()
    parser.add_argument("--traceback", action="store_true",
                        help=f"on an error, print the full traceback too (or set "
                             f"{TRACEBACK_ENV}=1)")
    args = parser.parse_args(argv)
    return run_command(args.func, args, "skface train")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
