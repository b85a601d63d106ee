"""The face-api parity fixtures: small arrays kept as JSON text (dtype, shape, values), read back exactly."""

import json

import numpy as np


def save_fixture(path, **arrays):
    """Write ``arrays`` to ``path`` as JSON; float32 values survive the round trip exactly."""
    out = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        out[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.ravel().tolist()}
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")


def load_fixture(path):
    """The arrays ``save_fixture`` wrote, by name, with their dtype and shape."""
    raw = json.loads(path.read_text())
    return {name: np.asarray(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
            for name, v in raw.items()}
