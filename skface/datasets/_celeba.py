"""CelebA: aligned celebrity faces with 40 binary attributes, identities and 5 landmarks."""

import numpy as np

from ._cache import cached_arrays
from ._common import check_choice, check_size, file_paths, make_bunch, read_csv
from ._download import ChecksumError, ensure_files
from ._home import get_data_home
from ._images import read_images
from ._registry import dataset

CITATION = (
    "Ziwei Liu, Ping Luo, Xiaogang Wang, Xiaoou Tang. Deep Learning Face Attributes in "
    "the Wild. Proceedings of the International Conference on Computer Vision (ICCV), "
    "2015."
)
TERMS = (
    "CelebA is available for non-commercial research purposes only; the images are "
    "not the property of CUHK and must not be reproduced, sold or used commercially. "
    "Cite the paper above. Do not use the data to identify or profile people."
)
MANUAL_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

IMAGES_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
TEXT_FILES = (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE, LANDMARKS_FILE)

# (height, width) of every aligned image (178 wide, 218 high). Renamed from the
# (width, height) IMAGE_SIZE so that an old import fails instead of swapping.
IMAGE_SHAPE = (218, 178)
SPLITS = {"train": 0, "valid": 1, "test": 2}
PARTITION_NAMES = ("train", "valid", "test")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def _celeba_folder(data_home, download_if_missing):
    folder = get_data_home(data_home) / "celeba"
    # One file at a time, so only what is missing is downloaded.
    for needed, remote in [(IMAGES_DIR, "img_align_celeba.zip")] + [(f, f) for f in TEXT_FILES]:
        try:
            ensure_files(
                folder,
                [needed],
                remote=[remote],
                download_if_missing=download_if_missing,
                dataset="CelebA",
                manual_url=MANUAL_URL,
            )
        except ChecksumError as exc:
            # Google Drive answers large or popular files with an HTML page
            # (virus-scan notice, quota exceeded) instead of the file.
            raise ChecksumError(
                f"{exc}\nGoogle Drive often serves a notice page instead of the CelebA "
                f"files; download them by hand from {MANUAL_URL} ('Align&Cropped Images' "
                f"and the 'Anno' / 'Eval' text files) into {folder}."
            ) from None
    return folder


def _todo(path):
    return (
        f"delete {path} and fetch again (it is downloaded when missing), or download it "
        f"by hand from {MANUAL_URL}"
    )


def _read_table(path, n_header):
    """``(file names, int matrix)`` of a whitespace-separated CelebA list file."""
    table = read_csv(
        path, sep=r"\s+", header=None, skiprows=n_header, dtype={0: str},
        dataset="CelebA", todo=_todo(path),
    )
    try:
        values = table.iloc[:, 1:].to_numpy(dtype=np.int64)
    except (ValueError, TypeError):
        values = None
    if values is None or values.shape[1] == 0:
        raise ValueError(
            f"CelebA: {path} must hold a file name then integers on every line after its "
            f"{n_header} header line(s); {_todo(path)}."
        )
    return table[0].to_numpy(dtype=str), values


def _attribute_names(path):
    with open(path) as f:
        f.readline()  # image count
        names = f.readline().split()
    if not names:
        raise ValueError(
            f"CelebA: {path} has no attribute names on its second line; {_todo(path)}."
        )
    return names


def _align(names, values, order, path):
    """Rows of ``values`` for the files ``order``, looked up by file name."""
    index = {name: i for i, name in enumerate(names)}
    try:
        return values[[index[name] for name in order]]
    except KeyError as exc:
        raise ValueError(
            f"{path.name} has no row for {exc.args[0]}, which {PARTITION_FILE} lists; "
            "the annotation files are from different releases."
        ) from None


def _check_box(box):
    if box is None:
        return None
    box = tuple(int(b) for b in box)
    height, width = IMAGE_SHAPE
    if len(box) != 4 or not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
        raise ValueError(
            f"box must be (left, upper, right, lower) inside the {width}x{height} aligned "
            f"CelebA image, got {box!r}."
        )
    return box


def _scale_landmarks(landmarks, box, size):
    """Move (n, 5, 2) pixel landmarks of the aligned image into the cropped, resized one."""
    landmarks = landmarks.astype(np.float32)
    height, width = IMAGE_SHAPE
    left, upper, right, lower = box or (0, 0, width, height)
    landmarks -= np.array([left, upper], dtype=np.float32)
    if size is not None:
        # Points are (x, y) and size is (height, width): x follows the width.
        new_height, new_width = size
        landmarks *= np.array(
            [new_width / (right - left), new_height / (lower - upper)], np.float32
        )
    return landmarks


