"""Device check of every estimator: CUDA fit, save/load, CPU-only unpickling, per-batch syncs,
bf16 vs float32 inference, uint8 and memory-mapped input, checkpoint resume across devices and
data_parallel on one GPU."""

import argparse
import contextlib
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's skface, installed or not
from skface._registry import estimator_names  # noqa: E402 (light: no torch)

# Every torch estimator skface exports (skface._registry): one registered without
# a configuration in _build and OUTPUT below fails its checks, naming itself.
ESTIMATORS = tuple(estimator_names("skface.estimators", on_device=True))

# The output each comparison uses: continuous, so that small drifts show.
OUTPUT = {
    "DBNReconstructor": "transform",
    "ConvSDAEFeatures": "transform",
    "SDAEClassifier": "predict_proba",
    "SDAERegressor": "predict",
    "KeypointRegressor": "predict",
    "CenterLossEmbedder": "transform",
}

# Tolerances on max|out - ref| / max|ref|. The same weights on the same device
# run the same kernels: only float reordering is allowed. CUDA runs under bf16
# autocast (about 3 significant digits per op) and the CPU in float32, so
# across devices a few per cent is float noise, not a bug.
SAME_RTOL = 1e-4
CROSS_RTOL = 5e-2

# The estimators that train inside skface.parallel.data_parallel.
DATA_PARALLEL = ("SDAEClassifier", "KeypointRegressor", "CenterLossEmbedder")

# Every check, in the order they run; --checks picks some.
CHECKS = ("fit", "save_load", "cpu", "bf16", "uint8", "resume", "data_parallel", "sync")

# Five facial keypoints (x, y) in pixels of a 25x25 face: the eyes, the nose
# tip, the mouth corners; pairs (0, 1) and (3, 4) swap under a mirror flip.
_TEMPLATE = np.array([[8.0, 10.0], [17.0, 10.0], [12.5, 14.5], [9.0, 19.0], [16.0, 19.0]])
_FLIP_PAIRS = ((0, 1), (3, 4))


# -- reporting ---------------------------------------------------------------------------


class Reporter:
    """Prints one JSON object per check on stdout (and to ``jsonl``) and counts failures."""

    def __init__(self, jsonl=None):
        self.rows = []
        self.failed = []
        self.file = None
        if jsonl:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(jsonl, "w")

    def emit(self, check, estimator, ok, detail, seconds, **extra):
        self.write(dict(check=check, estimator=estimator, ok=bool(ok), detail=detail,
                        seconds=round(float(seconds), 3), **extra))

    def write(self, row):
        self.rows.append(row)
        if not row.get("ok"):
            self.failed.append((row.get("check"), row.get("estimator")))
        line = json.dumps(row, default=_jsonable)
        print(line, flush=True)
        if self.file is not None:
            # Line by line, so a run cut short by its time limit keeps what it did.
            self.file.write(line + "\n")
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _short(path):
    """A source path shortened to the repository or the site-packages folder."""
    path = str(path)
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _frames(summary, n=5):
    """The last ``n`` frames of a traceback summary, as "file:line in func: code"."""
    keep = [f for f in summary if Path(f.filename).name not in ("warnings.py", "device_check.py")]
    return [f"{_short(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
            for f in keep[-n:]]


def _error(exc):
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


def _failure(exc):
    """The detail of a check that raised: the error and its traceback's last frames."""
    return {"error": _error(exc), "frames": _frames(traceback.extract_tb(exc.__traceback__))}


def compare(ref, out, rtol):
    """Whether ``out`` matches ``ref`` to ``rtol`` relative to ``max|ref|``, and the numbers."""
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        return False, {"why": f"shape {out.shape} != {ref.shape}"}
    if not np.isfinite(out).all():
        return False, {"why": "non-finite outputs"}
    diff = float(np.abs(out - ref).max()) if out.size else 0.0
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)
    rel = diff / scale
    return rel <= rtol, {"max_abs_diff": diff, "max_rel_diff": rel, "rtol": rtol}


# -- data and estimators -----------------------------------------------------------------


