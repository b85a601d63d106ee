"""IMDB-WIKI: celebrity faces with age (from date of birth and photo year) and gender."""

import numpy as np

from ._cache import cached_arrays
from ._common import check_choice, check_size, file_paths, make_bunch, read_mat
from ._download import ensure_files
from ._home import get_data_home
from ._images import read_images
from ._registry import dataset

CITATION = (
    "Rasmus Rothe, Radu Timofte, Luc Van Gool. DEX: Deep EXpectation of apparent age "
    "from a single image. IEEE International Conference on Computer Vision Workshops "
    "(ICCV-W), 2015. Rasmus Rothe, Radu Timofte, Luc Van Gool. Deep expectation of real "
    "and apparent age from a single image without facial landmarks. International "
    "Journal of Computer Vision (IJCV), 126(2-4):144-157, 2018."
)
TERMS = (
    "IMDB-WIKI is released for academic research purposes only. The images were crawled "
    "from IMDb and Wikipedia and remain their owners' property. Cite the papers above. "
    "The labels are noisy (dates of birth and photo years as listed on the sites); do "
    "not use them to identify or profile people."
)
MANUAL_URL = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/"

# Folder each archive unpacks to, and the archive in registry.txt.
_SOURCES = {"wiki": ("wiki_crop", "wiki_crop.tar"), "imdb": ("imdb_crop", "imdb_crop.tar")}
MIN_AGE, MAX_AGE = 0, 100
# Why a row is dropped; each dropped row is counted under the first rule it breaks.
FILTERS = ("low_face_score", "second_face", "unknown_gender", "age_out_of_range")
GENDER_NAMES = ("male", "female")
# MATLAB's datenum counts days from year 0; Python's ordinals from 0001-01-01 (= 367).
_MATLAB_OFFSET = 366


def _column(struct, name):
    """A field of the loaded MATLAB struct as a 1-D array (loadmat keeps (1, n) shapes)."""
    return np.asarray(struct[name]).ravel()


def _strings(cells):
    """A cell array of strings (an array of 1-element arrays) as a str array."""
    out = []
    for cell in cells:
        cell = np.asarray(cell).ravel()
        out.append(str(cell[0]) if cell.size else "")
    return np.array(out, dtype=str)


def birth_year_month(dob):
    """Year and month of birth from MATLAB serial date numbers.

    ``datetime.fromordinal(int(dob)) + timedelta(days=dob % 1) - timedelta(days=366)``,
    vectorised; dates before year 1 (the metadata has a few) or not finite give
    year -1 and month 0.

    Parameters
    ----------
    dob : array-like of float

    Returns
    -------
    year, month : ndarray of int
    """
    from datetime import date

    dob = np.asarray(dob, dtype=np.float64).ravel()
    year = np.full(len(dob), -1, dtype=np.int64)
    month = np.zeros(len(dob), dtype=np.int64)
    max_ordinal = date.max.toordinal()
    for i, value in enumerate(dob):
        if not np.isfinite(value):
            continue
        ordinal = int(value) - _MATLAB_OFFSET
        if 1 <= ordinal <= max_ordinal:
            day = date.fromordinal(ordinal)
            year[i], month[i] = day.year, day.month
    return year, month


def compute_age(dob, photo_taken):
    """Age in whole years when the photo was taken, as the authors' metadata suggests.

    Only the year of the photo is known; it is taken to be mid-year (July 1st),
    so people born in July to December had not had that year's birthday yet:
    ``age = photo_taken - birth_year - (birth_month >= 7)``. Unreadable dates of
    birth give an age far out of range (so the row is filtered out).
    """
    year, month = birth_year_month(dob)
    age = np.asarray(photo_taken, dtype=np.int64).ravel() - year - (month >= 7)
    return np.where(year > 0, age, -1)


