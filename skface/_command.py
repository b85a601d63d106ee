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

    try:
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
