"""Warnings that point at the user's line: the first frame outside skface."""

import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_SKFACE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message, category=UserWarning, *, internal=()):
    """``warnings.warn`` attributed to the first caller outside skface.

    However many skface frames (registries, fetchers, fit wrappers) lie
    between the call that caused the warning and this function, the warning
    names the user's line.

    Parameters
    ----------
    message : str
    category : type, default=UserWarning
    internal : tuple of str, default=()
        Further folders (ending in ``os.sep``) whose frames are skipped too,
        e.g. scikit-learn's, whose pipelines and ``set_output`` wrappers call
        skface on the user's behalf.
    """
    folders = (_SKFACE_DIR, *internal)
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(folders):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
