"""UTKFace: aligned and cropped faces labelled with age, gender and race in the file names."""

import re

import numpy as np

from .._warnings import warn_once
from ._cache import cached_arrays
from ._common import check_choice, check_size, file_paths, make_bunch
from ._download import ensure_files
from ._home import get_data_home
from ._images import list_images, read_images
from ._registry import dataset

CITATION = (
    "Zhifei Zhang, Yang Song, Hairong Qi. Age Progression/Regression by Conditional "
    "Adversarial Autoencoder. IEEE Conference on Computer Vision and Pattern Recognition "
    "(CVPR), 2017."
)
TERMS = (
    "UTKFace is available for non-commercial research purposes only; the copyright of "
    "the images belongs to their original owners. Cite the paper above. The labels were "
    "estimated by the DEX algorithm and checked by a human annotator, not self-reported: "
    "do not use them to identify or profile people."
)
MANUAL_URL = "https://susanqq.github.io/UTKFace/"

GENDER_NAMES = ("male", "female")
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")
MAX_AGE = 116  # the dataset's documented range is 0 to 116

# "<age>_<gender>_<race>_<date&time>.jpg.chip.jpg" (aligned & cropped) or "....jpg"
# (in-the-wild). A stray space before the extension, as in one original file name,
# leaves the labels readable and is tolerated.
_NAME = re.compile(r"(\d+)_(\d+)_(\d+)_\d+ *\.jpg(?:\.chip\.jpg)?", re.ASCII | re.IGNORECASE)


