"""Device policy: which device a ``device`` parameter means, autocast, and seeding on it."""

import contextlib
import contextvars

import torch

__all__ = ["autocast", "bf16_inference", "inference_autocast", "on_cuda", "resolve_device",
           "seeded"]


def resolve_device(device):
    """The torch device string for a ``device`` parameter ("auto" picks CUDA when present)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or another torch device, got {device!r}."
        ) from exc


def on_cuda(device):
    """Whether ``device`` (a string, ``torch.device`` or tensor device) is a CUDA device."""
    return torch.device(device).type == "cuda"


def cuda_index(device):
    """The CUDA device index ``device`` means: its own, else the current device's."""
    index = torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def autocast(device, enabled=True):
    """bf16 autocast on CUDA when ``enabled``, where it speeds up matmuls; a no-op elsewhere.

    Training runs under it; inference only inside :func:`bf16_inference`
    (its outputs then carry about 3 significant digits).
    """
    if enabled and on_cuda(device):
        # The device's own type ("cuda"), so that tests can stand CPU autocast in.
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Whether inference (transform, predict, score...) runs under bf16 autocast: a
# context variable, so that a block's choice holds in its own thread (or task)
# and never leaks into another's.
_BF16_INFERENCE = contextvars.ContextVar("skface_bf16_inference", default=False)


@contextlib.contextmanager
def bf16_inference(enabled=True):
    """Run skface inference on CUDA under bfloat16 autocast inside the block.

    Training always runs under bfloat16 autocast on CUDA; inference
    (``transform``, ``predict``, ``predict_proba``, ``score`` and the passes
    over the training set a fit makes to scale its features) runs in
    float32 unless inside this block. bfloat16 keeps about 3 significant
    digits per operation, so features differ from float32's in their
    third digit (``bench/device_check.sh`` measures the difference per
    estimator), for faster convolutions and matrix products on GPUs with
    bfloat16 units. On the CPU it changes nothing.

    A setting of the running code, not of a model: it is not saved with
    an estimator, not a parameter, and holds in the calling thread (or
    asyncio task) only, until the block ends.

    Parameters
    ----------
    enabled : bool, default=True
        False runs inference in float32 inside the block (e.g. to turn it
        off within an outer block).

    Examples
    --------
    >>> import skface
    >>> with skface.bf16_inference():  # doctest: +SKIP
    ...     codes = encoder.transform(faces)
    """
    token = _BF16_INFERENCE.set(bool(enabled))
    try:
        yield
    finally:
        _BF16_INFERENCE.reset(token)


def inference_autocast(device):
    """:func:`autocast` for inference: on only inside :func:`bf16_inference`."""
    return autocast(device, enabled=_BF16_INFERENCE.get())


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch's global RNG for the block and restore the caller's state after it.

    On CUDA the RNG forked is that of the device the work runs on (a local
    rank's own device in data-parallel training), not device 0's.
    """
    devices = [cuda_index(device)] if on_cuda(device) else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
