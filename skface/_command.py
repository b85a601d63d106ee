"""How every ``skface`` command runs: one-line errors, exit statuses, ``--traceback``.

Below both :mod:`skface.cli` and :mod:`skface.train` (``python -m skface.train``
reports errors as ``skface train`` does), and imports nothing of skface.
"""

import os
import sys
import tarfile
import zipfile

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_STAGES_FAILED", "EXIT_UNEXPECTED_EXIT",
           "TRACEBACK_ENV", "error_message", "expected_errors", "run_command",
           "traceback_wanted"]

#: Exit status of a command stopped by a failure the user can fix.
EXIT_ERROR = 2
#: Exit status of ``skface demo`` when some stages failed (the report shows why).
EXIT_STAGES_FAILED = 1
#: Exit status of a command stopped by a SystemExit raised inside it (not a success).
EXIT_UNEXPECTED_EXIT = 1
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

TRACEBACK_ENV = "SKFACE_TRACEBACK"

# Failures of the world, not of skface: files and folders (OSError, which includes
# PermissionError and the network errors of requests and urllib), bad names and values
# (ValueError, which includes ChecksumError and ModelFormatError; KeyError), and
# truncated or damaged files (EOFError, StopIteration from a reader that found nothing,
# the archive modules' own errors). Everything else (TypeError, AttributeError...) is a
# bug, whose traceback is what a report needs.
_EXPECTED = (OSError, ValueError, KeyError, EOFError, StopIteration, tarfile.TarError,
             zipfile.BadZipFile)
# Exceptions whose message is written to be read as it is; others get their type
# prepended ("ConnectionError: ..."), since the message alone is often cryptic.
_SELF_EXPLAINED = (ValueError, KeyError, FileNotFoundError, FileExistsError, PermissionError,
                   NotADirectoryError, IsADirectoryError)


def expected_errors():
    """The exception classes a command reports in one line rather than a traceback.

    Returns
    -------
    classes : tuple of type
        OSError (and so PermissionError, network errors and
        ``skface.datasets.DownloadError``, an OSError), ValueError,
        KeyError, EOFError, StopIteration, the tar and zip errors.
    """
    return _EXPECTED


def error_message(exc):
    """One line saying what went wrong, from an exception.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    message : str
        The exception's message on one line; prefixed by its type unless
        it is skface's own or a ValueError, KeyError or file error whose
        message names the file. A message-less exception gives its type.
    """
    args = getattr(exc, "args", ())
    # KeyError's str() is the repr of its key; its message is the key as written.
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else str(exc)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    kind = type(exc)
    if not text:
        # Raised bare by readers (next() on an empty file): say what it means.
        return {
            StopIteration: "a file ended before the data it should hold (StopIteration): one "
                           "is empty or truncated; run again with --traceback to see which",
            EOFError: "a file ended early (EOFError): one is truncated or damaged; run again "
                      "with --traceback to see which",
        }.get(kind, kind.__name__)
    if kind.__module__.split(".")[0] == "skface" or kind in _SELF_EXPLAINED:
        return text
    return f"{kind.__name__}: {text}"


def traceback_wanted(args):
    """Whether ``args.traceback`` or ``$SKFACE_TRACEBACK`` asks for full traces."""
    flag = getattr(args, "traceback", False)
    env = os.environ.get(TRACEBACK_ENV, "").strip().lower()
    return bool(flag) or env not in ("", "0", "false", "no", "off")


def run_command(func, args, prog):
    """Run one command; report expected failures in one line and return its exit status.

    Parameters
    ----------
    func : callable
        The command, called as ``func(args)``; returns the exit status.
    args : argparse.Namespace
        Its parsed arguments; ``args.traceback`` (or ``$SKFACE_TRACEBACK``)
        prints the full trace of an expected failure before its line.
    prog : str
        The command's name in messages, e.g. ``"skface fetch"``.

    Returns
    -------
    status : int
        The command's own status; :data:`EXIT_ERROR` (2) after an expected
        failure, :data:`EXIT_INTERRUPTED` (130) after Ctrl-C,
        :data:`EXIT_UNEXPECTED_EXIT` (1) after a ``SystemExit`` from
        inside the command. Other exceptions propagate with their
        traceback: they are bugs.
    """
    import traceback
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        # A library warning inside a command is one line in the command's name, not
        # Python's "<venv>/bin/skface:8: UserWarning: ..." with a source line.
        print(f"{prog}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return func(args)
    except SystemExit as exc:
        # No command exits by itself: a SystemExit raised inside one comes from code
        # it ran (a plugin; once, a hostile model file naming sys.exit), and must never
        # read as success, whatever its code.
        if traceback_wanted(args):
            traceback.print_exc()
        print(f"{prog}: error: stopped by an unexpected SystemExit({exc.code!r}) raised by "
              "code it ran; the command did not finish (run again with --traceback to see "
              "where)", file=sys.stderr)
        return EXIT_UNEXPECTED_EXIT
    except KeyboardInterrupt:
        # Ctrl-C is the user's choice, not a failure: no trace unless asked for.
        if traceback_wanted(args):
            traceback.print_exc()
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected_errors() as exc:
        if traceback_wanted(args):
            traceback.print_exc()
        print(f"{prog}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


def human_size(nbytes):
    """``nbytes`` as people read it: "512 B", "2.0 KB", "380.4 MB", "1.1 GB" (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def _images(shape):
    """ "32x32 RGB images" from a fitted ``image_shape_`` (height, width, channels)."""
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(n, int) for n in shape)):
        return f"image_shape_ {shape}"
    height, width, channels = shape
    kind = {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")
    return f"{height}x{width} {kind} images (image_shape_ {height}, {width}, {channels})"


def describe_lines(description):
    """What ``skface info`` prints of :func:`skface._persist.describe`'s dict, line by line.

    Parameters
    ----------
    description : dict
        As returned by ``describe(path)``.

    Returns
    -------
    lines : list of str
        The file and its size, the class, the input it takes, the weights'
        count, the training notes and the versions; one ``key  value`` per
        line.
    """
    d = description
    module, _, name = str(d["class"]).rpartition(":")
    inputs = dict(d.get("input") or {})
    shape = inputs.pop("image_shape_", None)
    if shape is not None:
        takes = _images(shape)
    elif d.get("fitted"):
        takes = "not recorded (no image_shape_)"
    else:
        takes = "not fitted: set by its first fit"
    if inputs:
        takes += "; " + ", ".join(f"{key}={value}" for key, value in inputs.items())
    notes = d.get("info") or {}
    lines = [
        ("file", f"{d['file']} ({human_size(d['bytes'])})"),
        ("class", f"{name} ({module}){', fitted' if d.get('fitted') else ', not fitted'}"),
        ("input", takes),
        ("weights", f"{d['n_tensors']} tensors, {d['n_values']:,} values"),
    ]
    if notes:
        lines += [("trained" if i == 0 else "", f"{key}: {value}")
                  for i, (key, value) in enumerate(notes.items())]
    else:
        lines.append(("trained", "no notes in the file (saved without info=)"))
    lines.append(("versions", f"skface {d.get('skface_version')}, torch "
                              f"{d.get('torch_version')}, model format {d.get('format_version')}"))
    return [f"{key:<9} {value}".rstrip() for key, value in lines]
