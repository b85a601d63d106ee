"""On-disk cache of decoded arrays, keyed by the parameters and source files that shape them."""

import hashlib
import io
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from .._warnings import warn_at_caller
from ._home import get_cache_home

# Bump when a fetcher's decoding or the entry format changes, so stale caches are
# never served.
# 2: sizes are (height, width) (they were (width, height)). A non-square size
#    tuple keyed under 1 meant the transposed shape, and YouTube's cached
#    original_sizes swapped order too, so no entry written under 1 may be served.
# 3: an entry records every source file it was decoded from (not the top folder's
#    mtime alone) and the sha256 of every member, and both are checked at load.
CACHE_VERSION = 3

MANIFEST = "manifest.json"
SOURCES = "sources.json"
# Label and list files up to this size are recorded by a hash of their bytes
# (an edit that keeps the size and the mtime, a copy with preserved times, is
# still seen); larger ones, such as a CSV of pixels, by their size and times,
# like images, so that a warm load never reads hundreds of megabytes.
SMALL_FILE_BYTES = 64 << 20
# Members up to this size are read into memory; larger ones are mapped.
_MAP_BYTES = 1 << 20
_CHUNK = 1 << 22
# Temporary folders older than this were left by a killed process.
_STALE_TMP_S = 3600


class _Damaged(Exception):
    """A cache entry that must not be served; the message says what is wrong."""


def _sha256_of(path):
    with open(path, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f):
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while n := f.readinto(buffer):
        digest.update(view[:n])
    return digest.hexdigest()


