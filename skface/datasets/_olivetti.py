"""Olivetti faces (AT&T Laboratories Cambridge), as scikit-learn serves them."""

import numpy as np

from ._common import make_bunch, read_mat
from ._download import ensure_files
from ._home import get_data_home
from ._registry import dataset

CITATION = (
    "F. S. Samaria, A. C. Harter. Parameterisation of a stochastic model for human face "
    "identification. Proceedings of the 2nd IEEE Workshop on Applications of Computer "
    "Vision, Sarasota FL, 1994. Images from AT&T Laboratories Cambridge (the ORL "
    "database of faces); 64x64 version by Sam Roweis (olivettifaces.mat)."
)
TERMS = (
    "Free for research use; cite the paper above and credit AT&T Laboratories Cambridge."
)

# The decoded layout (shared copies of the data) and the file scikit-learn downloads.
_DECODED = ("olivetti_faces_uint8.npy", "olivetti_target.npy")
_MAT = "olivettifaces.mat"
N_PER_PERSON = 10


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(
            f"Olivetti faces: {path} cannot be read as a .npy array ({type(exc).__name__}: "
            f"{exc}); it is truncated or damaged. Replace it with a good copy, or delete "
            f"{_DECODED[0]} and {_DECODED[1]} so that {_MAT} is downloaded and decoded instead."
        ) from None


def _from_decoded(folder):
    faces = _load_npy(folder / _DECODED[0])
    target = _load_npy(folder / _DECODED[1])
    if faces.ndim != 3 or faces.shape[1:] != (64, 64) or len(target) != len(faces):
        raise ValueError(
            f"{folder}: {_DECODED[0]} must hold (n, 64, 64) faces and {_DECODED[1]} one "
            f"identity per face; got {faces.shape} and {target.shape}."
        )
    images = faces.astype(np.float32)
    images /= 255.0
    return images, target.astype(np.intp)


def _from_mat(path):
    """Decode Roweis's ``.mat`` exactly as :func:`sklearn.datasets.fetch_olivetti_faces`."""
    todo = "delete it and fetch again (it is downloaded when missing)"
    mat = read_mat(path, dataset="Olivetti faces", todo=todo)
    if "faces" not in mat:
        raise ValueError(f"Olivetti faces: {path} has no 'faces' array; {todo}.")
    faces = mat["faces"].T.astype(np.float32, copy=True)
    if faces.ndim != 2 or faces.shape[1] != 64 * 64:
        raise ValueError(f"{path}: 'faces' must be a (4096, n) array, got {faces.T.shape}.")
    faces -= faces.min()
    faces /= faces.max()
    # Column-major 64x64 images in the .mat: transpose each to rows of pixels.
    images = faces.reshape((-1, 64, 64)).transpose(0, 2, 1)
    # 10 consecutive pictures of each of the 40 people.
    target = np.arange(len(images), dtype=np.intp) // N_PER_PERSON
    return np.ascontiguousarray(images), target


@dataset(folder="olivetti", required=(_MAT + "|" + _DECODED[0],), citation=CITATION, downloadable=True)
def fetch_olivetti_faces(
    *, data_home=None, shuffle=False, random_state=0, download_if_missing=True, return_X_y=False
):
    """Load the Olivetti faces: 400 grey 64x64 faces of 40 people.

    The ``olivetti/`` folder of the data home is read in either layout:

    - decoded ``olivetti_faces_uint8.npy`` (uint8, 400x64x64) and
      ``olivetti_target.npy``, read as ``faces / 255`` in float32;
    - else the ``olivettifaces.mat`` that scikit-learn downloads (pinned
      sha256; downloaded when absent), decoded exactly as
      :func:`sklearn.datasets.fetch_olivetti_faces` does (shifted and
      scaled so that values span [0, 1]).

    The shuffle is scikit-learn's: the same order for the same
    ``random_state``.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    shuffle : bool, default=False
        Shuffle the faces (10 pictures of one person are otherwise in a row).
    random_state : int, RandomState instance or None, default=0
        Seed of the shuffle.
    download_if_missing : bool, default=True
        Download ``olivettifaces.mat`` when absent; if False, raise
        ``FileNotFoundError``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (400, 4096), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (400, 64, 64), float32
            The same faces as images.
        target : ndarray of shape (400,)
            Person of each face, 0-39.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    from sklearn.utils import check_random_state

    folder = get_data_home(data_home) / "olivetti"
    if all((folder / name).exists() for name in _DECODED):
        images, target = _from_decoded(folder)
    else:
        ensure_files(
            folder,
            [_MAT],
            remote=[_MAT],
            download_if_missing=download_if_missing,
            dataset="Olivetti faces",
        )
        images, target = _from_mat(folder / _MAT)
    if shuffle:
        order = check_random_state(random_state).permutation(len(images))
        images, target = images[order], target[order]
    return make_bunch(images=images, target=target, return_X_y=return_X_y, DESCR=_descr())


def _descr():
    return (
        "Olivetti faces: 400 grey 64x64 images, 10 each of 40 people, taken between "
        "April 1992 and April 1994 at AT&T Laboratories Cambridge, with varying "
        "lighting, facial expressions and details (glasses); target = person, 0-39.\n\n"
        f"Citation: {CITATION}\n\nTerms of use: {TERMS}\n"
    )
