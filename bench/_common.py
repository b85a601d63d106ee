"""What every benchmark shares: the JSON row, the device's name, the default data home."""

import json
import os
import platform
from pathlib import Path


def device_name(device):
    """A readable name of the torch device, with the CPU's thread count."""
    import torch

    if str(device).startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(0)})"
    proc = platform.processor() or platform.machine()
    return f"cpu ({proc}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def default_data_home():
    """``$SKFACE_DATA``, else the shared data beside the checkout (``../shared/data``)."""
    return os.environ.get("SKFACE_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data"
    )


def emit(bench, what, value, unit, *, device, baseline=None, config=None, out=None, **extra):
    """Print one benchmark row as JSON (and append it to ``out``); return the row.

    ``ratio`` is ``value / baseline`` where the baseline was measured in the
    same run; ``device`` is a torch device (named here) or a ready name.
    """
    ratio = None
    if value is not None and baseline not in (None, 0):
        ratio = round(value / baseline, 3)
    row = {
        "bench": bench,
        "what": what,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "device": device if " " in str(device) else device_name(device),
        "config": config or {},
        **extra,
    }
    line = json.dumps(row)
    print(line, flush=True)
    if out is not None:
        with open(out, "a") as f:
            f.write(line + "\n")
    return row
