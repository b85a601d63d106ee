"""Interrupts and checkpoints: Ctrl-C stops a whole fit, and a fit resumes from its checkpoint."""

import contextlib
import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

from ..parallel._distributed import is_main_process

__all__ = ["CheckpointReader", "CheckpointWriter", "StageCheckpoints", "sigint_guard"]


@contextlib.contextmanager
def sigint_guard(net):
    """Tell a user's Ctrl-C from skorch's own ``KeyboardInterrupt``.

    skorch's ``partial_fit`` swallows ``KeyboardInterrupt``, because its
    ``EarlyStopping`` raises one to end training. A real SIGINT during the
    block sets ``net.interrupted_`` before raising it, so the caller can
    raise it again once skorch has closed the fit. Outside the main thread
    (joblib or Dask workers) signals cannot be caught and nothing changes.
    """
    net.interrupted_ = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        net.interrupted_ = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main interpreter thread after all
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _rng_states(net):
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.device(net.device).type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(torch.device(net.device))
    for name in ("shuffle_generator_", "generator_"):
        generator = getattr(net, name, None)
        if generator is not None:
            states[name] = generator.get_state()
    return states


def _set_rng_states(net, states):
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"], torch.device(net.device))
    for name in ("shuffle_generator_", "generator_"):
        generator = getattr(net, name, None)
        if generator is not None and name in states:
            generator.set_state(states[name])


def _callback_states(net):
    """States of the callbacks whose state shapes training (learning-rate schedules)."""
    states = {}
    for name, callback in getattr(net, "callbacks_", ()):
        scheduler = getattr(callback, "lr_scheduler_", None)
        if scheduler is not None:
            states[name] = {"scheduler": scheduler.state_dict(),
                            "batch_idx": int(getattr(callback, "batch_idx_", 0))}
    return states


def _set_callback_states(net, states):
    callbacks = dict(getattr(net, "callbacks_", ()))
    for name, state in states.items():
        callback = callbacks.get(name)
        if callback is not None and getattr(callback, "lr_scheduler_", None) is not None:
            callback.lr_scheduler_.load_state_dict(state["scheduler"])
            callback.batch_idx_ = state["batch_idx"]


def net_state(net, *, done):
    """Everything a stage needs to go on exactly where it stopped, as plain data."""
    state = {
        "done": bool(done),
        "epochs": len(net.history),
        "history": json.loads(json.dumps(list(net.history), default=float)),
        "module": net.module_.state_dict(),
        "criterion": net.criterion_.state_dict(),
        "optimizer": net.optimizer_.state_dict(),
        "rng": _rng_states(net),
        "callbacks": _callback_states(net),
    }
    chain = getattr(net, "chain_", None)  # a persistent-CD chain (DBN)
    if isinstance(chain, torch.Tensor):
        state["chain"] = chain
    return state


def _write_whole(path, write):
    """``write(partial)`` beside ``path``, then renamed onto it.

    An interrupt mid-write never leaves a truncated file where a good one
    was, and a reader (another rank) sees the old file or the new one,
    never part of it; the partial name is per process.
    """
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    write(partial)
    os.replace(partial, path)


def _save(state, path):
    _write_whole(path, lambda partial: torch.save(state, partial))


class StageCheckpoints:
    """The checkpoint folder of one estimator's fit: a manifest and a file per stage.

    Parameters
    ----------
    folder : path-like
    fingerprint : str
        Hash of the estimator's class, parameters and training data: a
        folder written by another fit is refused, never resumed from.
    """

    def __init__(self, folder, fingerprint):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "manifest.json"
        if manifest.exists():
            try:
                written = json.loads(manifest.read_text()).get("fingerprint")
            except (json.JSONDecodeError, OSError, AttributeError):
                written = None
            if written != fingerprint:
                raise ValueError(
                    f"The checkpoint folder {self.folder} holds a fit of other data or "
                    "other parameters; resuming from it would mix two models. Delete it, "
                    "or pass another checkpoint folder."
                )
        elif is_main_process():
            # Written whole: in data-parallel training the other ranks read it at the
            # same moment, and a half-written manifest would read as another fit's.
            # They never write it themselves (same data, same hash).
            text = json.dumps({"fingerprint": fingerprint})
            _write_whole(manifest, lambda partial: partial.write_text(text))

    def path(self, stage):
        return self.folder / f"{stage}.pt"

    def load(self, stage, device):
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # a damaged file: start the stage again, loudly
            from .._validation import _warn_at_caller

            _warn_at_caller(
                f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); the "
                "stage starts again from its beginning."
            )
            return None


def fingerprint(estimator, *arrays):
    """Hash of an estimator's class and parameters and of its training data."""
    skip = {"checkpoint", "verbose", "callbacks", "device"}
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k not in skip}
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(estimator).__qualname__.encode())
    digest.update(repr(sorted(params.items(), key=lambda kv: kv[0])).encode())
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        if hasattr(array, "blocks") and hasattr(array, "read"):
            # RawImages (uint8 or memory-mapped): the caller's values, block by
            # block, never the whole set at once.
            digest.update(f"raw{array.dtype.str}{array.shape}".encode())
            for _, block in array.blocks():
                digest.update(memoryview(np.ascontiguousarray(block)).cast("B"))
            continue
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class CheckpointReader(Callback):
    """First callback of a resumed stage: puts the saved state back at its first epoch.

    After skorch's own ``on_train_begin`` hooks (which seed generators and
    build schedules), so that what they made is overwritten by the state the
    interrupted fit had.
    """

    def __init__(self):
        self.state = None

    def on_epoch_begin(self, net, **kwargs):
        state, self.state = self.state, None
        if state is None:
            return
        restore(net, state)
        net.history.new_epoch()  # the row skorch opened was dropped with the old history
        net.history.record("epoch", len(net.history))


def _writes(net):
    """Whether this process writes checkpoints: rank 0 only in data-parallel training."""
    dp = getattr(net, "_dp", None)
    return dp is None or dp.rank == 0


class CheckpointWriter(Callback):
    """Last callback of a stage: writes its state after every epoch, and when it ends."""

    def __init__(self):
        self.target = None

    def on_epoch_end(self, net, **kwargs):
        if self.target is not None and _writes(net):
            _save(net_state(net, done=False), self.target)

    def on_train_end(self, net, **kwargs):
        if self.target is not None and _writes(net) and not getattr(net, "interrupted_", False):
            _save(net_state(net, done=True), self.target)


def restore(net, state):
    """Load a stage's saved state into an initialised net."""
    net.module_.load_state_dict(state["module"])
    net.criterion_.load_state_dict(state["criterion"])
    net.optimizer_.load_state_dict(state["optimizer"])
    net.history_ = History(state["history"])
    _set_rng_states(net, state["rng"])
    _set_callback_states(net, state["callbacks"])
    if "chain" in state:
        net.chain_ = state["chain"]