def _parse_name(name):
    """``(age, gender, race)`` from a UTKFace file name, or None when it is malformed."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    age, gender, race = (int(g) for g in match.groups())
    if not (0 <= age <= MAX_AGE and gender in (0, 1) and 0 <= race < len(RACE_NAMES)):
        return None
    return age, gender, race


def _scan(images_dir):
    """Sorted parsed files and their labels, and the sorted files that did not parse."""
    files, labels, skipped = [], [], []
    # Hidden files (.DS_Store), other non-images (Thumbs.db) and sub-folders are
    # not samples, as in every fetcher.
    for name in list_images(images_dir):
        parsed = _parse_name(name)
        if parsed is None:
            skipped.append(name)
        else:
            files.append(name)
            labels.append(parsed)
    return files, np.array(labels, dtype=np.intp).reshape(-1, 3), skipped


@dataset(folder="utkface", required=("UTKFace/",), citation=CITATION)
def fetch_utkface(
    *,
    data_home=None,
    size=64,
    color=True,
    target="age",
    download_if_missing=True,
    return_X_y=False,
):
    """Load UTKFace (aligned & cropped faces) with age, gender and race labels.

    The labels are parsed from the file names,
    ``<age>_<gender>_<race>_<date&time>.jpg.chip.jpg``. Files whose name is
    malformed (a missing field, a value out of range) are left out, named in
    the Bunch's ``skipped`` and counted in a warning when the images are
    decoded: never dropped silently.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data home; the images live in its ``utkface/UTKFace/`` folder. See
        :func:`~skface.datasets.get_data_home`.
    size : int or tuple of int (height, width) or None, default=64
        Output size of each face, rows first as in ``images.shape[1:3]``;
        an int means a square. The originals are 200x200: all 23,708 of
        them at full size in RGB float32 would take 11 GB, hence the 64x64
        default (12,000 faces: 0.6 GB). None keeps 200x200.
    color : bool, default=True
        Keep the 3 RGB channels; else grey (mean of the channels).
    target : {"age", "gender", "race"}, default="age"
        Which label ``target`` holds; all three are in the Bunch anyway.
    download_if_missing : bool, default=True
        UTKFace has no stable download URL with a published checksum, so it
        is never downloaded: absent files raise ``FileNotFoundError`` naming
        the folder and the page to get them from, whatever this says.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (n_samples, height * width [* 3]), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (n_samples, height, width[, 3]), float32
            The same faces as images.
        target : ndarray of shape (n_samples,)
            ``age``, ``gender`` or ``race``, as chosen by ``target``.
        age : ndarray of shape (n_samples,)
            Age in years, 0 to 116.
        gender : ndarray of shape (n_samples,)
            0 = male, 1 = female (index into ``gender_names``).
        race : ndarray of shape (n_samples,)
            0 to 4, index into ``race_names`` (White, Black, Asian, Indian,
            Others: Hispanic, Latino, Middle Eastern...).
        gender_names, race_names : ndarray of str
            Names of the ``gender`` and ``race`` values.
        target_names : ndarray of str
            ``gender_names`` or ``race_names``; only for a classification
            ``target`` (not for age).
        filenames : ndarray of shape (n_samples,)
            File names in ``UTKFace/``, sorted.
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        skipped : ndarray of str
            Files whose name could not be parsed into valid labels, sorted
            (also on a load from the cache, which does not warn again).
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True

    Warns
    -----
    UserWarning
        When files were skipped: once per folder in a process, when the
        images are first decoded (not again for another ``size`` or
        ``color``, nor on a load from the cache); the message says how many
        and names some.
    """
    check_choice("target", target, ("age", "gender", "race"))
    size = check_size(size)
    folder = get_data_home(data_home) / "utkface"
    ensure_files(
        folder,
        ["UTKFace"],
        download_if_missing=download_if_missing,
        dataset="UTKFace",
        manual_url=MANUAL_URL,
    )
    images_dir = folder / "UTKFace"

    def compute():
        files, labels, skipped = _scan(images_dir)
        if not files:
            raise ValueError(
                f"No UTKFace image with a valid '<age>_<gender>_<race>_<date>.jpg.chip.jpg' "
                f"name in {images_dir} ({len(skipped)} other files)."
            )
        if skipped:
            # Once per folder and process, at the user's line whichever skface
            # helper (``fetch``, the cache) lies in between: not again for each
            # image size decoded, nor on cached loads (the Bunch's ``skipped``
            # still lists them).
            _warn_skipped(skipped, images_dir)
        images = read_images(
            [images_dir / f for f in files], size=size, color=color, dataset="UTKFace"
        )
        return {
            "images": images,
            "labels": labels,
            "filenames": np.array(files, dtype=str),
            "skipped": np.array(skipped, dtype=str),
        }

    params = dict(size=size, color=bool(color))
    arrays = cached_arrays("utkface", params, images_dir, compute)
    skipped = arrays["skipped"]
    age, gender, race = arrays["labels"].T
    labels = {"age": age, "gender": gender, "race": race}
    extra = {}
    if target == "gender":
        extra["target_names"] = np.array(GENDER_NAMES)
    elif target == "race":
        extra["target_names"] = np.array(RACE_NAMES)
    return make_bunch(
        images=arrays["images"],
        target=labels[target],
        return_X_y=return_X_y,
        age=age,
        gender=gender,
        race=race,
        gender_names=np.array(GENDER_NAMES),
        race_names=np.array(RACE_NAMES),
        filenames=arrays["filenames"],
        paths=file_paths(images_dir, arrays["filenames"]),
        skipped=skipped,
        DESCR=_descr(),
        **extra,
    )


def _warn_skipped(skipped, images_dir):
    shown = ", ".join(repr(str(s)) for s in skipped[:5])
    shown += ", ..." if len(skipped) > 5 else ""
    warn_once(
        ("utkface-skipped", str(images_dir), tuple(skipped)),
        f"UTKFace: skipped {len(skipped)} file(s) in {images_dir} whose name is not "
        f"'<age>_<gender>_<race>_<date>.jpg.chip.jpg' with valid values: {shown}. "
        "They are listed in the result's 'skipped'; this warning is given once per "
        "folder in a process, not again for other sizes or on loads from the cache.",
        UserWarning,
    )


def _descr():
    return (
        "UTKFace (aligned & cropped faces): one face per image, labelled with age "
        "(0-116), gender (0 = male, 1 = female) and race (0 White, 1 Black, 2 Asian, "
        "3 Indian, 4 Others) from its file name; target = age by default.\n\n"
        "Images: 200x200 RGB JPEG, 23,708 faces in the full release, resized to `size`.\n\n"
        f"Get it from: {MANUAL_URL} (UTKFace.tar.gz), unpacked as utkface/UTKFace/ in "
        "the data home.\n\n"
        f"Citation: {CITATION}\n\nTerms of use: {TERMS}\n"
    )