def load_faces(path=None):
    """scikit-image's 200 real 25x25 grey LFW crops (100 faces, then 100 non-faces).

    Without scikit-image (the device machine), ``path`` names the same array
    saved as ``.npy`` (bench/README.md says how).
    """
    try:
        from skimage.data import lfw_subset
    except ImportError:
        if path is None or not Path(path).exists():
            raise RuntimeError(
                "scikit-image is missing and no --data file was given: save "
                "skimage.data.lfw_subset() as .gpu_data/lfw_subset.npy and carry .gpu_data."
            ) from None
        data = np.load(path)
    else:
        data = lfw_subset()
    return np.asarray(data, dtype=np.float32)


def make_tasks(data):
    """``(X, y)`` per estimator: the faces, with simple targets made from them."""
    faces = data[:100]
    n = len(faces)
    rng = np.random.RandomState(0)
    identity = np.arange(n) // 10  # ten "people" of ten images each
    is_face = (np.arange(len(data)) < 100).astype(np.int64)  # scikit-image's own labels
    brightness = 10.0 * faces[:, :12].mean(axis=(1, 2))  # upper-face brightness
    keypoints = _TEMPLATE + rng.normal(0.0, 0.5, (n, len(_TEMPLATE), 2))
    keypoints[rng.rand(n, len(_TEMPLATE)) < 0.05] = np.nan  # some labels missing
    return {
        "DBNReconstructor": (faces, None),
        "ConvSDAEFeatures": (faces, None),
        "SDAEClassifier": (data, is_face),
        "SDAERegressor": (faces, brightness),
        "KeypointRegressor": (faces, keypoints),
        "CenterLossEmbedder": (faces, identity),
    }


def build(name, device, epochs, tiny, **extra):
    """An unfitted estimator of ``name`` with small settings; every epoch count is ``epochs``.

    ``extra`` (``checkpoint``, ``callbacks``) goes to the estimator itself,
    not to the encoder inside an SDAE head.
    """
    from skface import estimators

    est = _build(estimators, name, device, epochs, tiny)
    return est.set_params(**extra) if extra else est


def _build(estimators, name, device, epochs, tiny):
    c1, c2 = (4, 8) if tiny else (16, 32)
    common = dict(device=device, random_state=0)

    def sdae(**kw):
        return estimators.ConvSDAEFeatures(
            layer_channels=(c1, c2), pretrain_epochs=epochs, batch_size=32, **common, **kw
        )

    if name == "DBNReconstructor":
        return estimators.DBNReconstructor(
            hidden_layer_sizes=(64, 16) if tiny else (256, 64, 16), pretrain_epochs=epochs,
            finetune_epochs=epochs, batch_size=32, **common,
        )
    if name == "ConvSDAEFeatures":
        return sdae(finetune_epochs=epochs)
    if name == "SDAEClassifier":
        return estimators.SDAEClassifier(sdae(), max_epochs=epochs, batch_size=32, **common)
    if name == "SDAERegressor":
        return estimators.SDAERegressor(sdae(), max_epochs=epochs, batch_size=32, **common)
    if name == "KeypointRegressor":
        # Flips with pairs, rotation, zoom and shift: every path of the augmentation.
        return estimators.KeypointRegressor(
            layer_channels=(c1, c2), convs_per_layer=1, input_size=32, flip_pairs=_FLIP_PAIRS,
            pretrain="sdae", pretrain_epochs=epochs, max_epochs=epochs, batch_size=32, **common,
        )
    if name == "CenterLossEmbedder":
        return estimators.CenterLossEmbedder(
            backbone="small_cnn", backbone_params={"width": 4 if tiny else 16},
            embedding_dim=8 if tiny else 32, crop_size=21, max_epochs=epochs, batch_size=32,
            **common,
        )
    raise ValueError(f"{name} is registered (skface._registry) but has no device-check "
                     "configuration: add one to _build and OUTPUT in bench/device_check.py.")


def outputs(est, name, X):
    return np.asarray(getattr(est, OUTPUT[name])(X))


def _last_loss(est):
    try:
        return float(est.net_.history[-1, "train_loss"])
    except Exception:  # not every estimator keeps one net with a loss
        return None


