"""The AT&T (ORL) Database of Faces: 400 grey 92x112 PGM faces of 40 people."""

import os
import re

import numpy as np

from ._cache import cached_arrays
from ._common import check_size, file_paths, make_bunch
from ._download import ensure_files
from ._home import get_data_home
from ._images import read_images
from ._registry import dataset

CITATION = (
    "F. S. Samaria, A. C. Harter. Parameterisation of a stochastic model for human face "
    "identification. Proceedings of the 2nd IEEE Workshop on Applications of Computer "
    "Vision, Sarasota FL, December 1994. The Database of Faces, AT&T Laboratories "
    "Cambridge (formerly the Olivetti Research Laboratory, ORL)."
)
TERMS = (
    "Free for research use; when using the images, cite the paper above and "
    "acknowledge AT&T Laboratories Cambridge."
)
# The official site is defunct and no checksum of the archive is published, so
# the files are never downloaded automatically.
MANUAL_URL = "https://www.cl.cam.ac.uk/research/dtg/attarchive/facedatabase.html"

_SUBJECT_DIR = re.compile(r"s(\d+)")
_IMAGE_FILE = re.compile(r"(\d+)\.pgm")


def _scan(images_dir):
    """Subject folders and their images, ordered numerically (s2 before s10)."""
    subjects = sorted(
        (int(m[1]), name)
        for name in os.listdir(images_dir)
        if (m := _SUBJECT_DIR.fullmatch(name)) and (images_dir / name).is_dir()
    )
    names, target, files = [], [], []
    for label, (_, subject) in enumerate(subjects):
        numbered = sorted(
            (int(m[1]), f) for f in os.listdir(images_dir / subject)
            if (m := _IMAGE_FILE.fullmatch(f))
        )
        names.append(subject)
        target.extend([label] * len(numbered))
        files.extend(f"{subject}/{f}" for _, f in numbered)
    return names, target, files


@dataset(folder="orl", required=("att_faces/",), citation=CITATION)
def fetch_orl_faces(*, data_home=None, size=None, download_if_missing=True, return_X_y=False):
    """Load the AT&T (ORL) Database of Faces: 10 grey faces each of 40 people.

    The original 92x112 PGM files, unlike :func:`fetch_olivetti_faces`
    (the same pictures cut down to 64x64). The files cannot be downloaded
    automatically (the official site is defunct and no checksum is
    published): put ``att_faces/s1/1.pgm`` ... ``att_faces/s40/10.pgm`` in
    the ``orl/`` folder of the data home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`~skface.datasets.get_data_home`.
    size : int or tuple of int (height, width) or None, default=None
        Output size, rows first as in ``images.shape[1:3]`` (an int means
        square); None keeps the files' (112, 92): 112 high, 92 wide. Half
        size is ``(56, 46)``.
    download_if_missing : bool, default=True
        Kept for a uniform signature: the files are never downloaded, so
        absent files always raise ``FileNotFoundError``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    dataset : sklearn.utils.Bunch
        data : ndarray of shape (400, height * width), float32
            Flattened faces, values in [0, 1].
        images : ndarray of shape (400, height, width), float32
            (400, 112, 92) by default.
        target : ndarray of shape (400,)
            Index into ``target_names``: subject ``s<k>`` is ``k - 1``.
        target_names : ndarray of shape (40,)
            Subject folders ``"s1"`` ... ``"s40"``, in numeric order.
        filenames : ndarray of shape (400,)
            ``"s<k>/<n>.pgm"``, ordered by subject then image number
            (numerically: ``s1/2.pgm`` before ``s1/10.pgm``).
        paths : ndarray of shape (n_samples,), str
            Absolute path of each face's image file (e.g. to give
            :class:`~skface.align.FaceAligner` the originals), made from
            ``data_home`` at each call.
        DESCR : str
            Description, citation and terms of use.
    (data, target) : tuple if ``return_X_y`` is True
    """
    size = check_size(size)
    folder = get_data_home(data_home) / "orl"
    ensure_files(
        folder,
        ["att_faces/"],
        download_if_missing=download_if_missing,
        dataset="AT&T (ORL) faces",
        manual_url=MANUAL_URL,
    )
    images_dir = folder / "att_faces"

    def compute():
        names, target, files = _scan(images_dir)
        if not files:
            raise FileNotFoundError(
                f"No s<k>/<n>.pgm faces in {images_dir}; get them from {MANUAL_URL}."
            )
        # PGM is grey: the RGB-then-mean decoding gives back the grey values.
        images = read_images([images_dir / f for f in files], size=size, dataset="AT&T (ORL) faces")
        return {
            "images": images,
            "target": np.array(target, dtype=np.intp),
            "target_names": np.array(names),
            "filenames": np.array(files),
        }

    arrays = cached_arrays("orl_faces", {"size": size}, images_dir, compute)
    return make_bunch(
        images=arrays["images"],
        target=arrays["target"],
        return_X_y=return_X_y,
        target_names=arrays["target_names"],
        filenames=arrays["filenames"],
        paths=file_paths(images_dir, arrays["filenames"]),
        DESCR=_descr(),
    )


def _descr():
    return (
        "AT&T (ORL) Database of Faces: 400 grey 92x112 PGM images, 10 each of 40 "
        "people, taken between April 1992 and April 1994 at the Olivetti Research "
        "Laboratory, Cambridge, with varying lighting, expressions, details (glasses) "
        "and slight pose changes; target = person.\n\n"
        f"Citation: {CITATION}\n\nTerms of use: {TERMS}\n"
    )