def _walk(folder):
    """Every sub-folder ``(rel, mtime, ctime)`` and file ``(rel, size, mtime, ctime)`` of ``folder``.

    Hidden names (``.DS_Store``, ``._x.jpg``) are left out, as every fetcher
    skips them. ``rel`` is relative to ``folder`` ("" for itself; folders end
    with "/"). ctime as well as mtime: a copy or an extraction that restores
    an old mtime still changes the ctime.
    """
    top = os.stat(folder)
    dirs, files = [["", top.st_mtime_ns, top.st_ctime_ns]], []
    stack = [(os.fspath(folder), "")]
    linked = set()  # folders reached through a link, so that a link cycle ends
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                    st = entry.stat()
                except OSError:  # a dangling link: recorded as a file that is not there
                    files.append([rel + name, -1, 0, 0])
                    continue
                if is_dir:
                    if entry.is_symlink():
                        if (st.st_dev, st.st_ino) in linked:
                            continue
                        linked.add((st.st_dev, st.st_ino))
                    sub = f"{rel}{name}/"
                    dirs.append([sub, st.st_mtime_ns, st.st_ctime_ns])
                    stack.append((entry.path, sub))
                else:
                    files.append([rel + name, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return dirs, files


def _snapshot(paths):
    """What the source folders and files are now, recorded with an entry.

    A folder: each sub-folder's mtime and ctime (a file added, removed or
    renamed in it changes them) and each file's size, mtime and ctime (a file
    overwritten changes them). A file: a sha256 of its bytes, or its size and
    times when it is over ``SMALL_FILE_BYTES``.
    """
    records = []
    for path in paths:
        record = {"path": str(path)}
        try:
            st = path.stat()
        except OSError:
            record["kind"] = "absent"
        else:
            if path.is_dir():
                record["kind"] = "folder"
                record["dirs"], record["files"] = _walk(path)
            elif st.st_size <= SMALL_FILE_BYTES:
                record.update(kind="file", size=st.st_size, sha256=_sha256_of(path))
            else:
                record.update(kind="file", size=st.st_size, times=[st.st_mtime_ns, st.st_ctime_ns])
        records.append(record)
    return records


def _changed(records):
    """What differs between the sources now and ``records``, or None when nothing does.

    One ``stat`` per recorded folder and file, no listing: about 0.06 s for
    LFW's 5,750 folders and 13,233 images.
    """
    stat = os.stat
    for record in records:
        path, kind = record["path"], record["kind"]
        if kind == "absent":
            if os.path.exists(path):
                return f"{path} appeared"
            continue
        try:
            if kind == "file":
                st = stat(path)
                if st.st_size != record["size"]:
                    return f"{path} changed size"
                if "sha256" in record:
                    if _sha256_of(path) != record["sha256"]:
                        return f"{path} changed"
                elif [st.st_mtime_ns, st.st_ctime_ns] != record["times"]:
                    return f"{path} changed"
                continue
            root = path + os.sep
            for rel, mtime, ctime in record["dirs"]:
                st = stat(root + rel)
                if st.st_mtime_ns != mtime or st.st_ctime_ns != ctime:
                    return f"{root + rel} changed (files added, removed or renamed)"
            for rel, size, mtime, ctime in record["files"]:
                if size < 0:  # a dangling link, which no fetcher reads: is it still?
                    if os.path.exists(root + rel):
                        return f"{root + rel} appeared"
                    continue
                st = stat(root + rel)
                if st.st_size != size or st.st_mtime_ns != mtime or st.st_ctime_ns != ctime:
                    return f"{root + rel} changed"
        except OSError:
            return f"a file under {path} is gone"
    return None


def _sources(source):
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    return [Path(s).resolve() for s in source]


def _digest(payload):
    blob = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_key(name, params, source):
    """Entry name of ``name``'s arrays decoded with ``params`` from ``source``.

    A hash of the format version, the dataset, the parameters and the
    resolved source paths. What the source files are is checked against the
    entry's record at load (see :func:`cached_arrays`), so one entry per key
    is kept up to date instead of a new one piling up per change.
    """
    paths = [str(p) for p in _sources(source)]
    return _digest({"v": CACHE_VERSION, "name": name, "params": params, "source": paths})[:20]


def cached_arrays(name, params, source, compute, *, cache_home=None, files_read=None):
    """Return ``compute()``'s dict of arrays, from the cache when it is there.

    An entry is served only if everything that shapes the arrays is as it
    was when they were decoded: ``params`` and the source paths (the key),
    and the source files themselves (recorded in the entry). A folder is
    recorded by the mtime and ctime of each of its sub-folders and the size,
    mtime and ctime of each file below it (hidden files aside), so an image
    added, removed or overwritten is seen; a file of up to 64 MiB (a label
    or list file) by a sha256 of its bytes; a larger one by its size and
    times. A changed source means a new decode, which replaces the entry.

    Each entry also holds the sha256 of every member, written when the entry
    is created and checked at every load: a damaged, incomplete or
    mismatched entry is never served. It is decoded again and rewritten,
    with a ``RuntimeWarning`` that names the dataset and what was wrong.
    Entries are written to a temporary folder and renamed into place, so
    concurrent cold loads never see a half-written entry.

    Parameters
    ----------
    name : str
        Dataset name (a sub-folder of the cache).
    params : dict
        Every parameter that changes the arrays; part of the key.
    source : path-like or sequence of path-like
        The folders and files the arrays are decoded from (see above).
    compute : callable
        Returns a dict of str -> ndarray (no object arrays: the cache is
        loaded without pickle).
    cache_home : path-like, default=None
        See :func:`~skface.datasets.get_cache_home`.
    files_read : callable or None, default=None
        ``files_read(arrays)`` gives the files (relative to the first
        source folder) that the arrays were decoded from. Only those are
        recorded file by file; the other files of the source folders count
        through their folders' times alone (a file added, removed or
        renamed), which is all a selection such as LFW's
        ``min_faces_per_person`` depends on. Fewer checks make warm loads
        faster (1,288 of LFW's 13,233 images for ``min_faces_per_person=70``).
        None records every file.

    Returns
    -------
    arrays : dict of str -> ndarray
        Large arrays are copy-on-write maps of the cache files: writable,
        and changes never reach the cache.
    """
    paths = _sources(source)
    folder = get_cache_home(cache_home) / name / cache_key(name, params, paths)
    if folder.exists():
        try:
            entry = _read_manifest(folder, name)
            # The sources first: a stale entry is replaced without hashing its arrays.
            if _changed(_read_sources(folder, entry)) is None:
                return _load_members(folder, entry)
        except _Damaged as exc:
            # At the user's fetch call, whichever fetcher helper called this.
            warn_at_caller(
                f"skface: the cached {name} arrays in {folder} cannot be used ({exc}); "
                "decoding them again from the source files and rewriting the entry.",
                RuntimeWarning,
            )
        _discard(folder)
    # Recorded before decoding: a file changed meanwhile makes the next load decode again.
    snapshot = _snapshot(paths)
    arrays = compute()
    if files_read is not None and snapshot and snapshot[0].get("kind") == "folder":
        read = {str(f) for f in files_read(arrays)}
        snapshot[0]["files"] = [f for f in snapshot[0]["files"] if f[0] in read]
    try:
        _write(folder, arrays, name, snapshot)
    except OSError as exc:  # a read-only cache must not stop a fetch
        warnings.warn(f"skface could not write its cache at {folder}: {exc}", RuntimeWarning)
    return arrays


def _read_manifest(folder, name):
    """The verified manifest of an entry; raise ``_Damaged`` saying why it cannot be used."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise _Damaged(f"its {MANIFEST} is missing: the entry was never completed") from None
    except (OSError, ValueError) as exc:
        raise _Damaged(f"its {MANIFEST} cannot be read: {exc}") from None
    entry = manifest.get("entry") if isinstance(manifest, dict) else None
    if not isinstance(entry, dict) or manifest.get("sha256") != _digest(entry):
        raise _Damaged(f"its {MANIFEST} was altered (checksum mismatch)")
    if entry.get("version") != CACHE_VERSION or entry.get("name") != name:
        raise _Damaged(
            f"its {MANIFEST} is for {entry.get('name')!r}, format {entry.get('version')!r}"
        )
    return entry


def _read_sources(folder, entry):
    """The record of the source files an entry was decoded from, checked against its sha256."""
    path = folder / SOURCES
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise _Damaged(f"{SOURCES} is missing") from None
    except OSError as exc:
        raise _Damaged(f"{SOURCES} cannot be read: {exc}") from None
    if hashlib.sha256(blob).hexdigest() != entry["sources_sha256"]:
        raise _Damaged(f"{SOURCES} does not match its sha256")
    return json.loads(blob)


def _load_members(folder, entry):
    members = entry["members"]
    return {key: _load_member(folder / f"{key}.npy", meta) for key, meta in members.items()}


def _load_member(path, meta):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != meta["bytes"]:
                raise _Damaged(f"{path.name} has {size} bytes, not the {meta['bytes']} written")
            if size <= _MAP_BYTES:
                blob = f.read()
                digest = hashlib.sha256(blob).hexdigest()
                stream = io.BytesIO(blob)
            else:
                blob, digest, stream = None, _sha256_stream(f), f
                f.seek(0)
            if digest != meta["sha256"]:
                raise _Damaged(f"{path.name} does not match its sha256")
            shape, fortran, dtype = _read_header(stream, path)
            if dtype.str != meta["dtype"] or list(shape) != meta["shape"]:
                raise _Damaged(
                    f"{path.name} holds {dtype.str} {shape}, not the {meta['dtype']} "
                    f"{tuple(meta['shape'])} written"
                )
            order = "F" if fortran else "C"
            if blob is not None:
                count = int(np.prod(shape))
                flat = np.frombuffer(blob, dtype=dtype, count=count, offset=stream.tell())
                return flat.reshape(shape, order=order).copy(order=order)
            # Copy-on-write map of the file whose bytes were just checked:
            # callers get writable arrays whose changes never reach the cache.
            return np.memmap(f, dtype=dtype, mode="c", offset=f.tell(), shape=shape, order=order)
    except FileNotFoundError:
        raise _Damaged(f"{path.name} is missing") from None
    except (OSError, ValueError) as exc:
        raise _Damaged(f"{path.name} cannot be read: {exc}") from None


def _read_header(f, path):
    from numpy.lib import format as npy

    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(f)
    else:
        raise _Damaged(f"{path.name} has .npy format {version}, which skface never writes")
    if dtype.hasobject:
        raise _Damaged(f"{path.name} holds Python objects, which skface never caches")
    return shape, fortran, dtype


def _write(folder, arrays, name, snapshot):
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique per process and call: concurrent writers never share one.
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        members = {}
        for key, value in arrays.items():
            value = np.asarray(value)
            path = tmp / f"{key}.npy"
            np.save(path, value, allow_pickle=False)
            members[key] = {
                "bytes": path.stat().st_size,
                "sha256": _sha256_of(path),
                "dtype": value.dtype.str,
                "shape": list(value.shape),
            }
        sources = json.dumps(snapshot).encode()
        (tmp / SOURCES).write_bytes(sources)
        entry = {
            "version": CACHE_VERSION,
            "name": name,
            "members": members,
            "sources_sha256": hashlib.sha256(sources).hexdigest(),
        }
        # Written last: an entry without it was interrupted, and is rebuilt.
        (tmp / MANIFEST).write_text(json.dumps({"entry": entry, "sha256": _digest(entry)}))
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process completed the same entry first: keep theirs. Its
            # sources and checksums are checked at load like any other's.
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(folder.parent)


def _discard(folder):
    """Remove an entry: renamed aside first, so that no reader sees it half deleted."""
    trash = folder.with_name(f".{folder.name}.trash-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, trash)
    except OSError:  # gone already (another process discarded it)
        return
    shutil.rmtree(trash, ignore_errors=True)


def _prune(parent):
    """Remove the temporary folders that killed processes left in ``parent``."""
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") and (".tmp-" in entry.name or ".trash-" in entry.name):
            try:
                old = now - entry.stat(follow_symlinks=False).st_mtime > _STALE_TMP_S
            except OSError:
                continue
            if old:
                shutil.rmtree(entry.path, ignore_errors=True)
