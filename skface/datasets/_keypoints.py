"""Facial keypoints: Kaggle's Facial Keypoints Detection and the YouTube Faces 68-point set."""

import re
import warnings

import numpy as np

from ._cache import cached_arrays
from ._common import check_choice, check_size, file_paths, make_bunch, read_csv
from ._download import ensure_files
from ._home import get_data_home
from ._images import image_sizes, read_images
from ._registry import dataset

KAGGLE_CITATION = (
    "Kaggle, Facial Keypoints Detection competition (2013), "
    "https://www.kaggle.com/c/facial-keypoints-detection. Data provided by Dr. Yoshua "
    "Bengio's lab, University of Montreal."
)
KAGGLE_TERMS = (
    "Governed by the competition's rules on Kaggle (accept them to download the files): "
    "non-commercial research and education use; do not redistribute the data."
)
KAGGLE_URL = "https://www.kaggle.com/c/facial-keypoints-detection/data"

YOUTUBE_CITATION = (
    "Lior Wolf, Tal Hassner, Itay Maoz. Face Recognition in Unconstrained Videos with "
    "Matched Background Similarity. IEEE CVPR 2011 (YouTube Faces). 68-point keypoints "
    "from Udacity's Computer Vision Nanodegree project P1_Facial_Keypoints."
)
YOUTUBE_TERMS = (
    "YouTube Faces is published for non-commercial research use; cite the paper above. "
    "The frames show real people: do not use them to identify or profile anyone."
)
# Udacity's archive of the images and CSVs; no checksum is published for it, so
# it is not downloaded automatically.
YOUTUBE_URL = (
    "https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/"
    "5aea1b91_train-test-data/train-test-data.zip"
)

# Kaggle images are 96x96 grey; coordinates are in pixels of that image.
KAGGLE_SIZE = 96
KEYPOINT_NAMES = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
# Column order of training.csv, and of the 30 target columns.
FEATURE_NAMES = tuple(f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in "xy")

_KAGGLE_FILES = {"train": "training", "test": "test"}
_YOUTUBE_SUBSETS = {"train": "training", "test": "test"}
N_YOUTUBE_KEYPOINTS = 68


def _kaggle_source(folder, subset, download_if_missing):
    """The subset's CSV, or the ``.zip`` Kaggle ships it in (pandas reads either)."""
    stem = _KAGGLE_FILES[subset]
    for name in (f"{stem}.csv", f"{stem}.zip"):
        if (folder / name).exists():
            return folder / name
    ensure_files(
        folder,
        [f"{stem}.csv"],
        download_if_missing=download_if_missing,
        dataset="Kaggle facial keypoints",
        manual_url=KAGGLE_URL,
    )
    return folder / f"{stem}.csv"


def _parse_pixels(column, source):
    """``Image`` strings (9,216 space-separated ints each) -> uint8 (n, 96, 96).

    One C-level parse of the joined column instead of a Python string per
    pixel: about 2 s for the 7,049 training faces.
    """
    n_pixels = KAGGLE_SIZE * KAGGLE_SIZE
    column = [str(s) for s in column]
    with warnings.catch_warnings():
        # numpy warns (and stops) at a token it cannot read: make that an error.
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(" ".join(column), dtype=np.int16, sep=" ")
        except (DeprecationWarning, ValueError):
            values = None
    if values is None or values.size != len(column) * n_pixels:
        counts = [len(s.split()) for s in column]
        bad = [i for i, c in enumerate(counts) if c != n_pixels]
        detail = (
            f"row {bad[0]} has {counts[bad[0]]} values"
            if bad
            else "a value is not an integer"
        )
        raise ValueError(
            f"{source}: every Image must be {n_pixels} space-separated integers "
            f"(a {KAGGLE_SIZE}x{KAGGLE_SIZE} grey face); {detail}."
        )
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"{source}: Image pixel values must lie in 0-255.")
    return values.astype(np.uint8).reshape(len(column), KAGGLE_SIZE, KAGGLE_SIZE)


def _kaggle_arrays(source, subset):
    def compute():
        frame = read_csv(
            source, dataset="Kaggle facial keypoints", dtype={"Image": str},
            todo=f"download it again from {KAGGLE_URL}",
        )
        if "Image" not in frame.columns:
            raise ValueError(f"{source}: no Image column; is this a Kaggle keypoints CSV?")
        images = _parse_pixels(frame["Image"], source).astype(np.float32)
        images /= 255.0
        arrays = {"images": images}
        if subset == "train":
            columns = [c for c in frame.columns if c != "Image"]
            if tuple(columns) != FEATURE_NAMES:
                raise ValueError(
                    f"{source}: expected the 30 keypoint columns {FEATURE_NAMES[:2]}... "
                    f"then Image, got {columns}."
                )
            # Missing coordinates are empty fields: NaN, and the row is kept.
            arrays["target"] = frame[columns].to_numpy(dtype=np.float32)
        elif "ImageId" in frame.columns:
            arrays["image_ids"] = frame["ImageId"].to_numpy(dtype=np.int64)
        else:
            raise ValueError(f"{source}: no ImageId column; is this Kaggle's test.csv?")
        return arrays

    return cached_arrays("facial_keypoints", {"subset": subset}, source, compute)


