"""Tests for bench/device_check.sh and bench/device_check.py, on the CPU."""

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = {"DBNReconstructor", "ConvSDAEFeatures", "SDAEClassifier", "SDAERegressor",
              "KeypointRegressor", "CenterLossEmbedder"}
CHECKS = {"fit", "save_load", "cpu_unpickle", "cpu_load", "sync", "bf16", "uint8", "memmap",
          "resume"}
DATA_PARALLEL = {"SDAEClassifier", "KeypointRegressor", "CenterLossEmbedder"}


@pytest.fixture(scope="module")
def device_check():
    path = ROOT / "bench" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_device_check_dry_run_every_check_ok_for_every_estimator(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [row for row in rows if not row["ok"]]
    assert not failed, json.dumps(failed, indent=1)[:4000] + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = {(row["check"], row["estimator"]) for row in rows}
    assert {(c, e) for c in CHECKS for e in ESTIMATORS} <= seen
    assert {("data_parallel", e) for e in DATA_PARALLEL} <= seen
    assert all(row.get("skipped") for row in rows if row["check"] == "sync")
    # On the CPU: a resumed fit, bf16_inference and a group of one change nothing.
    for row in rows:
        if row["check"] in ("resume", "bf16", "data_parallel"):
            assert row["max_abs_diff"] == 0.0, row
    resumed = [row["detail"] for row in rows if row["check"] == "resume"]
    assert all(d["epochs_after_resume"] < d["epochs_uninterrupted"] for d in resumed)
    assert all(set(row) >= {"check", "estimator", "ok", "detail", "seconds"} for row in rows)
    # $OUT gets the same lines.
    written = (tmp_path / "device_check.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == rows


def test_compare_relative_to_reference_scale(device_check):
    ref = np.array([[10.0, -20.0], [5.0, 0.0]])
    ok, numbers = device_check.compare(ref, ref + 0.9, 5e-2)
    assert ok and numbers["max_abs_diff"] == pytest.approx(0.9)
    assert numbers["max_rel_diff"] == pytest.approx(0.9 / 20)
    ok, numbers = device_check.compare(ref, ref + 1.1, 5e-2)
    assert not ok and numbers["max_rel_diff"] == pytest.approx(1.1 / 20)


@pytest.mark.parametrize("out", [np.zeros((2, 3)), np.array([[np.nan, 0.0], [0.0, 0.0]])])
def test_compare_bad_shape_or_nonfinite_fails(device_check, out):
    ok, numbers = device_check.compare(np.zeros((2, 2)), out, 1.0)
    assert not ok and "why" in numbers


@pytest.fixture
def fake_sync(monkeypatch):
    """Sync debug mode without CUDA: ``Tensor.item`` plays the synchronising call."""
    import torch

    state = {"mode": 0, "modes": []}
    item = torch.Tensor.item

    def set_mode(mode):
        state["mode"] = mode
        state["modes"].append(mode)

    def fake_item(self):
        if state["mode"] == "error":
            raise RuntimeError("called a synchronizing CUDA operation")
        if state["mode"] == "warn":
            warnings.warn("called a synchronizing CUDA operation", UserWarning)
        return item(self)

    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", set_mode)
    monkeypatch.setattr(torch.Tensor, "item", fake_item)
    return state


def _sync_row(device_check, name):
    tasks = device_check.make_tasks(device_check.load_faces())
    rep = device_check.Reporter()
    device_check.check_sync(rep, name, *tasks[name], "cpu", False, True)
    (row,) = rep.rows
    return row


def test_check_sync_per_batch_item_fails_with_frames_and_sites(device_check, fake_sync,
                                                               one_thread, monkeypatch):
    # A host read in every batch's center update, as bincount did (issue 13).
    from skface.nn.losses import CenterLoss

    update = CenterLoss.update_centers

    def reading_update(self, features, labels, **kwargs):
        labels.max().item()
        return update(self, features, labels, **kwargs)

    monkeypatch.setattr(CenterLoss, "update_centers", reading_update)
    row = _sync_row(device_check, "CenterLossEmbedder")
    assert row["check"] == "sync" and not row["ok"] and "skipped" not in row
    assert "synchronizing" in row["detail"]["error"]
    assert any("in reading_update" in frame for frame in row["detail"]["frames"])
    (site,) = row["detail"]["all_sites"]
    assert site["count"] == 4  # every batch of 100 images in batches of 32, once
    assert any("in reading_update" in frame for frame in site["frames"])
    assert fake_sync["mode"] == 0  # reset after the failure


def test_check_sync_deferred_losses_outside_window_pass(device_check, fake_sync, one_thread):
    # CenterLossEmbedder keeps its losses on the device until the epoch ends,
    # after the window: the mode was "error" for the batches and 0 after them.
    row = _sync_row(device_check, "CenterLossEmbedder")
    assert row["ok"], row
    assert "error" in fake_sync["modes"] and fake_sync["mode"] == 0


def test_check_resume_fit_started_over_fails(device_check, one_thread, tmp_path, monkeypatch):
    # A resumed fit that ignores its checkpoint trains every epoch again: the
    # check must say so, even though the model is the same.
    build = device_check.build

    def forgetful(name, device, epochs, tiny, **extra):
        if "checkpoint" in extra and not isinstance(extra["callbacks"][0],
                                                    device_check._InterruptAt):
            extra["checkpoint"] = str(tmp_path / "elsewhere")
        return build(name, device, epochs, tiny, **extra)

    monkeypatch.setattr(device_check, "build", forgetful)
    tasks = device_check.make_tasks(device_check.load_faces())
    rep = device_check.Reporter()
    device_check.check_resume(rep, "KeypointRegressor", *tasks["KeypointRegressor"],
                              [("cpu", "cpu")], 3, True, tmp_path)
    (row,) = rep.rows
    assert not row["ok"] and row["identical"]
    assert row["detail"]["epochs_after_resume"] == row["detail"]["epochs_uninterrupted"] == 3