# -- per-batch synchronisation window ----------------------------------------------------


class _Window:
    """A training iterator whose batches after the first fetch run in a sync debug mode.

    The first batch is fetched outside: it draws the epoch's shuffling order,
    per-epoch work. The mode is restored when the epoch's loop ends, before
    the once-per-epoch transfer of the batch losses.
    """

    def __init__(self, iterator, mode, stats):
        self.iterator, self.mode, self.stats = iterator, mode, stats

    def __len__(self):
        return len(self.iterator)

    def __getattr__(self, name):
        return getattr(self.iterator, name)

    def __iter__(self):
        inner = iter(self.iterator)
        try:
            first = next(inner)
        except StopIteration:
            return
        self.stats["epochs"] += 1
        if self.mode is not None:
            import torch

            torch.cuda.set_sync_debug_mode(self.mode)
        try:
            self.stats["batches"] += 1
            yield first
            for batch in inner:
                self.stats["batches"] += 1
                yield batch
        finally:
            if self.mode is not None:
                import torch

                torch.cuda.set_sync_debug_mode(0)


@contextlib.contextmanager
def sync_window(mode):
    """Run every skface training epoch's batches in sync debug ``mode`` (None: no mode).

    Yields counts of the epochs and batches that went through the window, so
    that a check can tell when the hook no longer reaches the training loop.
    """
    import torch
    from skface.estimators._base import FaceNet

    stats = {"epochs": 0, "batches": 0}
    original = FaceNet.__dict__.get("run_single_epoch")
    inherited = FaceNet.run_single_epoch

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if training and iterator is not None:
            iterator = _Window(iterator, mode, stats)
        return inherited(self, iterator, training, prefix, step_fn, **fit_params)

    FaceNet.run_single_epoch = run_single_epoch
    try:
        yield stats
    finally:
        if original is None:
            del FaceNet.run_single_epoch
        else:
            FaceNet.run_single_epoch = original
        if mode is not None:
            torch.cuda.set_sync_debug_mode(0)


def _is_sync_error(exc):
    return isinstance(exc, RuntimeError) and "synchroniz" in str(exc)


def sync_sites(name, X, y, device, tiny):
    """Every distinct synchronising call site of a one-epoch fit, by its last frames, counted."""
    sites = {}
    show_original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return show_original(message, category, filename, lineno, file, line)
        key = tuple(_frames(traceback.extract_stack(), n=4))
        sites[key] = sites.get(key, 0) + 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        with sync_window("warn"):
            build(name, device, 1, tiny).fit(X, y)
    ranked = sorted(sites.items(), key=lambda item: -item[1])
    return [{"count": count, "frames": list(frames)} for frames, count in ranked]


# -- checks ------------------------------------------------------------------------------


def check_fit(rep, name, X, y, device, epochs, tiny):
    start = time.perf_counter()
    try:
        est = build(name, device, epochs, tiny).fit(X, y)
        ref = outputs(est, name, X)
        fitted_on = getattr(est, "device_", None)
        ok = bool(np.isfinite(ref).all()) and str(fitted_on).startswith(device)
        detail = (f"device_={fitted_on}, {OUTPUT[name]} shape {ref.shape}, "
                  f"finite={bool(np.isfinite(ref).all())}, last train_loss={_last_loss(est)}")
        rep.emit("fit", name, ok, detail, time.perf_counter() - start)
        return est, ref
    except Exception as exc:
        rep.emit("fit", name, False, _failure(exc), time.perf_counter() - start)
        return None, None


def _skface_load(skface):
    """``skface.load``, or None while it does not exist yet."""
    try:
        return skface.load
    except AttributeError:
        return None


