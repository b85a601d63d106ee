"""What every example shares: the common options, the results tables, the figure files.

Not an example itself (``tests/test_examples.py`` skips files starting with
``_``). The examples run as ``python examples/<name>.py``, which puts
``examples/`` on ``sys.path`` whatever the working directory, so they
import this module as ``from _common import ...``. Importing it is cheap:
torch and matplotlib are only imported when a figure is made, so ``--help``
needs neither.
"""

import argparse
import os
from pathlib import Path


def env_flag(name):
    """Whether the environment variable ``name`` is set to something other than 0/false/no/off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def parse_args(doc, argv=None, *, out_aliases=()):
    """The options every example takes: ``--quick``, ``--data-home`` and ``--out``.

    ``doc`` (the example's module docstring) is the ``--help`` text;
    ``out_aliases`` are other names of ``--out`` (such as ``"--out-dir"``).
    """
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", default=env_flag("SKFACE_EXAMPLES_QUICK"),
                        help="reduced settings for CI (also: SKFACE_EXAMPLES_QUICK=1)")
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA"),
                        help="skface data home (default: $SKFACE_DATA, else ~/skface_data)")
    parser.add_argument("--out", *out_aliases, dest="out", default="skface_examples_out",
                        help="folder for the figures")
    return parser.parse_args(argv)


def table_row(*cells):
    """One row of a Markdown table; an empty cell prints as ``| |``."""
    return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"


def print_table_header(*columns):
    """Print the header of a Markdown results table: the column names, then ``|---|...``."""
    print(table_row(*columns))
    print("|" + "---|" * len(columns))


def print_row(*cells, flush=False):
    """Print one row of a results table (``flush=True`` for rows that come slowly)."""
    print(table_row(*cells), flush=flush)


def pyplot():
    """``matplotlib.pyplot``, drawing to files only (Agg) unless ``$MPLBACKEND`` says otherwise."""
    import matplotlib

    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out, name):
    """Save ``fig`` as ``out/name`` at 100 dpi (making the folder ``out``) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return out / name


def print_written(out, names):
    """Print the figure files written to ``out``: ``wrote out/a.png and out/b.png``."""
    print("\nwrote " + " and ".join(str(Path(out) / name) for name in names))
