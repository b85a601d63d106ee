"""Downloads: every remote file pinned by sha256 in ``registry.txt``, one path through pooch."""

import functools
import os
import re
import tarfile
import zipfile
from pathlib import Path

MIRROR_ENV = "SKFACE_MIRROR"


class ChecksumError(ValueError):
    """A downloaded file's sha256 differs from the pinned one; the file was not kept."""


@functools.lru_cache(maxsize=None)
def _registry():
    """Parse ``registry.txt``: ``<file> sha256:<hash> <url>`` per line.

    md5 is accepted only for the few files with no published sha256.
    """
    text = Path(__file__).with_name("registry.txt").read_text()
    entries = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fname, known_hash, url = line.split()
        if not known_hash.startswith(("sha256:", "md5:")):
            raise ValueError(f"registry.txt: {fname} must be pinned by a hash, got {known_hash!r}")
        entries[fname] = (known_hash, url)
    return entries


def is_registered(filename):
    """Whether ``filename`` can be downloaded (it is pinned in ``registry.txt``)."""
    return filename in _registry()


def remote_url(filename):
    """Official URL of a registered file, or its address on the mirror.

    Setting ``SKFACE_MIRROR`` to a base URL makes every file load from
    ``<mirror>/<filename>`` instead (an institutional mirror, or a local
    test server); the pinned sha256 still applies.
    """
    _, url = _registry()[filename]
    return _mirrored(url, filename)


def _mirrored(url, filename):
    """``url``, or ``<mirror>/<filename>`` when ``SKFACE_MIRROR`` is set."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{filename}"
    return url


def download(filename, folder, *, url=None, known_hash=None, progressbar=False):
    """Download a pinned file into ``folder`` and verify its sha256.

    A file of ``registry.txt`` needs only its name. Any other file (a
    trained model of :mod:`skface.models`) gives its ``url`` and
    ``known_hash``; it then takes the same path: the ``SKFACE_MIRROR``
    override (``<mirror>/<filename>``), the checksum, no corrupt file left
    behind.

    Parameters
    ----------
    filename : str
        A file name listed in ``registry.txt``, or the name to save the file
        under when ``url`` is given.
    folder : path-like
        Destination folder (created if needed).
    url : str, default=None
        Where to download a file that is not in ``registry.txt``; needs
        ``known_hash``.
    known_hash : str, default=None
        ``"sha256:<64 hex digits>"`` pinning the file at ``url``.
    progressbar : bool, default=False
        Show a tqdm progress bar.

    Returns
    -------
    path : pathlib.Path
        The verified file.

    Raises
    ------
    ChecksumError
        If the download's sha256 differs from the pinned one. The bad file
        is deleted, never left in ``folder``.
    ValueError
        If only one of ``url`` and ``known_hash`` is given, or the hash is
        not a sha256 pin.
    """
    import pooch  # deferred: `import skface` must not pull pooch

    if url is None and known_hash is None:
        known_hash, _ = _registry()[filename]
        url = remote_url(filename)
    elif url is None or known_hash is None:
        raise ValueError(
            f"download({filename!r}): give both url and known_hash for a file that is "
            "not in registry.txt, or neither for one that is."
        )
    else:
        # Only registry.txt may fall back on md5 (files with no published sha256).
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", known_hash):
            raise ValueError(
                f"download({filename!r}): known_hash must be 'sha256:' and 64 lowercase "
                f"hex digits, got {known_hash!r}."
            )
        url = _mirrored(url, filename)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = pooch.retrieve(
            url, known_hash=known_hash, fname=filename, path=folder, progressbar=progressbar
        )
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        # pooch downloads to a temporary file and only moves it in place once
        # the hash matches, so nothing corrupt is left behind.
        (folder / filename).unlink(missing_ok=True)
        raise ChecksumError(
            f"The download of {filename} from {url} does not match its pinned "
            f"checksum {known_hash}; the file was deleted. The server may hold a "
            f"different or truncated file: try again later, or unset {MIRROR_ENV} "
            f"if it points to a mirror. ({exc})"
        ) from None
    return Path(path)


def _check_inside(dest, name, archive):
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise ValueError(
            f"Refusing to extract {archive}: member {name!r} would be written "
            f"outside {dest}. The archive is unsafe or corrupt."
        )


def safe_extract(archive, folder):
    """Extract a tar (any compression) or zip archive, refusing escaping members.

    Members with absolute paths, ``..`` components, or links pointing
    outside ``folder`` raise ``ValueError`` before anything is written.
    """
    archive = Path(archive)
    dest = Path(folder).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_inside(dest, name, archive)
            zf.extractall(dest)
        return dest
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for member in members:
            _check_inside(dest, member.name, archive)
            if member.issym() or member.islnk():
                link = member.linkname
                base = (dest / member.name).parent if member.issym() else dest
                _check_inside(dest, os.path.relpath(base / link, dest), archive)
            elif not (member.isfile() or member.isdir()):
                raise ValueError(
                    f"Refusing to extract {archive}: member {member.name!r} is a "
                    "device or fifo, which a dataset archive never contains."
                )
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # Python < 3.11.4; members were checked above
            tf.extractall(dest, members=members)
    return dest


def ensure_files(folder, needed, *, remote=(), download_if_missing=True, dataset, manual_url=None):
    """Make sure the files a fetcher needs are in ``folder``, downloading if allowed.

    Parameters
    ----------
    folder : pathlib.Path
        Dataset folder inside the data home.
    needed : sequence of str
        Paths relative to ``folder`` that the fetcher reads.
    remote : sequence of str, default=()
        Registered files (``registry.txt`` names) that provide ``needed``;
        archives (``.tgz``, ``.tar``, ``.zip``...) are extracted into
        ``folder`` and then deleted.
    download_if_missing : bool, default=True
        If False, absent files raise instead of downloading.
    dataset : str
        Human name used in messages.
    manual_url : str, default=None
        Where to get the files by hand when they cannot be downloaded
        automatically (a login is required, say).

    Raises
    ------
    FileNotFoundError
        Files are missing and cannot (or may not) be downloaded; the message
        names the folder, the missing files and where to get them.
    """
    folder = Path(folder)
    missing = [rel for rel in needed if not (folder / rel).exists()]
    if not missing:
        return folder
    sources = [
        f"{f} from {remote_url(f)}" + (", extracted" if _is_archive(f) else "") for f in remote
    ]
    where = "; ".join(sources) or manual_url or "the dataset's official site"
    if not download_if_missing or not remote:
        reason = (
            "download_if_missing=False"
            if remote
            else "this dataset cannot be downloaded automatically"
        )
        raise FileNotFoundError(
            f"{dataset}: missing {', '.join(missing)} in {folder} ({reason}). "
            f"Put them there ({where}), or point data_home / the "
            f"SKFACE_DATA environment variable at a folder that has them."
        )
    for fname in remote:
        path = download(fname, folder)
        if _is_archive(fname):
            safe_extract(path, folder)
            path.unlink()
    still = [rel for rel in needed if not (folder / rel).exists()]
    if still:
        raise FileNotFoundError(
            f"{dataset}: downloaded {', '.join(remote)} but {', '.join(still)} is still "
            f"missing in {folder}; the archive layout is not the expected one."
        )
    return folder


def _is_archive(fname):
    return fname.endswith((".tgz", ".tar.gz", ".tar", ".zip", ".tar.bz2", ".tar.xz"))