def check_save_load(rep, name, est, X, ref, device, path):
    """``est.save`` then ``skface.load`` on the same device; returns the path when saved."""
    import skface

    start = time.perf_counter()
    saved = None
    try:
        if not hasattr(est, "save"):
            rep.emit("save_load", name, False, "est.save missing", time.perf_counter() - start)
            return None
        est.save(path)
        saved = path
        load = _skface_load(skface)
        if load is None:
            rep.emit("save_load", name, False, "skface.load missing",
                     time.perf_counter() - start)
            return saved
        loaded = load(path, device=device)
        ok, numbers = compare(ref, outputs(loaded, name, X), SAME_RTOL)
        size = Path(path).stat().st_size
        rep.emit("save_load", name, ok, f"{type(loaded).__name__} on {device}, {size} bytes",
                 time.perf_counter() - start, **numbers)
    except Exception as exc:
        rep.emit("save_load", name, False, _failure(exc), time.perf_counter() - start)
    return saved


def check_sync(rep, name, X, y, device, dry_run, tiny):
    start = time.perf_counter()
    if dry_run:
        # No CUDA, so no sync debug mode; the one-epoch fit still runs through the
        # window, which shows that the hook reaches every training loop.
        try:
            with sync_window(None) as stats:
                build(name, device, 1, tiny).fit(X, y)
            ok = stats["batches"] > 0
            detail = (f"skipped: sync debug mode needs CUDA; a one-epoch fit on {device} "
                      f"ran {stats['batches']} batches in {stats['epochs']} epochs through "
                      "the window" + ("" if ok else ": the hook missed the training loop"))
            rep.emit("sync", name, ok, detail, time.perf_counter() - start, skipped=True)
        except Exception as exc:
            rep.emit("sync", name, False, _failure(exc), time.perf_counter() - start,
                     skipped=True)
        return
    try:
        with sync_window("error") as stats:
            build(name, device, 1, tiny).fit(X, y)
        ok = stats["batches"] > 0
        detail = (f"no host synchronisation in {stats['batches']} training batches "
                  f"({stats['epochs']} epochs)" if ok else "the hook missed the training loop")
        rep.emit("sync", name, ok, detail, time.perf_counter() - start)
    except Exception as exc:
        if not _is_sync_error(exc):
            rep.emit("sync", name, False, _failure(exc), time.perf_counter() - start)
            return
        detail = _failure(exc)
        # "error" stops at the first one: a second fit in "warn" mode lists them all.
        try:
            detail["all_sites"] = sync_sites(name, X, y, device, tiny)
        except Exception as inner:
            detail["all_sites"] = f"listing failed: {_error(inner)}"
        rep.emit("sync", name, False, detail, time.perf_counter() - start)


def check_bf16(rep, name, est, X, ref, device):
    """Outputs inside ``skface.bf16_inference()`` against the default float32 ones."""
    import skface

    start = time.perf_counter()
    try:
        with skface.bf16_inference():
            out = outputs(est, name, X)
        ok, numbers = compare(ref, out, CROSS_RTOL)
        if device == "cpu":
            # No autocast on the CPU: the same float32 outputs.
            ok = ok and numbers["max_abs_diff"] == 0.0
            detail = "cpu: bf16_inference changes nothing (no autocast there)"
        else:
            detail = (f"{OUTPUT[name]} under skface.bf16_inference() vs the default float32 "
                      "(max|diff| / max|float32|)")
        rep.emit("bf16", name, ok, detail, time.perf_counter() - start, **numbers)
    except Exception as exc:
        rep.emit("bf16", name, False, _failure(exc), time.perf_counter() - start)


