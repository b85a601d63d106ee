"""Labeled Faces in the Wild: people, pairs (View 1 and View 2), and gender labels."""

import os

import numpy as np

from ._cache import cached_arrays
from ._common import check_choice, file_paths, make_bunch
from ._download import ensure_files, is_registered
from ._home import get_data_home
from ._images import list_images, read_images
from ._registry import dataset

CITATION = (
    "Gary B. Huang, Manu Ramesh, Tamara Berg, Erik Learned-Miller. Labeled Faces in the "
    "Wild: A Database for Studying Face Recognition in Unconstrained Environments. "
    "UMass Amherst Technical Report 07-49, 2007. Deep-funneled alignment: Gary B. Huang, "
    "Marwan Mattar, Honglak Lee, Erik Learned-Miller. Learning to Align from Scratch. "
    "NIPS 2012."
)
GENDER_CITATION = (
    "Mahmoud Afifi, Abdelrahman Abdelhamed. AFIF4: Deep gender classification based on "
    "AdaBoost-based fusion of isolated facial features and foggy faces. Journal of "
    "Visual Communication and Image Representation, 2019 (LFW gender labels)."
)
TERMS = (
    "LFW is published for research use; cite the papers above. The images are of public "
    "figures collected from news sites; do not use them to identify or profile people."
)

# Folder each archive unpacks to, and the archive in registry.txt.
_VARIANTS = {
    "deepfunneled": ("lfw-deepfunneled", "lfw-deepfunneled.tgz"),
    "funneled": ("lfw_funneled", "lfw-funneled.tgz"),
    "original": ("lfw", "lfw.tgz"),
}
_PEOPLE_FILES = {"dev_train": "peopleDevTrain.txt", "dev_test": "peopleDevTest.txt"}
_PAIRS_FILES = {"dev_train": "pairsDevTrain.txt", "dev_test": "pairsDevTest.txt", "10_folds": "pairs.txt"}
_GENDER_FILES = ("gender/male_names.txt", "gender/female_names.txt")

# scikit-learn's defaults, so that arrays agree with sklearn.datasets.fetch_lfw_people:
# slice_=(slice(70, 195), slice(78, 172)) is this box in PIL's (left, upper, right, lower).
DEFAULT_BOX = (78, 70, 172, 195)


def _lfw_folder(data_home, variant, download_if_missing):
    check_choice("variant", variant, tuple(_VARIANTS))
    folder = get_data_home(data_home) / "lfw"
    images_dir, archive = _VARIANTS[variant]
    ensure_files(
        folder,
        [images_dir],
        remote=[archive],
        download_if_missing=download_if_missing,
        dataset=f"LFW ({variant})",
    )
    return folder, folder / images_dir


GENDER_URL = "https://github.com/mahmoudnafifi/AFIF4-Gender-Classification"


def _metadata(folder, filename, download_if_missing):
    basename = filename.split("/")[-1]
    ensure_files(
        folder,
        [filename],
        remote=[basename] if is_registered(basename) else [],
        download_if_missing=download_if_missing,
        dataset="LFW",
        manual_url=GENDER_URL,
    )
    return folder / filename


def _output_size(box, resize):
    """(height, width) after cropping to ``box`` and applying ``resize``, or None."""
    width, height = box[2] - box[0], box[3] - box[1]
    if resize is None:
        return None
    if np.isscalar(resize):
        if not resize > 0:
            raise ValueError(f"resize must be positive, got {resize!r}.")
        # int() truncates exactly as scikit-learn does, so shapes agree (62 x 47).
        return int(resize * height), int(resize * width)
    size = tuple(int(s) for s in resize)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resize must be a positive float or (height, width), got {resize!r}.")
    return size


def _check_box(box):
    box = tuple(int(b) for b in box)
    if len(box) != 4 or not (0 <= box[0] < box[2] <= 250 and 0 <= box[1] < box[3] <= 250):
        raise ValueError(
            f"box must be (left, upper, right, lower) inside the 250x250 LFW image, got {box!r}."
        )
    return box


