"""Warnings that point at the user's line: the first frame outside skface and its frameworks."""

import importlib.util
import os
import sys
import warnings

__all__ = ["warn_at_caller", "warn_once"]

_SKFACE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Libraries that call skface on the user's behalf: scikit-learn's pipelines and
# set_output wrappers (which wrap every transform), the joblib Memory through which
# Pipeline.fit calls each step but the last, skorch's fit loop. A warning raised
# under them belongs to the user's line that called them.
_FRAMEWORKS = ("sklearn", "skorch", "joblib")
_framework_dirs = None
# Messages already shown by warn_once in this process.
_shown = set()


def _internal_dirs():
    """skface's folder and the frameworks' folders (found without importing them)."""
    global _framework_dirs
    if _framework_dirs is None:
        found = []
        for name in _FRAMEWORKS:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            for location in (spec.submodule_search_locations or []) if spec else []:
                found.append(os.path.abspath(location) + os.sep)
        _framework_dirs = tuple(found)
    return (_SKFACE_DIR, *_framework_dirs)


def warn_at_caller(message, category=UserWarning, *, internal=()):
    """``warnings.warn`` attributed to the first caller outside skface.

    However many skface frames (registries, fetchers, fit wrappers) lie
    between the call that caused the warning and this function, the warning
    names the user's line. Frames of scikit-learn and skorch are skipped too:
    ``Pipeline.fit`` or a ``set_output`` wrapper calling skface on the user's
    behalf is not where the user should look.

    Parameters
    ----------
    message : str
    category : type, default=UserWarning
    internal : tuple of str, default=()
        Further folders (ending in ``os.sep``) whose frames are skipped too.
    """
    folders = (*_internal_dirs(), *internal)
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(folders):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def warn_once(key, message, category=UserWarning):
    """:func:`warn_at_caller`, but once per ``key`` in this process.

    For a fact about the user's files that does not change from call to call
    (UTKFace's malformed file names, whatever the image size asked for):
    Python's own once-per-line filter forgets what it showed whenever any
    code changes the warning filters, which libraries do all the time.

    Parameters
    ----------
    key : hashable
        What the warning is about, e.g. ``("utkface-skipped", folder)``.
    message : str
    category : type, default=UserWarning

    Returns
    -------
    shown : bool
        Whether the warning was given (False when ``key`` was seen before).
    """
    if key in _shown:
        return False
    _shown.add(key)
    warn_at_caller(message, category)
    return True
