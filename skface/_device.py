"""Device policy: which device a ``device`` parameter means, autocast, and seeding on it."""

import contextlib

import torch

__all__ = ["autocast", "on_cuda", "resolve_device", "seeded"]


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

    Training runs under it by default; inference only when the estimator
    asks (its outputs then carry about 3 significant digits).
    """
    if enabled and on_cuda(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