def _read_metadata(mat_path, source):
    """Columns of ``wiki.mat`` / ``imdb.mat`` as flat arrays (no MATLAB nesting)."""
    mat = read_mat(mat_path, dataset="IMDB-WIKI", todo=(
        f"delete the {mat_path.parent.name} folder and fetch again, or download it from "
        f"{MANUAL_URL}"
    ))
    if source not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{mat_path} has no {source!r} struct (it has {found}).")
    struct = mat[source][0, 0]
    return {
        "dob": _column(struct, "dob").astype(np.float64),
        "photo_taken": _column(struct, "photo_taken").astype(np.int64),
        "full_path": _strings(_column(struct, "full_path")),
        "gender": _column(struct, "gender").astype(np.float64),
        "name": _strings(_column(struct, "name")),
        "face_score": _column(struct, "face_score").astype(np.float64),
        "second_face_score": _column(struct, "second_face_score").astype(np.float64),
    }


def _filter(meta, min_face_score, drop_second_face):
    """Boolean mask of the rows kept, and how many rows each rule dropped."""
    age = compute_age(meta["dob"], meta["photo_taken"])
    score = meta["face_score"]
    rules = {
        "low_face_score": ~(np.isfinite(score) & (score >= min_face_score)),
        "second_face": ~np.isnan(meta["second_face_score"]) if drop_second_face else None,
        "unknown_gender": ~np.isin(meta["gender"], (0.0, 1.0)),
        "age_out_of_range": (age < MIN_AGE) | (age > MAX_AGE),
    }
    keep = np.ones(len(score), bool)
    counts = []
    for rule in FILTERS:
        drop = rules[rule]
        counts.append(0 if drop is None else int((keep & drop).sum()))
        if drop is not None:
            keep &= ~drop
    return keep, age, np.array(counts, dtype=np.int64)