def _redownload(path):
    """What to do about a damaged LFW list file."""
    return (
        f"delete {path} and fetch again (it is downloaded when missing), or copy it "
        "from http://vis-www.cs.umass.edu/lfw/"
    )


def _lines(path, todo=None):
    """``(line number, fields)`` of the non-blank lines of a list file; refuse an empty file.

    ``todo`` says how to replace a damaged file (default: download it again).
    """
    todo = todo or _redownload(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"LFW: {path} is not a text file; {todo}.") from None
    rows = [(i, line.split()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise ValueError(f"LFW: {path} is empty; {todo}.")
    return rows


def _read_people_list(path):
    """Names from a ``peopleDev*.txt`` file (count line, then ``name<TAB>n``)."""
    (_, header), *rows = _lines(path)
    names = set()
    for number, fields in rows:
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(
                f"LFW: {path} line {number} is {' '.join(fields)!r}, not 'name<TAB>count'; "
                f"{_redownload(path)}."
            )
        names.add(fields[0])
    if len(header) != 1 or not header[0].isdigit() or int(header[0]) != len(rows):
        raise ValueError(
            f"LFW: {path} starts with {' '.join(header)!r} but lists {len(rows)} people; the "
            f"first line must be their count. The file is damaged: {_redownload(path)}."
        )
    return names


def _scan_people(images_dir, subset_names, min_faces_per_person):
    """Sorted person names and their files, as scikit-learn's loader lists them.

    Hidden entries and files that are not images (``.DS_Store``,
    ``Thumbs.db``) are not faces and are skipped.
    """
    names, files = [], []
    for person in sorted(os.listdir(images_dir)):
        person_dir = images_dir / person
        if person.startswith(".") or not person_dir.is_dir():
            continue
        if subset_names is not None and person not in subset_names:
            continue
        paths = list_images(person_dir)
        if len(paths) >= min_faces_per_person:
            names.extend([person.replace("_", " ")] * len(paths))
            files.extend(f"{person}/{p}" for p in paths)
    return names, files


def _people_arrays(
    data_home, variant, subset, min_faces_per_person, box, resize, color, download_if_missing
):
    check_choice("subset", subset, ("all", "dev_train", "dev_test"))
    if int(min_faces_per_person) != min_faces_per_person or min_faces_per_person < 0:
        raise ValueError(
            f"min_faces_per_person must be a non-negative int, got {min_faces_per_person!r}."
        )
    box = _check_box(box)
    size = _output_size(box, resize)
    folder, images_dir = _lfw_folder(data_home, variant, download_if_missing)
    subset_names, sources = None, [images_dir]
    if subset != "all":
        people_file = _metadata(folder, _PEOPLE_FILES[subset], download_if_missing)
        subset_names = _read_people_list(people_file)
        sources.append(people_file)

    def compute():
        names, files = _scan_people(images_dir, subset_names, min_faces_per_person)
        if not files:
            raise ValueError(
                f"No LFW faces left with min_faces_per_person={min_faces_per_person} "
                f"and subset={subset!r}; lower min_faces_per_person."
            )
        target_names, target = np.unique(names, return_inverse=True)
        # scikit-learn's fixed shuffle: faces of one person are not in a row,
        # which SGD and some cross-validation schemes assume.
        order = np.arange(len(files))
        np.random.RandomState(42).shuffle(order)
        files = np.asarray(files)[order]
        images = read_images(
            [images_dir / f for f in files], box=box, size=size, color=color,
            dataset=f"LFW ({variant})",
        )
        return {
            "images": images,
            "target": target[order].astype(np.intp),
            "target_names": target_names,
            "filenames": files,
        }

    params = dict(
        variant=variant, subset=subset, min_faces=int(min_faces_per_person),
        box=box, size=size, color=bool(color),
    )
    arrays = cached_arrays("lfw_people", params, sources, compute,
                           files_read=lambda arrays: arrays["filenames"])
    return {**arrays, "paths": file_paths(images_dir, arrays["filenames"])}


@dataset(folder="lfw", required=("lfw-deepfunneled/",), citation=CITATION, downloadable=True)
def fetch_lfw_people(
    *,
    data_home=None,
    variant="deepfunneled",
    subset="all",
    min_faces_per_person=0,
    box=DEFAULT_BOX,
    resize=0.5,
    color=False,
    download_if_missing=True,
    return_X_y=False,
):
    """Load the LFW people dataset (face identification), one face per image.

    With the defaults the arrays agree exactly with
    :func:`sklearn.datasets.fetch_lfw_people` run on the same image files
    (same crop, resize, grey conversion and fixed shuffle).

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data home; LFW lives in its ``lfw/`` folder. See
        :func:`~skface.datasets.get_data_home`.
    variant : {"deepfunneled", "funneled", "original"}, default="deepfunneled"
        Which alignment of the images to read.
    subset : {"all", "dev_train", "dev_test"}, default="all"
        Restrict to the people of the official View 1 people lists
        (``peopleDevTrain.txt`` / ``peopleDevTest.txt``, disjoint identities).
    min_faces_per_person : int, default=0
        Keep only people with at least this many images.
    box : tuple of int (left, upper, right, lower), default=(78, 70, 172, 195)
        Crop rectangle in the 250x250 source image (scikit-learn's default).
    resize : float or tuple of int (height, width) or None, default=0.5
        Scale factor applied to the crop, or an exact output size, rows
        first as in ``images.shape[1:3]``; None keeps the crop's size.
        The default crop scaled by 0.5 gives (62, 47).
    color : bool, default=False
        Keep the 3 RGB channels; else grey (mean of the channels).
    download_if_missing : bool, default=True
        Download the archive (pinned sha256) when absent; if False, raise
        ``FileNotFoundError``.
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
            Index into ``target_names``.
        target_names : ndarray of shape (n_people,)
            Person names ("George W Bush").
        filenames : ndarray of shape (n_samples,)
            ``"Name/Name_0001.jpg"`` paths relative to the images folder.
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    arrays = _people_arrays(
        data_home, variant, subset, min_faces_per_person, box, resize, color, download_if_missing
    )
    return make_bunch(
        images=arrays["images"],
        target=arrays["target"],
        return_X_y=return_X_y,
        target_names=arrays["target_names"],
        filenames=arrays["filenames"],
        paths=arrays["paths"],
        DESCR=_descr("people", variant),
    )


def _parse_pairs(path):
    """Rows of a pairs file as ((name1, idx1), (name2, idx2), same), and the fold of each.

    The header gives the layout: ``"1100"`` (View 1) is one block of 1,100
    matched then 1,100 mismatched pairs; ``"10\t300"`` (View 2) is 10 folds,
    each of 300 matched then 300 mismatched pairs. The rows must follow it.
    """
    (_, header), *lines = _lines(path)
    if not (1 <= len(header) <= 2 and all(h.isdigit() and int(h) > 0 for h in header)):
        raise ValueError(
            f"LFW: {path} starts with {' '.join(header)!r}, not a pairs header ('<n>' or "
            f"'<folds> <n>' with positive counts); {_redownload(path)}."
        )
    n_folds, per_fold = (1, int(header[0])) if len(header) == 1 else map(int, header)
    rows = []
    for number, parts in lines:
        try:
            if len(parts) == 3:
                rows.append(((parts[0], int(parts[1])), (parts[0], int(parts[2])), 1))
            elif len(parts) == 4:
                rows.append(((parts[0], int(parts[1])), (parts[2], int(parts[3])), 0))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"LFW: {path} line {number} is {' '.join(parts)!r}, not 'name i j' (matched) "
                f"or 'name1 i name2 j' (mismatched); {_redownload(path)}."
            ) from None
    layout = (
        f"its header says {n_folds} fold(s) of {per_fold} matched then {per_fold} "
        "mismatched pairs"
    )
    if len(rows) != 2 * n_folds * per_fold:
        raise ValueError(
            f"LFW: {path} lists {len(rows)} pairs, but {layout} ({2 * n_folds * per_fold}). "
            f"The file is truncated or damaged: {_redownload(path)}."
        )
    same = np.array([r[2] for r in rows]).reshape(n_folds, 2, per_fold)
    bad = np.flatnonzero((same[:, 0] != 1).any(axis=1) | (same[:, 1] != 0).any(axis=1))
    if len(bad):
        raise ValueError(
            f"LFW: fold {bad[0]} of {path} is out of order: {layout}. The file is damaged: "
            f"{_redownload(path)}."
        )
    fold = np.repeat(np.arange(n_folds, dtype=np.intp), 2 * per_fold)
    return rows, fold


@dataset(folder="lfw", required=("lfw-deepfunneled/", "pairs.txt"), citation=CITATION, downloadable=True)
def fetch_lfw_pairs(
    *,
    data_home=None,
    subset="10_folds",
    variant="deepfunneled",
    box=DEFAULT_BOX,
    resize=0.5,
    color=False,
    download_if_missing=True,
    return_X_y=False,
):
    """Load the LFW pairs of the official verification protocols.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    subset : {"10_folds", "dev_train", "dev_test"}, default="10_folds"
        ``"10_folds"`` is View 2 (``pairs.txt``, 6,000 pairs in 10 folds of
        300 matched + 300 mismatched) for reporting; ``"dev_train"`` and
        ``"dev_test"`` are View 1 (2,200 and 1,000 pairs) for development.
    variant, box, resize, color, download_if_missing
        As in :func:`fetch_lfw_people`.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        pairs : ndarray of shape (n_pairs, 2, height, width[, 3]), float32
            Both faces of each pair, values in [0, 1].
        data : ndarray of shape (n_pairs, 2 * height * width [* 3])
            Both faces of each pair, flattened.
        target : ndarray of shape (n_pairs,)
            1 when both faces show the same person, else 0.
        target_names : ndarray of str, ["Different persons", "Same person"]
            Names of the ``target`` values.
        fold : ndarray of shape (n_pairs,)
            View 2 fold (0-9) of each pair; only for ``subset="10_folds"``.
        names, filenames : ndarray of shape (n_pairs, 2)
            Person of each face and its file, relative to the images folder.
        paths : ndarray of shape (n_pairs, 2), str
            Absolute path of each face's image file, made from ``data_home``
            at each call.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    check_choice("subset", subset, tuple(_PAIRS_FILES))
    box = _check_box(box)
    size = _output_size(box, resize)
    folder, images_dir = _lfw_folder(data_home, variant, download_if_missing)
    pairs_file = _metadata(folder, _PAIRS_FILES[subset], download_if_missing)

    def compute():
        rows, fold = _parse_pairs(pairs_file)
        files = np.array(
            [[f"{n}/{n}_{i:04d}.jpg" for n, i in row[:2]] for row in rows], dtype=str
        )
        # Decode each distinct image once, then gather: pairs reuse faces.
        unique, inverse = np.unique(files, return_inverse=True)
        missing = [f for f in unique if not (images_dir / f).exists()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} images named by {pairs_file.name} are missing in "
                f"{images_dir}, e.g. {missing[:3]}; the image folder is incomplete."
            )
        faces = read_images(
            [images_dir / f for f in unique], box=box, size=size, color=color,
            dataset=f"LFW ({variant})",
        )
        pairs = faces[inverse.reshape(files.shape)]
        names = np.array([[r[0][0], r[1][0]] for r in rows], dtype=str)
        return {
            "pairs": pairs,
            "target": np.array([r[2] for r in rows], dtype=np.intp),
            "names": names,
            "filenames": files,
            "fold": fold,
        }

    params = dict(variant=variant, subset=subset, box=box, size=size, color=bool(color))
    arrays = cached_arrays("lfw_pairs", params, [images_dir, pairs_file], compute)
    pairs, target = arrays["pairs"], arrays["target"]
    if return_X_y:
        return pairs.reshape(len(pairs), -1), target
    from sklearn.utils import Bunch

    extra = {}
    if subset == "10_folds":
        # From pairs.txt's header: fold k's matched then mismatched pairs in turn.
        extra["fold"] = arrays["fold"]
    return Bunch(
        data=pairs.reshape(len(pairs), -1),
        pairs=pairs,
        target=target,
        target_names=np.array(["Different persons", "Same person"]),
        names=arrays["names"],
        filenames=arrays["filenames"],
        paths=file_paths(images_dir, arrays["filenames"]),
        DESCR=_descr("pairs", variant),
        **extra,
    )


def _read_gender_lists(folder, download_if_missing):
    labels = {}
    for value, rel in enumerate(_GENDER_FILES):
        path = _metadata(folder, rel, download_if_missing)
        todo = f"get it again from {GENDER_URL}"
        for number, fields in _lines(path, todo):
            if len(fields) != 1 or not fields[0].lower().endswith(".jpg"):
                raise ValueError(
                    f"LFW: {path} line {number} is {' '.join(fields)!r}, not one image file "
                    f"name such as 'Aaron_Eckhart_0001.jpg'. The file is damaged: {todo}."
                )
            labels.setdefault(fields[0], set()).add(value)
    return labels


@dataset(folder="lfw", required=("lfw-deepfunneled/",) + _GENDER_FILES, citation=GENDER_CITATION)
def fetch_lfw_gender(
    *,
    data_home=None,
    variant="deepfunneled",
    subset="all",
    box=DEFAULT_BOX,
    resize=0.5,
    color=False,
    download_if_missing=True,
    return_X_y=False,
):
    """Load LFW faces with per-image gender labels (Afifi & Abdelhamed's lists).

    Images listed as both male and female, or in neither list, have no
    trustworthy label: they are left out and named in ``excluded``, never
    guessed.

    Parameters
    ----------
    data_home, variant, subset, box, resize, color, download_if_missing
        As in :func:`fetch_lfw_people`.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data, images : ndarray
            As in :func:`fetch_lfw_people`.
        target : ndarray of shape (n_samples,)
            0 = male, 1 = female.
        target_names : ndarray, ["male", "female"]
            Names of the ``target`` values.
        identity : ndarray of shape (n_samples,)
            Person name of each face.
        filenames : ndarray of shape (n_samples,)
            Paths relative to the images folder.
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file, made from ``data_home``
            at each call.
        excluded : ndarray of str
            Files left out for a missing or conflicting label.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    arrays = _people_arrays(data_home, variant, subset, 0, box, resize, color, download_if_missing)
    folder = get_data_home(data_home) / "lfw"
    labels = _read_gender_lists(folder, download_if_missing)
    basenames = [f.split("/")[-1] for f in arrays["filenames"]]
    gender = np.array(
        [next(iter(labels[b])) if len(labels.get(b, ())) == 1 else -1 for b in basenames]
    )
    keep = gender >= 0
    return make_bunch(
        images=arrays["images"][keep],
        target=gender[keep],
        return_X_y=return_X_y,
        target_names=np.array(["male", "female"]),
        identity=arrays["target_names"][arrays["target"][keep]],
        filenames=arrays["filenames"][keep],
        paths=arrays["paths"][keep],
        excluded=arrays["filenames"][~keep],
        DESCR=_descr("gender", variant),
    )


def _descr(kind, variant):
    what = {
        "people": "LFW people: one face per image, target = identity.",
        "pairs": "LFW pairs: official verification protocol pairs, target 1 = same person.",
        "gender": "LFW faces with per-image gender labels, target 0 = male, 1 = female.",
    }[kind]
    cite = CITATION + ("\n\nGender labels: " + GENDER_CITATION if kind == "gender" else "")
    return (
        f"{what}\n\nImages: the {variant} variant, 250x250 RGB JPEG, 13,233 images of "
        f"5,749 people.\n\nCitation: {cite}\n\nTerms of use: {TERMS}\n"
    )
