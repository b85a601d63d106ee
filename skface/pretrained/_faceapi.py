"""The face-api package's TensorFlow.js weights: downloaded once from npm, checked, decoded and cached."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

__all__ = ["FACEAPI_MODELS", "faceapi_weights"]

# @vladmandic/face-api 1.7.15 (MIT licence) from the npm registry: one tarball holds the
# weights of every network; it is downloaded once, each network's manifest and shard are
# checked against their own pins, decoded into a safetensors file per network, and deleted.
_PACKAGE = "@vladmandic/face-api"
_VERSION = "1.7.15"
_TARBALL = f"face-api-{_VERSION}.tgz"
_TARBALL_URL = f"https://registry.npmjs.org/{_PACKAGE}/-/{_TARBALL}"
_TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
_TARBALL_MB = 12.7
HOMEPAGE = "https://github.com/vladmandic/face-api"
LICENSE = "MIT (face-api: Vladimir Mandic, and Vincent Muehler's face-api.js)"

# Each network's files in the tarball (under package/model/) and their sha256.
_MEMBERS = {
    "face_recognition_model": {
        "face_recognition_model-weights_manifest.json":
            "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
        "face_recognition_model.bin":
            "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
    },
    "age_gender_model": {
        "age_gender_model-weights_manifest.json":
            "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f",
        "age_gender_model.bin":
            "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa",
    },
    "face_landmark_68_model": {
        "face_landmark_68_model-weights_manifest.json":
            "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
        "face_landmark_68_model.bin":
            "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
    },
    "tiny_face_detector_model": {
        "tiny_face_detector_model-weights_manifest.json":
            "5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5",
        "tiny_face_detector_model.bin":
            "b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871",
    },
    "ssd_mobilenetv1_model": {
        "ssd_mobilenetv1_model-weights_manifest.json":
            "888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955",
        "ssd_mobilenetv1_model.bin":
            "2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8",
    },
}
FACEAPI_MODELS = tuple(_MEMBERS)
_FORMAT = "skface-tfjs-weights-1"


def _folder(cache_home):
    from ..datasets._home import get_cache_home  # deferred: keeps this module's import light

    return get_cache_home(cache_home) / "models" / "faceapi"


def _weights_file(folder, model):
    return folder / f"faceapi-{_VERSION}-{model}.safetensors"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _read_tarball(tarball):
    """``{model: {tfjs name: ndarray}}`` of every network in the tarball, each file checked."""
    from ..datasets._download import ChecksumError
    from ._tfjs import decode_weights

    decoded = {}
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            for model, members in _MEMBERS.items():
                files = {}
                for name, digest in members.items():
                    try:
                        # extractfile reads the member's bytes; nothing is written to disk.
                        handle = tar.extractfile(f"package/model/{name}")
                    except KeyError:
                        handle = None
                    if handle is None:
                        raise ValueError(
                            f"{tarball.name} has no package/model/{name}: it is not the "
                            f"{_PACKAGE} {_VERSION} tarball. It was deleted; fetch it again."
                        )
                    data = handle.read()
                    if _sha256(data) != digest:
                        raise ChecksumError(
                            f"package/model/{name} in {tarball.name} does not match its pinned "
                            f"checksum sha256:{digest}; the tarball was deleted and nothing was "
                            "kept. Try again later, or unset SKFACE_MIRROR if it points to a mirror."
                        )
                    files[name] = data
                manifest = json.loads(files.pop(f"{model}-weights_manifest.json"))
                decoded[model] = decode_weights(manifest, files, where=f"{_TARBALL}:{model}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, ChecksumError):
            raise
        raise ValueError(f"{tarball.name} is not a readable .tgz archive ({exc}); it was "
                         "deleted.") from None
    return decoded


def _write(folder, decoded):
    import torch

    from .._persist import write_safetensors

    for model, tensors in decoded.items():
        write_safetensors(
            {k: torch.from_numpy(v.copy()).contiguous() for k, v in tensors.items()},
            _weights_file(folder, model),
            {"format": _FORMAT, "model": model,
             "source": f"{_PACKAGE}@{_VERSION} {_TARBALL} sha256:{_TARBALL_SHA256}"},
            what="weights file",
        )


def _read(path, model):
    from .._persist import read_safetensors

    metadata, tensors = read_safetensors(path)
    if metadata.get("format") != _FORMAT or metadata.get("model") != model:
        raise ValueError(f"{path} is not skface's decoded {model} weights file")
    return {k: v.numpy() for k, v in tensors.items()}


def faceapi_weights(model, *, cache_home=None, download_if_missing=True):
    """One face-api network's weights, by their TensorFlow.js names, downloaded on first use.

    The first call downloads the ``@vladmandic/face-api`` 1.7.15 tarball
    from the npm registry (12.7 MB, pinned by sha256; ``SKFACE_MIRROR``
    applies, as for the datasets), checks each network's manifest and
    weights file against their own pins, decodes them (uint8-quantised
    tensors dequantised as TensorFlow.js does), writes one safetensors file
    per network into ``<cache home>/models/faceapi/`` and deletes the
    tarball. Later calls read only those files.

    Parameters
    ----------
    model : str
        One of ``FACEAPI_MODELS``: "face_recognition_model",
        "age_gender_model", "face_landmark_68_model",
        "tiny_face_detector_model", "ssd_mobilenetv1_model".
    cache_home : path-like, default=None
        See :func:`skface.datasets.get_cache_home`.
    download_if_missing : bool, default=True
        If False, raise instead of downloading; a tarball put in the folder
        by hand is still converted.

    Returns
    -------
    weights : dict of str to ndarray
        float32 arrays in TensorFlow layouts (conv filters (kh, kw, in, out)).

    Raises
    ------
    ValueError
        If ``model`` is not one of ``FACEAPI_MODELS``.
    FileNotFoundError
        If the weights are not cached and ``download_if_missing`` is False.
    skface.datasets.ChecksumError
        If the tarball or one of its files differs from its pin; nothing is kept.
    skface.datasets.DownloadError
        If the tarball cannot be downloaded (offline, say); the message names
        the URL and ``SKFACE_MIRROR``.
    """
    from .._warnings import warn_at_caller
    from ..datasets._download import ChecksumError, download

    if model not in _MEMBERS:
        raise ValueError(f"Unknown face-api network {model!r}; choose one of "
                         f"{', '.join(FACEAPI_MODELS)}.")
    folder = _folder(cache_home)
    path = _weights_file(folder, model)
    if path.exists():
        try:
            return _read(path, model)
        except ValueError as exc:
            warn_at_caller(f"skface: the cached face-api weights cannot be used ({exc}); "
                           "converting them again.", RuntimeWarning)
            path.unlink(missing_ok=True)
    tarball = folder / _TARBALL
    if not tarball.exists() and not download_if_missing:
        raise FileNotFoundError(
            f"The face-api weights are not in {folder} (download_if_missing=False). Call "
            f"again with download_if_missing=True to download them (about {_TARBALL_MB} MB), "
            f"or put {_TARBALL} ({_TARBALL_URL}, sha256:{_TARBALL_SHA256}) in {folder} by "
            "hand: it is converted and deleted on the next call."
        )
    try:
        if tarball.exists():
            if _sha256(tarball.read_bytes()) != _TARBALL_SHA256:
                raise ChecksumError(
                    f"{tarball} does not match its pinned checksum sha256:{_TARBALL_SHA256}; "
                    f"it was deleted. Download it again from {_TARBALL_URL}."
                )
        else:
            tarball = download(_TARBALL, folder, url=_TARBALL_URL,
                               known_hash=f"sha256:{_TARBALL_SHA256}")
        decoded = _read_tarball(tarball)
        _write(folder, decoded)
    finally:
        tarball.unlink(missing_ok=True)
    return decoded[model]