@dataset(
    folder="celeba", required=(IMAGES_DIR + "/",) + TEXT_FILES, citation=CITATION, downloadable=True
)
def fetch_celeba(
    *,
    data_home=None,
    split="all",
    target="attributes",
    size=None,
    color=True,
    box=None,
    max_images=None,
    download_if_missing=True,
    return_X_y=False,
):
    """Load CelebA (aligned & cropped) with its attributes, identities and landmarks.

    Reads the official files in the data home's ``celeba/`` folder:
    ``img_align_celeba/`` (000001.jpg ... 202599.jpg, 178x218 RGB),
    ``list_attr_celeba.txt``, ``identity_CelebA.txt``,
    ``list_eval_partition.txt`` and ``list_landmarks_align_celeba.txt``.

    The full set does not fit in memory at full size (202,599 RGB faces of
    178x218 in float32 take 94 GB): pass ``size`` and/or ``max_images``.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    split : {"all", "train", "valid", "test"}, default="all"
        The official evaluation partition (``list_eval_partition.txt``:
        162,770 / 19,867 / 19,962 images, disjoint identities).
    target : {"attributes", "identity", "landmarks"}, default="attributes"
        What ``target`` holds; all three are in the Bunch anyway.
    size : int or tuple of int (height, width) or None, default=None
        Output size of each face, rows first as in ``images.shape[1:3]``
        (an int means a square); None keeps the size of the (cropped)
        image, (218, 178) without ``box``.
    color : bool, default=True
        Keep the 3 RGB channels; else grey (mean of the channels).
    box : tuple of int (left, upper, right, lower) or None, default=None
        Crop rectangle in the 178x218 aligned image, applied before
        resizing; None keeps the whole image.
    max_images : int or None, default=None
        Keep only the first ``max_images`` images of the split, in file
        order, to bound memory.
    download_if_missing : bool, default=True
        Download the missing files (pinned sha256) when absent; if False,
        raise ``FileNotFoundError``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (n_samples, height * width [* 3]), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (n_samples, height, width[, 3]), float32
            The same faces as images.
        target : ndarray
            ``attributes`` (n_samples, 40), ``identity`` (n_samples,) or the
            landmarks flattened to (n_samples, 10), as chosen by ``target``.
        attributes : ndarray of shape (n_samples, 40), uint8
            1 when the face has the attribute, else 0 (the file's -1).
        attribute_names : ndarray of shape (40,)
            "5_o_Clock_Shadow", ..., "Young"; also ``target_names`` when
            ``target="attributes"``.
        identity : ndarray of shape (n_samples,)
            Celebrity id, 1 to 10,177.
        landmarks : ndarray of shape (n_samples, 5, 2), float32
            (x, y) of the eyes, nose and mouth corners (``landmark_names``)
            in pixels of the returned image: shifted by ``box`` and scaled
            with ``size``.
        landmark_names : ndarray of shape (5,)
            Names of the five landmarks.
        partition : ndarray of shape (n_samples,)
            0 = train, 1 = valid, 2 = test (``partition_names``).
        filenames : ndarray of shape (n_samples,)
            File names in ``img_align_celeba/``.
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    check_choice("split", split, ("all",) + tuple(SPLITS))
    check_choice("target", target, ("attributes", "identity", "landmarks"))
    size = check_size(size)
    box = _check_box(box)
    if max_images is not None and (int(max_images) != max_images or max_images < 1):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}.")
    folder = _celeba_folder(data_home, download_if_missing)
    images_dir = folder / IMAGES_DIR

    def compute():
        files, partition = _read_table(folder / PARTITION_FILE, 0)
        partition = partition[:, 0]
        keep = np.ones(len(files), bool) if split == "all" else partition == SPLITS[split]
        files, partition = files[keep], partition[keep]
        if max_images is not None:
            files, partition = files[: int(max_images)], partition[: int(max_images)]
        if not len(files):
            raise ValueError(f"{PARTITION_FILE} lists no image of split {split!r}.")
        missing = [f for f in files if not (images_dir / f).exists()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} images listed in {PARTITION_FILE} are missing in "
                f"{images_dir}, e.g. {missing[:3]}; the image folder is incomplete."
            )
        attr_names, attrs = _read_table(folder / ATTR_FILE, 2)
        id_names, ids = _read_table(folder / IDENTITY_FILE, 0)
        lm_names, lms = _read_table(folder / LANDMARKS_FILE, 2)
        attributes = (_align(attr_names, attrs, files, folder / ATTR_FILE) > 0).astype(np.uint8)
        identity = _align(id_names, ids, files, folder / IDENTITY_FILE)[:, 0]
        landmarks = _align(lm_names, lms, files, folder / LANDMARKS_FILE).reshape(-1, 5, 2)
        images = read_images(
            [images_dir / f for f in files], box=box, size=size, color=color, dataset="CelebA"
        )
        return {
            "images": images,
            "attributes": attributes,
            "attribute_names": np.array(_attribute_names(folder / ATTR_FILE), dtype=str),
            "identity": identity,
            "landmarks": _scale_landmarks(landmarks, box, size),
            "partition": partition.astype(np.int8),
            "filenames": files,
        }

    params = dict(
        split=split, size=size, color=bool(color), box=box,
        max_images=None if max_images is None else int(max_images),
    )
    sources = [images_dir] + [folder / name for name in TEXT_FILES]
    arrays = cached_arrays("celeba", params, sources, compute)
    landmarks = arrays["landmarks"]
    targets = {
        "attributes": arrays["attributes"],
        "identity": arrays["identity"],
        "landmarks": landmarks.reshape(len(landmarks), -1),
    }
    extra = {"target_names": arrays["attribute_names"]} if target == "attributes" else {}
    return make_bunch(
        images=arrays["images"],
        target=targets[target],
        return_X_y=return_X_y,
        attributes=arrays["attributes"],
        attribute_names=arrays["attribute_names"],
        identity=arrays["identity"],
        landmarks=landmarks,
        landmark_names=np.array(LANDMARK_NAMES),
        partition=arrays["partition"],
        partition_names=np.array(PARTITION_NAMES),
        filenames=arrays["filenames"],
        paths=file_paths(images_dir, arrays["filenames"]),
        DESCR=_descr(),
        **extra,
    )


def _descr():
    return (
        "CelebA (Large-scale CelebFaces Attributes), aligned & cropped: 202,599 face "
        "images of 10,177 celebrities, each with 40 binary attributes, an identity and "
        "5 landmarks; official train / valid / test partition.\n\n"
        "Images: 178x218 RGB JPEG (img_align_celeba/), optionally cropped and resized.\n\n"
        f"Citation: {CITATION}\n\nTerms of use: {TERMS}\n"
    )