def check_uint8(rep, name, X, y, device, epochs, tiny, work):
    """Fits from uint8 pixels in memory and memory-mapped, against a fit of the same floats.

    On CUDA the in-memory uint8 fit runs under the sync debug mode "error"
    (after each epoch's first batch, as in ``sync``): its set is resident on
    the device, and neither its batches nor their index copy to the host.
    """
    start = time.perf_counter()
    pixels = np.round(np.clip(X, 0, 1) * 255).astype(np.uint8)
    floats = pixels.astype(np.float32) / 255  # what check_images makes of the uint8 set
    np.save(work / f"{name}.u8.npy", pixels)
    mapped = np.load(work / f"{name}.u8.npy", mmap_mode="r")
    # One device: the same kernels, but cuDNN's backward sums in any order.
    rtol = SAME_RTOL if device == "cpu" else CROSS_RTOL
    try:
        ref = outputs(build(name, device, epochs, tiny).fit(floats, y), name, floats)
    except Exception as exc:
        for check in ("uint8", "memmap"):
            rep.emit(check, name, False, {"float fit failed": _failure(exc)},
                     time.perf_counter() - start)
        return
    for check, images in (("uint8", pixels), ("memmap", mapped)):
        start = time.perf_counter()
        mode = "error" if check == "uint8" and device != "cpu" else None
        try:
            with sync_window(mode) as stats:
                est = build(name, device, epochs, tiny).fit(images, y)
            out = outputs(est, name, images)
            ok, numbers = compare(ref, out, rtol)
            detail = (f"{images.dtype} {'memory-mapped' if check == 'memmap' else 'in memory'}"
                      f" vs float32 of the same pixels; {stats['batches']} training batches"
                      + (" under sync debug mode 'error'" if mode else ""))
            rep.emit(check, name, ok, detail, time.perf_counter() - start,
                     identical=bool(np.array_equal(ref, out)), **numbers)
        except Exception as exc:
            rep.emit(check, name, False, _failure(exc), time.perf_counter() - start)


# Epochs trained, by every copy of _CountEpochs (estimators copy their callbacks).
_EPOCHS = [0]


class _CountEpochs:
    """skorch callback counting the epochs trained, in ``_EPOCHS``."""

    def initialize(self):
        return self

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self

    def __getattr__(self, name):
        # skorch calls every on_* hook; only on_epoch_end counts.
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_epoch_end(self, net, **kwargs):
        _EPOCHS[0] += 1


class _InterruptAt(_CountEpochs):
    """Ctrl-C, as a user would press it, at the end of the ``epoch``-th epoch of the fit."""

    def __init__(self, epoch):
        self.epoch = epoch

    def get_params(self, deep=True):
        return {"epoch": self.epoch}

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        if _EPOCHS[0] == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def _counted_fit(name, device, epochs, tiny, X, y, **extra):
    _EPOCHS[0] = 0
    est = build(name, device, epochs, tiny, **extra).fit(X, y)
    return est, _EPOCHS[0]