@dataset(folder="imdb_wiki", required=("wiki_crop/wiki.mat",), citation=CITATION, downloadable=True)
def fetch_imdb_wiki(
    *,
    data_home=None,
    source="wiki",
    min_face_score=1.0,
    drop_second_face=True,
    size=64,
    color=True,
    max_images=None,
    download_if_missing=True,
    return_X_y=False,
):
    """Load the IMDB-WIKI cropped faces with age and gender, filtered by face quality.

    Reads ``imdb_wiki/wiki_crop/wiki.mat`` (or ``imdb_crop/imdb.mat``) and the
    images beside it (``00/`` ... ``99/``). The age is computed from the date
    of birth and the year the photo was taken (see :func:`compute_age`): the
    photo is taken to be from mid-year, so the age may be off by one.

    Rows are filtered, in this order: no face or a face score below
    ``min_face_score``; a second face in the image (when
    ``drop_second_face``); unknown gender; age outside 0 to 100. The count of
    rows each rule dropped is returned in ``n_filtered``, never silently.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data home; the files live in its ``imdb_wiki/`` folder. See
        :func:`~skface.datasets.get_data_home`.
    source : {"wiki", "imdb"}, default="wiki"
        Wikipedia (62,328 rows, 0.8 GB archive) or IMDb (460,723 rows, 7 GB).
    min_face_score : float, default=1.0
        Keep faces whose detector score is at least this; rows without a
        detected face (score -inf) are always dropped.
    drop_second_face : bool, default=True
        Drop images where the detector found a second face, whose label may
        belong to either person.
    size : int or tuple of int (height, width) or None, default=64
        Output size of each face, rows first as in ``images.shape[1:3]``
        (an int means a square). The crops vary in size, so None works only
        on a subset whose images all share one.
    color : bool, default=True
        Keep the 3 RGB channels; else grey (mean of the channels). Grey
        source images are repeated over 3 channels.
    max_images : int or None, default=None
        Keep only the first ``max_images`` rows left after filtering, in the
        order of the ``.mat`` file, to bound memory and time.
    download_if_missing : bool, default=True
        Download the archive (pinned checksum) when absent; if False, raise
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
            The age, as in ``age``.
        age : ndarray of shape (n_samples,)
            Age in years, 0 to 100.
        gender : ndarray of shape (n_samples,)
            0 = male, 1 = female (skface's convention; the ``.mat`` file has
            1 = male, 0 = female).
        gender_names : ndarray, ["male", "female"]
            Names of the ``gender`` values.
        name : ndarray of shape (n_samples,)
            Name of the person.
        face_score : ndarray of shape (n_samples,)
            Detector score of the face.
        photo_taken : ndarray of shape (n_samples,)
            Year the photo was taken.
        filenames : ndarray of shape (n_samples,)
            ``full_path`` of each image, relative to ``wiki_crop/`` (or
            ``imdb_crop/``).
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        n_total : int
            Rows in the ``.mat`` file.
        n_filtered : dict of str -> int
            Rows dropped by each rule (``low_face_score``, ``second_face``,
            ``unknown_gender``, ``age_out_of_range``); rows cut by
            ``max_images`` are not counted there.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    check_choice("source", source, tuple(_SOURCES))
    size = check_size(size)
    min_face_score = float(min_face_score)
    if max_images is not None and (int(max_images) != max_images or max_images < 1):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}.")
    folder = get_data_home(data_home) / "imdb_wiki"
    crop_dir, archive = _SOURCES[source]
    mat_rel = f"{crop_dir}/{source}.mat"
    ensure_files(
        folder,
        [mat_rel],
        remote=[archive],
        download_if_missing=download_if_missing,
        dataset=f"IMDB-WIKI ({source})",
        manual_url=MANUAL_URL,
    )
    images_dir = folder / crop_dir

    def compute():
        meta = _read_metadata(folder / mat_rel, source)
        keep, age, counts = _filter(meta, min_face_score, bool(drop_second_face))
        rows = np.flatnonzero(keep)
        if max_images is not None:
            rows = rows[: int(max_images)]
        if not len(rows):
            raise ValueError(
                f"No IMDB-WIKI ({source}) row is left after filtering "
                f"({dict(zip(FILTERS, counts.tolist()))} of {len(keep)} dropped); "
                "lower min_face_score."
            )
        files = meta["full_path"][rows]
        missing = [f for f in files if not (images_dir / f).exists()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} images listed in {mat_rel} are missing in {images_dir}, "
                f"e.g. {missing[:3]}; the image folder is incomplete."
            )
        images = read_images(
            [images_dir / f for f in files], size=size, color=color, dataset=f"IMDB-WIKI ({source})"
        )
        return {
            "images": images,
            "age": age[rows],
            # The .mat file says 1 = male, 0 = female; skface says 0 = male, 1 = female.
            "gender": (meta["gender"][rows] == 0).astype(np.intp),
            "name": meta["name"][rows],
            "face_score": meta["face_score"][rows],
            "photo_taken": meta["photo_taken"][rows],
            "filenames": files,
            "n_filtered": counts,
            "n_total": np.array(len(keep)),
        }

    params = dict(
        source=source, min_face_score=min_face_score, drop_second_face=bool(drop_second_face),
        size=size, color=bool(color), max_images=None if max_images is None else int(max_images),
    )
    sources = [images_dir, folder / mat_rel]
    arrays = cached_arrays(f"imdb_wiki_{source}", params, sources, compute)
    return make_bunch(
        images=arrays["images"],
        target=arrays["age"],
        return_X_y=return_X_y,
        age=arrays["age"],
        gender=arrays["gender"],
        gender_names=np.array(GENDER_NAMES),
        name=arrays["name"],
        face_score=arrays["face_score"],
        photo_taken=arrays["photo_taken"],
        filenames=arrays["filenames"],
        paths=file_paths(images_dir, arrays["filenames"]),
        n_total=int(arrays["n_total"]),
        n_filtered=dict(zip(FILTERS, (int(c) for c in arrays["n_filtered"]))),
        DESCR=_descr(source),
    )


def _descr(source):
    what = {"wiki": "Wikipedia (wiki_crop)", "imdb": "IMDb (imdb_crop)"}[source]
    return (
        f"IMDB-WIKI, {what}: cropped celebrity faces; target = age in years at the time "
        "of the photo (from the date of birth and the photo's year, taken as mid-year), "
        "gender 0 = male, 1 = female. Rows without a clear single face, with unknown "
        "gender or with an age outside 0-100 are filtered out (counts in n_filtered).\n\n"
        "Images: JPEG crops of varying size (some grey), resized to `size`.\n\n"
        f"Citation: {CITATION}\n\nTerms of use: {TERMS}\n"
    )