@dataset(
    folder="kaggle_facial_keypoints",
    required=("training.csv", "test.csv", "IdLookupTable.csv"),
    citation=KAGGLE_CITATION,
)
def fetch_facial_keypoints(
    *, data_home=None, subset="train", download_if_missing=True, return_X_y=False
):
    """Load Kaggle's Facial Keypoints Detection data (96x96 grey faces, 15 points).

    The files need a Kaggle login and cannot be downloaded automatically: put
    ``training.csv`` and ``test.csv`` (or Kaggle's ``training.zip`` /
    ``test.zip``) and ``IdLookupTable.csv`` from
    https://www.kaggle.com/c/facial-keypoints-detection/data in the
    ``kaggle_facial_keypoints/`` folder of the data home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    subset : {"train", "test"}, default="train"
        ``"train"`` reads ``training.csv`` (7,049 faces with keypoints, most
        with some missing); ``"test"`` reads ``test.csv`` (1,783 faces, no
        keypoints).
    download_if_missing : bool, default=True
        Kept for a uniform signature: the files are never downloaded, so
        absent files always raise ``FileNotFoundError``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch (``target`` is None for
        the test subset).

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (n_samples, 9216), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (n_samples, 96, 96), float32
            The same faces as images.
        target : ndarray of shape (n_samples, 30), float32, or None
            Keypoint coordinates in pixels (``feature_names`` order, x then y
            of each point). Missing coordinates are NaN: rows with missing
            values are kept, never dropped. None for ``subset="test"``.
        keypoints : ndarray of shape (n_samples, 15, 2), float32
            ``target`` as (x, y) points; train only.
        feature_names : ndarray of shape (30,)
            Column names, e.g. ``"left_eye_center_x"``.
        keypoint_names : ndarray of shape (15,)
            Point names, e.g. ``"left_eye_center"``.
        image_ids : ndarray of shape (n_samples,)
            Kaggle ``ImageId`` of each face (1-based); test only. Pass the
            predictions to :func:`write_keypoints_submission`.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    check_choice("subset", subset, tuple(_KAGGLE_FILES))
    folder = get_data_home(data_home) / "kaggle_facial_keypoints"
    source = _kaggle_source(folder, subset, download_if_missing)
    arrays = _kaggle_arrays(source, subset)
    target = arrays.get("target")
    extra = {}
    if target is not None:
        extra["keypoints"] = target.reshape(len(target), len(KEYPOINT_NAMES), 2)
    else:
        extra["image_ids"] = arrays["image_ids"]
    return make_bunch(
        images=arrays["images"],
        target=target,
        return_X_y=return_X_y,
        feature_names=np.array(FEATURE_NAMES),
        keypoint_names=np.array(KEYPOINT_NAMES),
        DESCR=_kaggle_descr(subset),
        **extra,
    )


def write_keypoints_submission(predictions, id_lookup, path, *, image_ids=None):
    """Write a Kaggle submission (``RowId,Location``) from keypoint predictions.

    Parameters
    ----------
    predictions : array-like of shape (n_test, 30) or (n_test, 15, 2)
        Predicted coordinates in pixels of the 96x96 faces, columns in
        :data:`FEATURE_NAMES` order (as ``fetch_facial_keypoints`` returns
        ``target``). Values are clipped to [0, 96].
    id_lookup : path-like or pandas.DataFrame
        Kaggle's ``IdLookupTable.csv`` (``RowId,ImageId,FeatureName,Location``).
    path : path-like
        Where to write the CSV.
    image_ids : array-like of shape (n_test,), default=None
        Kaggle ``ImageId`` of each prediction row (the ``image_ids`` of
        ``fetch_facial_keypoints(subset="test")``); None means rows are
        images 1, 2, ..., n_test in order.

    Returns
    -------
    submission : pandas.DataFrame
        The ``RowId`` and ``Location`` columns written, in the lookup
        table's row order.

    Raises
    ------
    ValueError
        If a predicted value is not finite, or the lookup table names an
        image without a prediction row or an unknown feature.
    """
    import pandas as pd

    predictions = np.asarray(predictions, dtype=np.float64)
    predictions = predictions.reshape(len(predictions), -1)
    if predictions.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"predictions must have {len(FEATURE_NAMES)} columns (or 15 (x, y) points), "
            f"got shape {predictions.shape}."
        )
    if not np.isfinite(predictions).all():
        raise ValueError("predictions contain NaN or infinite values; Kaggle needs a number.")
    if image_ids is None:
        image_ids = np.arange(1, len(predictions) + 1)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    if image_ids.shape != (len(predictions),):
        raise ValueError(
            f"image_ids must have one id per prediction row ({len(predictions)}), "
            f"got shape {image_ids.shape}."
        )
    if isinstance(id_lookup, pd.DataFrame):
        lookup = id_lookup
    else:
        lookup = read_csv(
            id_lookup, dataset="Kaggle facial keypoints",
            todo=f"download IdLookupTable.csv again from {KAGGLE_URL}",
        )
    missing_columns = {"RowId", "ImageId", "FeatureName"} - set(lookup.columns)
    if missing_columns:
        raise ValueError(f"id_lookup lacks the columns {sorted(missing_columns)}.")

    row_of_image = pd.Series(np.arange(len(image_ids)), index=image_ids)
    rows = lookup["ImageId"].map(row_of_image)
    if rows.isna().any():
        absent = sorted(set(lookup["ImageId"][rows.isna()]))
        raise ValueError(
            f"id_lookup asks for {len(absent)} images with no prediction row, e.g. "
            f"ImageId {absent[:5]}; predictions has {len(predictions)} rows."
        )
    col_of_feature = pd.Series(np.arange(len(FEATURE_NAMES)), index=FEATURE_NAMES)
    cols = lookup["FeatureName"].map(col_of_feature)
    if cols.isna().any():
        unknown = sorted(set(lookup["FeatureName"][cols.isna()]))
        raise ValueError(f"id_lookup names unknown features {unknown[:5]}.")
    location = predictions[rows.to_numpy(dtype=np.intp), cols.to_numpy(dtype=np.intp)]
    submission = pd.DataFrame(
        {"RowId": lookup["RowId"].to_numpy(), "Location": np.clip(location, 0.0, KAGGLE_SIZE)}
    )
    submission.to_csv(path, index=False)
    return submission


_FRAME_NAME = re.compile(r"(?P<identity>.+)_(?P<frame>\d+)\.\w+")


def _identity(filename):
    """``Luis_Fonsi_21.jpg`` -> ``Luis_Fonsi`` (the person, for group-aware splits)."""
    match = _FRAME_NAME.fullmatch(filename)
    return match["identity"] if match else filename.rsplit(".", 1)[0]


def _youtube_arrays(data_home, subset, size, color, download_if_missing):
    stem = _YOUTUBE_SUBSETS[subset]
    folder = get_data_home(data_home) / "youtube_faces_keypoints"
    csv_name = f"{stem}_frames_keypoints.csv"
    ensure_files(
        folder,
        [f"{stem}/", csv_name],
        download_if_missing=download_if_missing,
        dataset="YouTube Faces keypoints",
        manual_url=YOUTUBE_URL,
    )
    images_dir = folder / stem

    dataset = "YouTube Faces keypoints"
    todo = f"unzip it again from {YOUTUBE_URL}"

    def compute():
        frame = read_csv(folder / csv_name, index_col=0, dataset=dataset, todo=todo)
        if frame.shape[1] != 2 * N_YOUTUBE_KEYPOINTS:
            raise ValueError(
                f"{folder / csv_name}: expected a file name then "
                f"{2 * N_YOUTUBE_KEYPOINTS} coordinates per row, got {frame.shape[1]} columns."
            )
        if frame.empty:
            raise ValueError(f"{folder / csv_name} lists no images.")
        filenames = np.array([str(f) for f in frame.index])
        paths = [images_dir / f for f in filenames]
        missing = [f for f, p in zip(filenames, paths) if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} images listed in {csv_name} are missing in "
                f"{images_dir}, e.g. {missing[:3]}; the image folder is incomplete."
            )
        original_sizes = image_sizes(paths, dataset=dataset)
        try:
            keypoints = frame.to_numpy(dtype=np.float64).reshape(len(frame), -1, 2)
        except ValueError as exc:
            raise ValueError(
                f"{dataset}: {folder / csv_name} has a coordinate that is not a number "
                f"({exc}); {todo}."
            ) from None
        if size is not None:
            # Coordinates follow the image: x by new/old width, y by new/old height.
            # Sizes are (height, width) and points (x, y), hence the reversal.
            scale = np.asarray(size, dtype=np.float64) / original_sizes
            keypoints = keypoints * scale[:, None, ::-1]
        images = read_images(paths, size=size, color=color, dataset=dataset)
        return {
            "images": images,
            "keypoints": keypoints.astype(np.float32),
            "filenames": filenames,
            "original_sizes": original_sizes,
            "identity": np.array([_identity(f) for f in filenames]),
        }

    params = dict(subset=subset, size=size, color=bool(color))
    sources = [images_dir, folder / csv_name]
    arrays = cached_arrays("youtube_faces_keypoints", params, sources, compute)
    return {**arrays, "paths": file_paths(images_dir, arrays["filenames"])}


@dataset(
    folder="youtube_faces_keypoints",
    required=(
        "training/",
        "test/",
        "training_frames_keypoints.csv",
        "test_frames_keypoints.csv",
    ),
    citation=YOUTUBE_CITATION,
)
def fetch_youtube_faces_keypoints(
    *,
    data_home=None,
    subset="train",
    size=96,
    color=False,
    download_if_missing=True,
    return_X_y=False,
):
    """Load the YouTube Faces 68-point facial keypoint set (Udacity's P1 data).

    Frames of YouTube Faces videos with 68 keypoints each (the iBUG 300-W
    layout). The images vary in size (about 72 to 494 pixels), so they are
    resized to one ``size`` and their keypoints scaled with them.

    The archive has no published checksum and is not downloaded
    automatically: unzip Udacity's ``train-test-data.zip`` (see
    ``YOUTUBE_URL``) so that ``training/``, ``test/``,
    ``training_frames_keypoints.csv`` and ``test_frames_keypoints.csv`` lie
    in the ``youtube_faces_keypoints/`` folder of the data home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    subset : {"train", "test"}, default="train"
        3,462 training or 770 test frames. The same people appear in both
        (different frames); use ``identity`` for person-disjoint splits.
    size : int or tuple of int (height, width) or None, default=96
        Output size of every image, rows first as in ``images.shape[1:3]``
        (an int means square). Keypoints are scaled by ``new_width / width``
        in x and ``new_height / height`` in y; map them back with
        ``keypoints * (original_sizes / size)[:, None, ::-1]`` (reversed
        because points are (x, y) and sizes (height, width)). None keeps
        the files' sizes, which works only when they all agree.
    color : bool, default=False
        Keep the 3 RGB channels; else grey (mean of the channels).
    download_if_missing : bool, default=True
        Kept for a uniform signature: the files are never downloaded, so
        absent files always raise ``FileNotFoundError``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (n_samples, height * width [* 3]), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (n_samples, height, width[, 3]), float32
            The same faces as images.
        target : ndarray of shape (n_samples, 136), float32
            Keypoints flattened as x0, y0, ..., x67, y67, in pixels of the
            returned images.
        keypoints : ndarray of shape (n_samples, 68, 2), float32
            The same as (x, y) points. A few training points lie slightly
            outside their image, as in the original annotation.
        filenames : ndarray of shape (n_samples,)
            Image file names, relative to the subset's folder.
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        original_sizes : ndarray of shape (n_samples, 2)
            (height, width) of each image file before resizing, in the
            order of ``size``.
        identity : ndarray of shape (n_samples,)
            Person of each frame (``"Luis_Fonsi"`` for ``Luis_Fonsi_21.jpg``).
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    check_choice("subset", subset, tuple(_YOUTUBE_SUBSETS))
    size = check_size(size)
    arrays = _youtube_arrays(data_home, subset, size, color, download_if_missing)
    keypoints = arrays["keypoints"]
    return make_bunch(
        images=arrays["images"],
        target=keypoints.reshape(len(keypoints), -1),
        return_X_y=return_X_y,
        keypoints=keypoints,
        filenames=arrays["filenames"],
        paths=arrays["paths"],
        original_sizes=arrays["original_sizes"],
        identity=arrays["identity"],
        DESCR=_youtube_descr(subset, size),
    )


def _kaggle_descr(subset):
    return (
        f"Kaggle Facial Keypoints Detection, {subset} subset: 96x96 grey faces; "
        "training.csv has 7,049 faces with 15 keypoints (30 coordinates, in pixels), "
        "only 2,140 of them with all 15 (missing coordinates are NaN); test.csv has "
        "1,783 faces without keypoints, scored through IdLookupTable.csv "
        "(see write_keypoints_submission).\n\n"
        f"Citation: {KAGGLE_CITATION}\n\nTerms of use: {KAGGLE_TERMS}\n"
    )


def _youtube_descr(subset, size):
    shape = "original size" if size is None else f"resized to (height, width) = {tuple(size)}"
    return (
        f"YouTube Faces keypoints, {subset} subset: video frames with 68 facial "
        f"keypoints (iBUG 300-W layout), 3,462 training and 770 test images, {shape}; "
        "keypoints are in pixels of the returned images.\n\n"
        f"Citation: {YOUTUBE_CITATION}\n\nTerms of use: {YOUTUBE_TERMS}\n"
    )