@contextlib.contextmanager
def _checkpoint_every_epoch():
    """Checkpoints written after every epoch: these short fits end before a periodic write."""
    from skface.estimators import _checkpoint

    saved = {key: getattr(_checkpoint, key) for key in ("WRITE_EVERY_S", "WRITE_SHARE")
             if hasattr(_checkpoint, key)}
    for key, value in (("WRITE_EVERY_S", 0.0), ("WRITE_SHARE", float("inf"))):
        if key in saved:
            setattr(_checkpoint, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(_checkpoint, key, value)


def check_resume(rep, name, X, y, legs, epochs, tiny, work):
    """A checkpointed fit interrupted on one device, resumed on another.

    For each ``(source, target)`` leg: a fit with ``checkpoint=`` on
    ``source`` stopped by SIGINT after its second epoch (each epoch
    checkpointed), the same fit
    again on ``target`` (it must resume, not start over, and train only the
    epochs that are left), against an uninterrupted fit on ``target``: on
    one device bit-identical, across devices within the cross-device
    tolerance (bf16 training on CUDA).
    """
    references = {}
    for source, target in legs:
        start = time.perf_counter()
        folder = work / f"{name}.{source}-{target}.ckpt"
        try:
            if target not in references:
                est, total = _counted_fit(name, target, epochs, tiny, X, y,
                                          callbacks=[_CountEpochs()])
                references[target] = (outputs(est, name, X), total)
            ref, total = references[target]
            _EPOCHS[0] = 0
            try:
                with _checkpoint_every_epoch():
                    build(name, source, epochs, tiny, checkpoint=str(folder),
                          callbacks=[_InterruptAt(2)]).fit(X, y)
                rep.emit("resume", name, False, f"the fit on {source} was not interrupted",
                         time.perf_counter() - start)
                continue
            except KeyboardInterrupt:
                before = _EPOCHS[0]
            est, after = _counted_fit(name, target, epochs, tiny, X, y,
                                      checkpoint=str(folder), callbacks=[_CountEpochs()])
            out = outputs(est, name, X)
            same_device = source == target
            ok, numbers = compare(ref, out, SAME_RTOL if same_device else CROSS_RTOL)
            identical = bool(np.array_equal(ref, out))
            # It resumed (fewer epochs than a whole fit) and lost at most the
            # interrupted epoch (the checkpoint is written at each epoch's end).
            resumed = total - before <= after < total
            ok = ok and resumed and (identical or not same_device)
            detail = {"from": source, "to": target, "epochs_before_interrupt": before,
                      "epochs_after_resume": after, "epochs_uninterrupted": total,
                      "compared_with": f"an uninterrupted fit on {target}"}
            rep.emit("resume", name, ok, detail, time.perf_counter() - start,
                     identical=identical, **numbers)
        except Exception as exc:
            rep.emit("resume", name, False, {"from": source, "to": target, **_failure(exc)},
                     time.perf_counter() - start)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_data_parallel(rep, names, tasks, device, epochs, tiny, work, threads):
    """``data_parallel()`` with one process on the device, in a process of its own.

    The block starts a group of one (NCCL on CUDA, gloo on the CPU; the
    process's GPU set from ``LOCAL_RANK``) and destroys it at its end; the
    fits inside must equal the same fits outside it, and the process exit 0.
    """
    start = time.perf_counter()
    names = [name for name in names if name in DATA_PARALLEL]
    if not names:
        return
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    command = [sys.executable, str(Path(__file__).resolve()), "--dp-worker", str(work),
               "--estimators", ",".join(names), "--epochs", str(epochs),
               "--threads", str(threads), "--device", device] + (["--dry-run"] if tiny else [])
    seen = set()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        rc = "timeout"
    for line in stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        seen.add(row.get("estimator"))
        if rc != 0 and row.get("ok"):
            row["ok"] = False
            row["detail"] = f"{row['detail']}; but the process exited {rc}"
        rep.write(row)
    tail = stderr.strip().splitlines()[-5:]
    for name in names:
        if name not in seen:
            rep.emit("data_parallel", name, False,
                     {"error": f"the data_parallel process ended ({rc}) before this check",
                      "stderr": tail}, time.perf_counter() - start)


def dp_worker(work, names, device, epochs, tiny):
    """In the data_parallel process: each estimator fitted inside the block and outside."""
    import torch

    from skface.parallel import data_parallel

    rep = Reporter()
    tasks = make_tasks(np.load(Path(work) / "faces.npy"))
    for name in names:
        X, y = tasks[name]
        start = time.perf_counter()
        try:
            ref = outputs(build(name, device, epochs, tiny).fit(X, y), name, X)
            with data_parallel() as group:
                backend = group.backend
                size = group.world_size
                cuda_device = torch.cuda.current_device() if torch.cuda.is_available() else None
                est = build(name, device, epochs, tiny).fit(X, y)
            out = outputs(est, name, X)
            # One process trains as outside the block; on CUDA, cuDNN's backward
            # may still sum in another order from one fit to the next.
            ok, numbers = compare(ref, out, SAME_RTOL if device == "cpu" else CROSS_RTOL)
            rep.emit("data_parallel", name, ok,
                     f"{backend} group of {size} on {device} (current CUDA device "
                     f"{cuda_device}) vs the same fit outside data_parallel",
                     time.perf_counter() - start, identical=bool(np.array_equal(ref, out)),
                     **numbers)
        except Exception as exc:
            rep.emit("data_parallel", name, False, _failure(exc), time.perf_counter() - start)
    return 0


def check_cpu(rep, entries, work, rtol, threads):
    """Unpickle and ``skface.load`` in a CPU-only process; relay its lines."""
    start = time.perf_counter()
    manifest = work / "manifest.json"
    manifest.write_text(json.dumps(entries))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, str(Path(__file__).resolve()), "--cpu-worker", str(manifest),
               "--rtol", repr(rtol), "--threads", str(threads)]
    seen = set()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, rc = exc.stdout or "", exc.stderr or "", "timeout"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    for line in stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        seen.add((row.get("check"), row.get("estimator")))
        rep.write(row)
    tail = stderr.strip().splitlines()[-5:]
    for entry in entries:
        for check in ("cpu_unpickle", "cpu_load"):
            if (check, entry["estimator"]) not in seen:
                rep.emit(check, entry["estimator"], False,
                         {"error": f"the CPU process ended ({rc}) before this check",
                          "stderr": tail}, time.perf_counter() - start)


