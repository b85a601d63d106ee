"""Run the demo's stages in order and write the report."""

import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
import traceback
from datetime import datetime, timezone
from pathlib import Path

from skface._version import __version__
from skface.demo._presets import get_settings
from skface.demo._report import metrics_dict, write_report
from skface.demo._stages import STAGES, Context

__all__ = ["run_demo"]

# A log read from a file or a pipe (no progress bars there) hears from a stage this often.
_HEARTBEAT_S = 30.0


def run_demo(
    out_dir="skface-demo",
    *,
    data_home=None,
    preset="quick",
    device="auto",
    download=False,
    stages=None,
    verbose=1,
    log=None,
    **overrides,
):
    """Train each skface estimator briefly, evaluate it and write an HTML report.

    Each stage reads its dataset from the data home: LFW for
    :class:`~skface.estimators.DBNReconstructor` and
    :class:`~skface.estimators.CenterLossEmbedder`, UTKFace for
    :class:`~skface.estimators.ConvSDAEFeatures`, YouTube Faces keypoints for
    :class:`~skface.estimators.KeypointRegressor`. Where a dataset is missing
    the DBN and SDAE stages fall back to scikit-image's bundled sample of
    100 LFW faces; the other stages are skipped, and the report says what is
    missing and how to get it.

    Parameters
    ----------
    out_dir : str or path-like, default="skface-demo"
        Folder for ``report.html``, ``metrics.json`` and the figures (PNG).
    data_home : str or path-like, default=None
        Where the datasets are; None means ``$SKFACE_DATA`` or ``~/skface_data``.
    preset : {"quick", "smoke", "full"}, default="quick"
        "quick" finishes in under 10 minutes on 2 CPU cores; "smoke" runs in
        seconds (for tests); "full" trains larger models for longer (GPU).
    device : str, default="auto"
        Torch device for every estimator; "auto" takes CUDA when present.
    download : bool, default=False
        Download the datasets that can be downloaded (LFW) when missing.
    stages : sequence of str, default=None
        Subset of ``("align", "dbn", "sdae", "keypoints", "embedding")``; None runs all.
    verbose : int, default=1
        1 shows a progress bar per training on a terminal; when stderr is
        not one (a log file, a pipe), a line every 30 s instead, saying which
        stage is running and for how long. 0 is silent.
    log : callable, default=None
        Receives each progress line; None prints to stderr (nothing when
        ``verbose=0``).
    **overrides
        Fields of :class:`~skface.demo.DemoSettings` replacing the preset's.

    Returns
    -------
    result : dict
        The contents of ``metrics.json``, plus ``"report"``: the report's absolute path.

    Raises
    ------
    ValueError
        For an unknown preset, stage or setting, before anything is written.
    OSError
        If ``out_dir`` cannot be created or written to (a file stands where
        it or one of its parents should be, or permission is denied). It is
        created and probed before any training, so no run is lost to it.
    """
    from skface.datasets import get_data_home
    from skface._device import resolve_device

    if log is None:
        log = (lambda line: print(line, file=sys.stderr, flush=True)) if verbose else _quiet
    settings = get_settings(preset, **overrides)
    known = [key for key, _ in STAGES]
    stages = known if stages is None else list(stages)
    unknown = sorted(set(stages) - set(known))
    if unknown:
        raise ValueError(f"Unknown demo stage(s) {unknown}; choose from {known}.")
    # Checked before any training, not when the report is written minutes or hours later.
    out_dir = prepare_out_dir(out_dir)
    home = get_data_home(data_home)
    ctx = Context(settings=settings, data_home=home, device=resolve_device(device),
                  verbose=verbose, download=download)
    started = time.perf_counter()
    log(f"skface demo: preset {preset!r}, device {ctx.device}, data home {home}")

    sections = []
    todo = [(key, fn) for key, fn in STAGES if key in stages]
    for number, (key, stage) in enumerate(todo, 1):
        log(f"[{number}/{len(todo)}] {stage.__doc__.splitlines()[0]}")
        start = time.perf_counter()
        try:
            with _heartbeat(log, f"[{number}/{len(todo)}] {key}",
                            enabled=bool(verbose) and not _on_terminal(sys.stderr)):
                section = stage(ctx)
        except Exception as exc:  # noqa: BLE001 (one broken stage must not hide the others)
            section = _failed_section(key, exc)
        elapsed = time.perf_counter() - start
        log(f"      {_outcome(section)} in {elapsed:.0f} s")
        sections.append(section)

    run = {
        "skface_version": __version__,
        "preset": preset,
        "settings": _settings_dict(settings),
        "device": ctx.device,
        "data_home": str(home),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report = write_report(Path(out_dir), run, sections)
    for section in sections:
        if section.status == "skipped":
            # What is missing is said once, in the block below.
            log(f"skipped {section.estimator}: its data is missing (listed below)")
        elif section.status == "failed":
            log(f"FAILED {section.estimator}: {section.reason.splitlines()[-1]}")
        elif section.comparison and not section.comparison["beats_baseline"]:
            log(f"note {section.estimator}: {section.notes[0]}")
    missing = _missing_block(sections)
    if missing:
        # Every missing dataset at once, folder, files and source: one round of fetching.
        log(missing)
    fallback = [s.estimator for s in sections if s.fallback]
    if fallback:
        log(f"ran on scikit-image's bundled LFW sample instead of the data home: "
            f"{', '.join(fallback)}")
    log(f"report: {report.resolve()} ({run['wall_seconds']:.0f} s in all)")
    return {**metrics_dict(run, sections), "report": str(report.resolve())}


def prepare_out_dir(out_dir):
    """Create the demo's output folder and prove it writable.

    Parameters
    ----------
    out_dir : str or path-like
        The folder; created with its parents if needed.

    Returns
    -------
    out_dir : pathlib.Path

    Raises
    ------
    OSError
        Of the same class as the failure (``FileExistsError``,
        ``NotADirectoryError``, ``PermissionError``...), with a message that
        names the folder, says what is in the way and what to do.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing folder we may not write to: write a file to be sure.
        fd, probe = tempfile.mkstemp(prefix=".skface-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = _file_in_the_way(out)
        if blocker is not None:
            what = f"{blocker} is a file, not a folder"
        else:
            what = (exc.strerror or str(exc)).lower()
        raise type(exc)(
            f"Cannot write the demo's output folder {out}: {what}. Pass another folder "
            "(skface demo --out, run_demo(out_dir=...)), one you can write to."
        ) from exc
    return out


def _file_in_the_way(folder):
    """The first of ``folder`` and its parents that exists but is not a folder, or None."""
    for path in (folder, *folder.parents):
        try:
            if path.exists() and not path.is_dir():
                return path
        except OSError:  # a parent we may not even look into: no better answer than errno's
            return None
    return None


def _quiet(line):
    pass


def _on_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


@contextmanager
def _heartbeat(log, label, *, enabled):
    """While the block runs, log ``label`` and the time so far every ``_HEARTBEAT_S`` seconds."""
    if not enabled:
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def beat():
        while not done.wait(_HEARTBEAT_S):
            log(f"      {label}: still running, {time.perf_counter() - start:.0f} s so far")

    thread = threading.Thread(target=beat, name="skface-demo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _settings_dict(settings):
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


def _missing_block(sections):
    """One block naming every dataset the stages missed, each once; "" when none was."""
    lines = []
    for section in sections:
        texts = [section.fallback] + ([section.reason] if section.status == "skipped" else [])
        for text in texts:
            for line in text.splitlines():
                if line.strip() and line not in lines:
                    lines.append(line)
    if not lines:
        return ""
    return "missing data (get these, then run again):\n" + "\n".join(f"  {x}" for x in lines)


def _outcome(section):
    if section.status == "ok":
        return "done"
    if section.status == "skipped":
        return "skipped (data missing)"
    return "failed"


def _failed_section(key, exc):
    from skface.demo._stages import Section

    titles = {"align": "FaceDetector, FaceAligner", "dbn": "DBNReconstructor", "sdae": "ConvSDAEFeatures",
              "keypoints": "KeypointRegressor", "embedding": "CenterLossEmbedder"}
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
    return Section(key, f"{titles[key]} (failed)", titles[key], status="failed", reason=tb)
