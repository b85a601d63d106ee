"""One way to write a file: whole or not at all, under a per-process temporary name."""

import contextlib
import errno
import os
import uuid
from pathlib import Path

__all__ = ["WriteError", "atomic_path"]

# Errors that mean "no room": a full disk, a quota, or a file-size limit (ulimit -f).
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class WriteError(OSError):
    """A file could not be written; whatever was at its path before is unchanged."""

    def __str__(self):  # the message alone, without OSError's "[Errno N]" prefix
        return self.strerror or super().__str__()


def _no_room(exc):
    if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
        return True
    # torch.save and safetensors report a failed write without an errno.
    text = str(exc).lower()
    return any(s in text for s in ("no space left", "file too large", "disk quota"))


@contextlib.contextmanager
def atomic_path(path, *, what="file"):
    """A temporary path beside ``path`` to write to, renamed onto ``path`` when complete.

    The temporary name is per process and per call (two writers, say two
    ranks or two threads, never share one); the file is flushed to disk
    (fsync) before the rename, so a crash leaves the old file or the new
    one, never part of it; and the temporary file is removed in every case
    where the block does not complete: an error, a full disk, Ctrl-C.

    Parameters
    ----------
    path : path-like
        The destination. It may exist; it is replaced only once the new
        file is complete. A symbolic link is followed: its target is
        replaced and the link kept.
    what : str, default="file"
        What is written, for the error message ("model file", "checkpoint").

    Yields
    ------
    tmp : pathlib.Path
        Write the whole file here (any writer that takes a path).

    Raises
    ------
    WriteError
        When the write fails for lack of room or another ``OSError``: one
        line naming ``path`` and the reason, and saying the previous file is
        unchanged. Other exceptions (``KeyboardInterrupt``) pass through
        unchanged, after the cleanup.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except Exception as exc:
            if isinstance(exc, WriteError):
                raise
            if not (isinstance(exc, OSError) or _no_room(exc)):
                raise
            reason = "the disk is full (or a file-size limit was reached)" if _no_room(exc) \
                else (exc.strerror or str(exc))
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise WriteError(
                getattr(exc, "errno", None) or errno.EIO,
                f"Could not write the {what} {path}: {reason}; {kept}.",
            ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