def cpu_worker(manifest, rtol):
    """In the CPU-only process: each entry's pickle and saved file, against the reference."""
    import torch

    import skface

    rep = Reporter()
    cuda = torch.cuda.is_available()
    for entry in json.loads(Path(manifest).read_text()):
        name = entry["estimator"]
        X, ref = np.load(entry["X"], allow_pickle=False), np.load(entry["ref"])
        start = time.perf_counter()
        try:
            est = pickle.loads(Path(entry["pickle"]).read_bytes())
            ok, numbers = compare(ref, outputs(est, name, X), rtol)
            rep.emit("cpu_unpickle", name, ok and not cuda,
                     f"cuda_available={cuda}, net on {getattr(est.net_, 'device', '?')}",
                     time.perf_counter() - start, **numbers)
        except Exception as exc:
            rep.emit("cpu_unpickle", name, False,
                     _failure(exc), time.perf_counter() - start)
        start = time.perf_counter()
        if entry["model"] is None:
            rep.emit("cpu_load", name, False, "not saved (see save_load)", 0.0)
            continue
        try:
            load = _skface_load(skface)
            if load is None:
                rep.emit("cpu_load", name, False, "skface.load missing",
                         time.perf_counter() - start)
                continue
            loaded = load(entry["model"], device="cpu")
            ok, numbers = compare(ref, outputs(loaded, name, X), rtol)
            rep.emit("cpu_load", name, ok and not cuda, f"cuda_available={cuda}",
                     time.perf_counter() - start, **numbers)
        except Exception as exc:
            rep.emit("cpu_load", name, False,
                     _failure(exc), time.perf_counter() - start)
    return 0


