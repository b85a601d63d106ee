"""Interrupts and checkpoints: Ctrl-C stops a whole fit, and a fit resumes from its checkpoint."""

import contextlib
import hashlib
import io
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

from .._atomic import WriteError, atomic_path
from .._device import cuda_index
from .._warnings import warn_at_caller
from ..parallel._distributed import is_main_process

__all__ = ["CheckpointReader", "CheckpointWriter", "StageCheckpoints", "sigint_guard"]


@contextlib.contextmanager
def sigint_guard(net):
    """Tell a user's Ctrl-C from skorch's own ``KeyboardInterrupt``.

    skorch's ``partial_fit`` swallows ``KeyboardInterrupt``, because its
    ``EarlyStopping`` raises one to end training. A real SIGINT during the
    block sets ``net.interrupted_`` before raising it, so the caller can
    raise it again once skorch has closed the fit. Outside the main thread
    (joblib or Dask workers) signals cannot be caught and nothing changes;
    nor when SIGINT is ignored (a job started in the background by a shell
    script or a nohup-style launcher inherits that): such a process was
    meant to survive Ctrl-C, and does.
    """
    net.interrupted_ = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
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


# The net's own generators: the shuffle order's (always on the CPU) and the one on
# the net's device (augmentation, dropout masks drawn on it).
_GENERATORS = ("shuffle_generator_", "generator_")

# A CPU (Mersenne Twister) generator's state is 5,056 bytes, a CUDA (Philox) one's 16.
_CPU_STATE_BYTES = 5056


def _rng_states(net):
    """The random states a stage goes on with, and the kind of device each belongs to."""
    states = {"torch": torch.get_rng_state(), "devices": {}}
    device = torch.device(net.device)
    if device.type == "cuda" and torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state(device)  # a CPU ByteTensor
    for name in _GENERATORS:
        generator = getattr(net, name, None)
        if generator is not None:
            states[name] = generator.get_state()
            states["devices"][name] = generator.device.type
    return states


def _generator_kind(states, name):
    """The device kind ``states[name]`` came from (checkpoints before it was recorded: by size)."""
    kind = states.get("devices", {}).get(name)
    if kind is None:
        kind = "cpu" if states[name].numel() == _CPU_STATE_BYTES else "cuda"
    return kind


def saved_device(state):
    """The device kind (``"cpu"``, ``"cuda"``) a stage's checkpoint was written on."""
    if "device" in state:
        return state["device"]
    states = state["rng"]
    if "cuda" in states:
        return "cuda"
    return _generator_kind(states, "generator_") if "generator_" in states else "cpu"


