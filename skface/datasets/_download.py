"""Downloads: every remote file pinned by sha256 in ``registry.txt``, one path through pooch."""

import errno
import ftplib
import functools
import os
import re
import shutil
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from .._atomic import WriteError, atomic_path

MIRROR_ENV = "SKFACE_MIRROR"
# Errors of a full disk, a quota or a file-size limit (ulimit -f), not of the network.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_MIRROR_SCHEMES = ("http", "https", "ftp")


class ChecksumError(ValueError):
    """A downloaded file's sha256 differs from the pinned one; the file was not kept."""


class DownloadError(OSError):
    """A file could not be downloaded (network, server or disk failure); no partial file was kept.

    The message names the URL, the file, the destination folder and the
    ``SKFACE_MIRROR`` setting, and says what to do. The original error
    (``requests.ConnectionError``, ``HTTPError``...) is its ``__cause__``.
    """


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


def _mirror():
    """The ``SKFACE_MIRROR`` base URL, None when unset; a value that is no URL raises."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    parts = urlsplit(mirror)
    if parts.scheme.lower() not in _MIRROR_SCHEMES or not parts.netloc:
        raise ValueError(
            f"The {MIRROR_ENV} environment variable is {mirror!r}, which is not a URL: set "
            f"it to the base URL of a mirror, starting with http://, https:// or ftp:// "
            f"(for a local folder, serve it with 'python -m http.server' and use "
            f"http://127.0.0.1:8000), or unset it to download from the official sites."
        )
    return mirror


def _mirrored(url, filename):
    """``url``, or ``<mirror>/<filename>`` when ``SKFACE_MIRROR`` is set."""
    mirror = _mirror()
    if mirror:
        return f"{mirror.rstrip('/')}/{filename}"
    return url


def _mirror_advice():
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return (
            f"{MIRROR_ENV} is set ({mirror!r}), so the file was asked of that mirror: check "
            f"that it is up and holds the file, or unset {MIRROR_ENV} to use the official URL"
        )
    return (
        f"{MIRROR_ENV} is not set, so the official URL was used: set {MIRROR_ENV} to the "
        "base URL of a mirror that holds the file if that site is down"
    )


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
    DownloadError
        If the server cannot be reached, answers with an error, or the
        transfer breaks off, or ``folder`` cannot be written. Nothing
        partial is left in ``folder``.
    ValueError
        If only one of ``url`` and ``known_hash`` is given, the hash is not
        a sha256 pin, or ``SKFACE_MIRROR`` is set to something that is not
        an http, https or ftp URL.
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
    created = _missing_dirs(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise DownloadError(
            f"Cannot download {filename} from {url}: its folder {folder} cannot be created "
            f"({type(exc).__name__}: {exc}). Point data_home or the SKFACE_DATA environment "
            "variable at a writable folder, or put the file there by hand."
        ) from exc
    try:
        return _retrieve(pooch, url, known_hash, filename, folder, progressbar)
    except BaseException:
        # A failed or refused download leaves no folder behind that it created.
        _remove_empty(created)
        raise


def _missing_dirs(folder):
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders):
    """Remove the folders skface created, deepest first, where they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was put there meanwhile), or gone
            return


class _Unfetched(Exception):
    """Carries a network or server error out of :func:`atomic_path`, which reports every
    OSError inside it (requests' errors are OSErrors) as a failed write."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _hash_matches(pooch, path, known_hash):
    alg, _, digest = known_hash.partition(":")
    return pooch.file_hash(str(path), alg=alg) == digest.lower()


def _retrieve(pooch, url, known_hash, filename, folder, progressbar):
    """Download ``url`` to ``folder / filename`` whole (atomic_path) and verify it.

    A file already there with the pinned hash is kept as it is. A symbolic
    link at the destination is kept: its target is replaced.
    """
    from pooch.downloaders import choose_downloader

    target = folder / filename
    if target.is_file() and _hash_matches(pooch, target, known_hash):
        return target
    try:
        with atomic_path(target, what=f"download of {filename}") as tmp:
            try:
                choose_downloader(url, progressbar=progressbar)(url, str(tmp), None)
            except (OSError, EOFError, ftplib.Error) as exc:
                if getattr(exc, "errno", None) in _NO_ROOM:
                    raise  # the disk, not the network: atomic_path says so
                raise _Unfetched(exc) from exc
            if not _hash_matches(pooch, tmp, known_hash):
                raise ChecksumError(
                    f"The download of {filename} from {url} does not match its pinned "
                    f"checksum {known_hash}; the download was deleted"
                    f"{' (the file already there is unchanged)' if target.exists() else ''}. "
                    f"The server may hold a different or truncated file: try again later, "
                    f"or unset {MIRROR_ENV} if it points to a mirror."
                )
    except _Unfetched as failed:
        # requests' errors (ConnectionError, HTTPError, ChunkedEncodingError,
        # Timeout) are OSErrors; the partial download is removed by atomic_path.
        exc = failed.error
        raise DownloadError(
            f"Could not download {filename} from {url} into {folder} "
            f"({type(exc).__name__}: {exc}). {_mirror_advice()}. Check the network "
            f"connection and try again later, or put {filename} in {folder} by hand "
            f"(its checksum must be {known_hash})."
        ) from exc
    except WriteError as exc:
        raise DownloadError(
            f"Could not download {filename} from {url}: {exc} Free some space there, or "
            "point data_home or the SKFACE_DATA environment variable at another folder."
        ) from exc
    return target


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
    # Archives are unpacked into a hidden folder inside `folder` (the same file
    # system, so moving is a rename) and moved into place only once every needed
    # path is there: a refused or misshapen archive leaves nothing behind.
    staging = None
    created = _missing_dirs(folder)
    try:
        for fname in remote:
            # Announced: a download is never silent (the archives weigh up to 270 GB).
            print(f"skface: downloading {dataset}: {fname} from {remote_url(fname)} into "
                  f"{folder}", file=sys.stderr, flush=True)
            path = download(fname, folder)
            if not _is_archive(fname):
                continue
            if staging is None:
                staging = folder / f".skface-extract-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                safe_extract(path, staging)
            except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
                raise ValueError(
                    f"{dataset}: {fname} cannot be extracted ({type(exc).__name__}: {exc}); "
                    "the archive is damaged. Nothing of it was kept: try again later."
                ) from exc
            finally:
                path.unlink(missing_ok=True)  # a refused archive is not kept either
        still = [
            rel for rel in needed
            if not ((folder / rel).exists() or (staging is not None and (staging / rel).exists()))
        ]
        if still:
            raise FileNotFoundError(
                f"{dataset}: downloaded {', '.join(remote)} but {', '.join(still)} is still "
                f"missing in {folder}; the archive layout is not the expected one, so "
                "nothing of it was kept."
            )
        if staging is not None:
            _move_into(staging, folder)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        # A failed or refused download leaves no folder that it created.
        _remove_empty(created)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _move_into(src, dest):
    """Move the contents of folder ``src`` into ``dest``, merging folders, replacing files."""
    with os.scandir(src) as entries:
        items = list(entries)
    for entry in items:
        target = dest / entry.name
        target_is_dir = target.is_dir() and not target.is_symlink()
        if entry.is_dir(follow_symlinks=False):
            if target_is_dir:
                _move_into(Path(entry.path), target)
                continue
            if target.is_symlink() or target.exists():
                target.unlink()
        elif target_is_dir:
            shutil.rmtree(target)
        os.replace(entry.path, target)


def _is_archive(fname):
    return fname.endswith((".tgz", ".tar.gz", ".tar", ".zip", ".tar.bz2", ".tar.xz"))