# -- main --------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same checks on the CPU, tiny settings, sync mode skipped")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS),
                        help="comma-separated subset (default: all six)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the main fits (default 1 dry, 5 on CUDA)")
    parser.add_argument("--data", default=str(ROOT / ".gpu_data" / "lfw_subset.npy"),
                        help="lfw_subset() as .npy, read when scikit-image is missing")
    parser.add_argument("--jsonl", default=None, help="also write the JSON lines here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 dry, torch's own otherwise)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which the checks not yet started are reported "
                             "as skipped (default 270 on CUDA, none dry)")
    parser.add_argument("--checks", default=",".join(CHECKS),
                        help=f"comma-separated subset of {', '.join(CHECKS)} (default: all; "
                             "save_load and cpu need fit)")
    parser.add_argument("--cpu-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dp-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rtol", type=float, default=CROSS_RTOL, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    # One thread for the tiny CPU run: the test suite shares two cores.
    threads = args.threads or (1 if args.dry_run else 0)
    if threads:
        torch.set_num_threads(threads)
    if args.cpu_worker:
        return cpu_worker(args.cpu_worker, args.rtol)
    device = "cpu" if args.dry_run else "cuda"
    tiny = args.dry_run
    epochs = args.epochs or (1 if args.dry_run else 5)
    names = [n.strip() for n in args.estimators.split(",") if n.strip()]
    if args.dp_worker:
        return dp_worker(args.dp_worker, names, args.device or device, epochs, tiny)
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    if sorted(set(checks) - set(CHECKS)):
        raise SystemExit(f"unknown checks {sorted(set(checks) - set(CHECKS))}; choose from "
                         f"{CHECKS}")
    rep = Reporter(args.jsonl)
    start = time.perf_counter()
    cuda = torch.cuda.is_available()
    env_ok = args.dry_run or cuda
    rep.emit("env", None, env_ok,
             {"torch": torch.__version__, "python": sys.version.split()[0],
              "device": torch.cuda.get_device_name(0) if cuda else "cpu",
              "mode": "dry-run" if args.dry_run else "cuda", "epochs": epochs,
              "threads": torch.get_num_threads(), "checks": checks},
             time.perf_counter() - start)
    if not env_ok:
        rep.close()
        return 2
    unknown = sorted(set(names) - set(ESTIMATORS))
    if unknown:
        raise SystemExit(f"unknown estimators {unknown}; choose from {ESTIMATORS}")
    faces = load_faces(args.data)
    tasks = make_tasks(faces)
    work = Path(tempfile.mkdtemp(prefix="skface-device-check-"))
    # Checkpoints: interrupted on one device, resumed on the other (both ways);
    # without CUDA, on the CPU (where the resumed model must be bit-identical).
    legs = [("cpu", "cpu")] if device == "cpu" else [("cpu", device), (device, "cpu")]
    try:
        entries = []
        for name in names if {"fit", "save_load", "cpu", "bf16"} & set(checks) else ():
            X, y = tasks[name]
            est, ref = check_fit(rep, name, X, y, device, epochs, tiny)
            if est is None:
                for check in ("save_load", "cpu_unpickle", "cpu_load", "bf16"):
                    rep.emit(check, name, False, "fit failed", 0.0)
                continue
            if "bf16" in checks:
                check_bf16(rep, name, est, X, ref, device)
            if "save_load" not in checks and "cpu" not in checks:
                continue
            saved = check_save_load(rep, name, est, X, ref, device, str(work / f"{name}.skface"))
            if "cpu" not in checks:
                continue
            entry = {"estimator": name, "model": saved, "X": str(work / f"{name}.X.npy"),
                     "ref": str(work / f"{name}.ref.npy"),
                     "pickle": str(work / f"{name}.pkl")}
            np.save(entry["X"], X)
            np.save(entry["ref"], ref)
            pickle_start = time.perf_counter()
            try:
                Path(entry["pickle"]).write_bytes(pickle.dumps(est))
            except Exception as exc:
                rep.emit("cpu_unpickle", name, False, f"pickle.dumps failed: {_error(exc)}",
                         time.perf_counter() - pickle_start)
                rep.emit("cpu_load", name, False, "skipped with cpu_unpickle", 0.0)
                continue
            entries.append(entry)
            del est
        if entries:
            # On the CPU the reference is float32 too: the tight tolerance applies.
            check_cpu(rep, entries, work, SAME_RTOL if device == "cpu" else CROSS_RTOL,
                      threads or os.cpu_count())
        # Short fits for the input, resume and data-parallel checks: they test
        # mechanics, not models.
        short = min(epochs, 3)
        budget = args.budget if args.budget is not None else (None if args.dry_run else 270)
        skipped = []

        def within_budget(check, name=None):
            """Whether to start ``check``; past the budget it is listed as skipped."""
            if budget is None or time.perf_counter() - start < budget:
                return True
            skipped.append(f"{check} {name}" if name else check)
            return False

        for name in names if "resume" in checks else ():
            if within_budget("resume", name):
                check_resume(rep, name, *tasks[name], legs, max(short, 3), tiny, work)
        for name in names if "uint8" in checks else ():
            if within_budget("uint8", name):
                check_uint8(rep, name, *tasks[name], device, short, tiny, work)
        if "data_parallel" in checks and within_budget("data_parallel"):
            np.save(work / "faces.npy", faces)
            check_data_parallel(rep, names, tasks, device, short, tiny, work,
                                threads or os.cpu_count())
        for name in names if "sync" in checks else ():
            if within_budget("sync", name):
                X, y = tasks[name]
                check_sync(rep, name, X, y, device, args.dry_run, tiny)
        if skipped:
            rep.emit("budget", None, False,
                     f"{budget:g} s spent; not run (rerun them with --checks): {skipped}",
                     time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep.emit("summary", None, not rep.failed,
             f"{len(rep.failed)} failed: {rep.failed}" if rep.failed else "all checks passed",
             time.perf_counter() - start)
    rep.close()
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