def _reseed(net, state, name):
    """A seed for random stream ``name`` that cannot carry over to this device.

    From the net's seed and the epoch the checkpoint holds (the saved CPU
    state stands in for a seed drawn at random): the same checkpoint
    resumed twice on the same device gives the same fit.
    """
    seed = getattr(net, "seed", None)
    if seed is None:
        seed = hashlib.blake2b(state["rng"]["torch"].numpy().tobytes(), digest_size=8).hexdigest()
    digest = hashlib.blake2b(f"{seed}:{state['epochs']}:{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def _set_rng_states(net, state):
    """Put back the saved random states that fit this net's device; re-seed the others.

    The CPU's global state always carries over (a CPU ByteTensor, whatever
    the device). A CUDA state goes only onto a CUDA device, a generator's
    state only onto a generator on the same kind of device; a stream that
    cannot carry over is re-seeded by :func:`_reseed`.

    Returns
    -------
    reseeded : list of str
        The streams re-seeded.
    """
    states, reseeded = state["rng"], []
    torch.set_rng_state(states["torch"].cpu())
    device = torch.device(net.device)
    if device.type == "cuda":
        if "cuda" in states:
            torch.cuda.set_rng_state(states["cuda"].cpu(), device)
        else:
            torch.cuda.default_generators[cuda_index(device)].manual_seed(
                _reseed(net, state, "cuda"))
            reseeded.append("cuda")
    for name in _GENERATORS:
        generator = getattr(net, name, None)
        if generator is None or name not in states:
            continue
        if _generator_kind(states, name) == generator.device.type:
            generator.set_state(states[name].cpu())
        else:
            generator.manual_seed(_reseed(net, state, name))
            reseeded.append(name)
    return reseeded


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
        "device": torch.device(net.device).type,
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


class _Recorded(io.RawIOBase):
    """A file that keeps the ``OSError`` its writes raised.

    ``torch.save`` reports a failed write (a full disk) as a bare
    ``RuntimeError`` from its zip writer, with no errno and no file name;
    the recorded error says what happened.
    """

    def __init__(self, file):
        self.file, self.error = file, None

    def writable(self):
        return True

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise


def _save(state, path):
    """``torch.save`` to ``path``, whole or not at all (:func:`skface._atomic.atomic_path`).

    Raises
    ------
    WriteError
        One line naming ``path`` ("the disk is full" for lack of room);
        the previous checkpoint there is unchanged.
    """
    with atomic_path(path, what="checkpoint") as tmp, open(tmp, "wb", buffering=0) as file:
        recorded = _Recorded(file)
        try:
            torch.save(state, recorded)
        except RuntimeError as exc:
            if recorded.error is None:
                raise
            raise recorded.error from exc


def _save_text(text, path):
    with atomic_path(path, what="checkpoint manifest") as tmp:
        tmp.write_text(text)


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
        self.failed = False  # a write failed: the rest of the fit goes on without
        self._warned_device = False
        manifest = self.folder / "manifest.json"
        if manifest.exists():
            try:
                written = json.loads(manifest.read_text())
            except (ValueError, OSError):  # JSONDecodeError, UnicodeDecodeError
                written = None
            if not isinstance(written, dict) or not isinstance(written.get("fingerprint"), str):
                raise ValueError(
                    f"The checkpoint folder {self.folder} has a damaged manifest "
                    f"({manifest} does not say which fit wrote the folder), so its stage "
                    "files cannot be trusted. Delete the folder to start the fit again, "
                    "or pass another checkpoint folder."
                )
            if written["fingerprint"] != fingerprint:
                raise ValueError(
                    f"The checkpoint folder {self.folder} holds a fit of other data or "
                    "other parameters; resuming from it would mix two models. Delete it, "
                    "or pass another checkpoint folder."
                )
            return
        stages = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*.pt"))
        if stages:
            # The manifest is written before any stage file: these were left by
            # something else (another fit whose manifest was deleted, a copy).
            shown = ", ".join(stages[:3]) + (", ..." if len(stages) > 3 else "")
            raise ValueError(
                f"The checkpoint folder {self.folder} holds stage files ({shown}) but no "
                "manifest.json saying which fit wrote them; resuming from them could mix "
                "two models. Delete the folder to start the fit again, or pass another "
                "checkpoint folder."
            )
        if is_main_process():
            # Written whole: in data-parallel training the other ranks read it at the
            # same moment, and a half-written manifest would read as another fit's.
            # They never write it themselves (same data, same hash). A failed write
            # raises WriteError here, before anything is trained.
            _save_text(json.dumps({"fingerprint": fingerprint}), manifest)

    def path(self, stage):
        return self.folder / f"{stage}.pt"

    def load(self, stage, device):
        """A stage's saved state, on the CPU (None when there is none or it is damaged).

        A state written on another kind of device than ``device`` warns,
        once per fit: it resumes, but not bit for bit (see :func:`restore`).
        """
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            # On the CPU whatever the device: RNG states must be CPU byte tensors;
            # restore() moves the rest where the net is.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: start the stage again, loudly
            warn_at_caller(
                f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); the "
                "stage starts again from its beginning."
            )
            return None
        written, now = saved_device(state), torch.device(device).type
        if written != now and not self._warned_device:
            self._warned_device = True
            warn_at_caller(
                f"Checkpoint {path} was written on {written} and the fit resumes on {now}: "
                "the weights, optimizer state and history carry over, but the random "
                f"streams drawn on the device cannot and are re-seeded from the seed and "
                f"the epoch, so the resumed fit is not bit-identical to an uninterrupted "
                f"one on {now}. (Resumed on the kind of device it was written on, it is.)"
            )
        return state

    def write(self, state, path):
        """Save ``state`` to ``path``; on failure warn once and write no more for this fit.

        A fit whose checkpoint cannot be written (a full disk) goes on: the
        model being trained is the user's work, and the last checkpoint that
        was written stays whole and still resumes. (Raising would also leave
        the other ranks of a data-parallel fit, which do not write, waiting.)
        """
        if self.failed:
            return
        try:
            _save(state, path)
        except WriteError as exc:
            self.failed = True
            warn_at_caller(f"{exc} Training goes on without checkpoints.")


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


# A checkpoint is written after an epoch only once this long has passed since the
# last one (and always when a stage ends): writing one after every epoch made
# small fits 2-11 times slower (bench/interrupts.py --overhead). A Ctrl-C loses
# at most this long of training, plus the epoch it interrupts.
WRITE_EVERY_S = 10.0
# ... and at most a tenth of the time goes to writing, however large the model.
WRITE_SHARE = 0.1


class CheckpointWriter(Callback):
    """Last callback of a stage: writes its state when it ends, and every so often before.

    After an epoch when :data:`WRITE_EVERY_S` seconds have passed since the
    last write, and writing took no more than :data:`WRITE_SHARE` of the
    time since; always when the stage ends.
    """

    def __init__(self):
        self.target = None
        self.checkpoints = None

    def start(self, checkpoints, stage):
        """Write ``stage``'s states into ``checkpoints`` (None: write nothing)."""
        self.checkpoints = checkpoints
        self.target = None if checkpoints is None else checkpoints.path(stage)
        self._last, self._took = time.monotonic(), 0.0

    def _write(self, net, done):
        start = time.monotonic()
        self.checkpoints.write(net_state(net, done=done), self.target)
        self._last = time.monotonic()
        self._took = self._last - start

    def on_epoch_end(self, net, **kwargs):
        if self.target is None or not _writes(net):
            return
        since = time.monotonic() - self._last
        if since >= max(WRITE_EVERY_S, self._took / WRITE_SHARE):
            self._write(net, done=False)

    def on_train_end(self, net, **kwargs):
        if self.target is not None and _writes(net) and not getattr(net, "interrupted_", False):
            self._write(net, done=True)


def restore(net, state):
    """Load a stage's saved state (on the CPU, from any device) into an initialised net.

    The weights, optimizer and loss states, the history and the schedules
    move to the net's device; the random states as :func:`_set_rng_states`
    says (all of them on the kind of device they were written on).
    """
    net.module_.load_state_dict(state["module"])
    net.criterion_.load_state_dict(state["criterion"])
    net.optimizer_.load_state_dict(state["optimizer"])  # moves its state to the params
    net.history_ = History(state["history"])
    _set_rng_states(net, state)
    _set_callback_states(net, state["callbacks"])
    if "chain" in state:
        net.chain_ = state["chain"].to(net.device)
