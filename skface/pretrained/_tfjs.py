"""TensorFlow.js weight files (a JSON manifest and its .bin shards) read into float32 numpy arrays."""

import json

import numpy as np

__all__ = ["decode_weights", "read_weights"]

# The dtypes a tfjs manifest may give a tensor, and those of its quantised bytes.
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTISED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def decode_weights(manifest, shards, *, where="weights"):
    """The tensors of a tfjs weights manifest, dequantised, by name.

    Parameters
    ----------
    manifest : list of dict
        The parsed ``*-weights_manifest.json``: groups of ``{"paths": [...],
        "weights": [{"name", "shape", "dtype", "quantization"?}, ...]}``.
    shards : dict of str to bytes
        The content of each file the groups' ``paths`` name.
    where : str
        What to call the weights in error messages.

    Returns
    -------
    tensors : dict of str to ndarray
        Each tensor in its manifest shape (TensorFlow layouts: conv filters
        (kh, kw, in, out), depthwise filters (kh, kw, in, multiplier)), as
        float32 when its dtype is float32. A quantised tensor is
        ``q * scale + min`` (uint8/uint16) or its float16 value, as
        TensorFlow.js computes it.

    Raises
    ------
    ValueError
        If a shard is missing, the bytes do not cover the tensors the
        manifest lists exactly, or a dtype is unknown.
    """
    if not isinstance(manifest, list):
        raise ValueError(f"{where}: the manifest is not a list of weight groups.")
    tensors = {}
    for group in manifest:
        try:
            blob = b"".join(shards[p] for p in group["paths"])
        except KeyError as exc:
            raise ValueError(f"{where}: the manifest names {exc.args[0]!r}, which is missing.") from None
        offset = 0
        for entry in group["weights"]:
            name, shape, dtype = entry["name"], tuple(entry["shape"]), entry["dtype"]
            if dtype not in _DTYPES:
                raise ValueError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}.")
            quant = entry.get("quantization")
            stored = _QUANTISED.get(quant["dtype"]) if quant else _DTYPES[dtype]
            if stored is None:
                raise ValueError(f"{where}: tensor {name!r} has unknown quantisation {quant!r}.")
            count = int(np.prod(shape, dtype=np.int64))
            size = count * np.dtype(stored).itemsize
            if offset + size > len(blob):
                raise ValueError(f"{where}: the data ends inside tensor {name!r}; the files are "
                                 "truncated or do not belong to this manifest.")
            values = np.frombuffer(blob, dtype=np.dtype(stored).newbyteorder("<"), count=count,
                                   offset=offset)
            offset += size
            if quant and quant["dtype"] in ("uint8", "uint16"):
                # In float64, rounded once to float32: what TensorFlow.js computes.
                values = values.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
            values = values.astype(_DTYPES[dtype], copy=True).reshape(shape)
            if name in tensors:
                raise ValueError(f"{where}: tensor {name!r} is listed twice.")
            tensors[name] = values
        if offset != len(blob):
            raise ValueError(f"{where}: {len(blob) - offset} bytes are left after the last tensor; "
                             "the files do not belong to this manifest.")
    return tensors


def read_weights(folder, model):
    """The tensors of ``<folder>/<model>-weights_manifest.json`` and its shards.

    Parameters
    ----------
    folder : pathlib.Path
    model : str
        The file stem, e.g. ``"face_recognition_model"``.

    Returns
    -------
    tensors : dict of str to ndarray
        See :func:`decode_weights`.
    """
    manifest = json.loads((folder / f"{model}-weights_manifest.json").read_text())
    paths = [p for group in manifest for p in group["paths"]]
    return decode_weights(manifest, {p: (folder / p).read_bytes() for p in paths}, where=model)
