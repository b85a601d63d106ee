"""Data-parallel fits: a 2-process gloo group on 127.0.0.1 against the 1-process fits."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import skface
from skface.nn.losses import CenterLoss
from skface.parallel import ProcessGroup, data_parallel

from . import _distributed_worker as worker

WORLD_SIZE = 2
TIMEOUT_S = 120  # the group itself starts and fits in about 8 s on 2 busy cores


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each rank's results (npz, errors) from one 2-process run of every scenario."""
    out = tmp_path_factory.mktemp("ddp")
    root = str(Path(skface.__file__).resolve().parents[1])
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               WORLD_SIZE=str(WORLD_SIZE), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    procs = []
    try:
        for rank in range(WORLD_SIZE):
            procs.append(subprocess.Popen(
                # faulthandler: a rank killed by a signal (an abort in torch's C++)
                # prints where its Python threads were.
                [sys.executable, "-X", "faulthandler", worker.__file__, str(out)],
                env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        logs = [proc.communicate(timeout=TIMEOUT_S)[0] for proc in procs]
    finally:
        # A rank that failed leaves the other waiting in a collective: never leave
        # either running, whatever happened.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if any(proc.returncode for proc in procs):
        written = sorted(path.name for path in out.iterdir())
        pytest.fail("; ".join(f"rank {rank} exited with {proc.returncode}"
                              for rank, proc in enumerate(procs))
                    + f"; files written: {written}\n"
                    + "\n".join(f"--- rank {rank}:\n{log}" for rank, log in enumerate(logs)))
    return [(dict(np.load(out / f"rank{r}.npz")), json.loads((out / f"rank{r}.json").read_text()))
            for r in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def single(one_torch_thread):
    """The same fits in this one process, one torch thread (as each rank has)."""
    return {
        "embedder": worker.embedder(),
        "sdae": worker.sdae_classifier(),
        "keypoints": worker.keypoints(),
    }


def _same_on_every_rank(ranks, key):
    first = ranks[0][0][key]
    return all(np.array_equal(first, results[key]) for results, _ in ranks[1:])


# -- without processes ----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 7, 16])
def test_process_group_bounds_split_batch_exactly(n):
    shares = [ProcessGroup(r, 3, "gloo").bounds(n) for r in range(3)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
    sizes = [stop - start for start, stop in shares]
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) == ProcessGroup(2, 3, "gloo").smallest_share(n)


def test_update_centers_reduce_two_halves_equals_whole_batch():
    gen = torch.Generator().manual_seed(0)
    features, labels = torch.randn(10, 4, generator=gen), torch.tensor([0, 1, 2, 0, 1] * 2)
    whole = CenterLoss(3, 4)
    whole.centers.normal_(generator=gen)
    halves = [CenterLoss(3, 4), CenterLoss(3, 4)]
    for half in halves:
        half.centers.copy_(whole.centers)
    whole.update_centers(features, labels)

    # A stand-in for all_reduce: the other half's sums, computed before any update.
    def partial(loss, part):
        captured = {}
        loss_copy = CenterLoss(3, 4)
        loss_copy.centers.copy_(loss.centers)
        loss_copy.update_centers(features[part], labels[part],
                                 reduce=lambda t: captured.setdefault("t", t.clone()))
        return captured["t"]

    parts = [slice(0, 6), slice(6, 10)]
    others = [partial(halves[1], parts[1]), partial(halves[0], parts[0])]
    for half, part, other in zip(halves, parts, others):
        half.update_centers(features[part], labels[part], reduce=lambda t, o=other: t.add_(o))
    for half in halves:
        torch.testing.assert_close(half.centers, whole.centers)


def test_data_parallel_without_launcher_raises(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node"):
        with data_parallel():
            pass


# -- a 2-process gloo group ----------------------------------------------------------


@pytest.mark.parametrize("key", ["embedder_centers", "embedder_params", "embedder_embeddings",
                                 "sdae_params", "sdae_proba", "keypoints_params"])
def test_data_parallel_fit_model_identical_on_every_rank(ranks, key):
    assert _same_on_every_rank(ranks, key)


def test_data_parallel_embedder_matches_one_process_fit(ranks, single):
    # No batch norm in the backbone: the two fits differ only in summation order.
    results, ref = ranks[0][0], single["embedder"]
    np.testing.assert_allclose(results["embedder_loss"], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(results["embedder_centers"], ref["centers"], atol=1e-5)
    np.testing.assert_allclose(results["embedder_params"], ref["params"], atol=1e-4)
    np.testing.assert_allclose(results["embedder_embeddings"], ref["embeddings"], atol=1e-5)


@pytest.mark.parametrize("name", ["sdae", "keypoints"])
def test_data_parallel_batch_norm_fit_loss_close_to_one_process(ranks, single, name):
    # Batch norm normalises each rank's share on its own: close, not equal.
    np.testing.assert_allclose(ranks[0][0][f"{name}_loss"], single[name]["loss"], rtol=0.02)
    assert not np.array_equal(ranks[0][0][f"{name}_params"], single[name]["params"])


def test_data_parallel_finished_checkpoint_loaded_on_every_rank(ranks):
    for results, _ in ranks:
        assert results["checkpoint_same"].all()


def test_data_parallel_unseeded_fit_ranks_agree(ranks):
    assert _same_on_every_rank(ranks, "unseeded_params")


def test_data_parallel_different_data_raises_on_every_rank(ranks):
    for _, errors in ranks:
        assert "training data differ" in errors.get("different_data", "")
        assert "rank 0: 20 images, rank 1: 21 images" in errors["different_data"]
        assert "rank 0: 20 images, rank 1: 20 images" in errors.get("reordered_data", "")


def test_fit_launched_without_data_parallel_warns(monkeypatch, one_torch_thread):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(RuntimeWarning, match="not inside skface.parallel.data_parallel") as record:
        worker.embedder(max_epochs=1)
    assert record[0].filename == worker.__file__  # the line that called fit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names from /proc")
def test_data_parallel_block_end_leaves_no_gloo_thread(ranks):
    # A gloo thread still running at exit can abort the process after its work
    # ("terminate called without an active exception"): the group must be freed.
    for rank, (results, _) in enumerate(ranks):
        left = [name for name in results["threads_after_block"]
                if name.startswith(("gloo", "pt_gloo", "pt_tcpstore"))]
        assert left == [], f"rank {rank}: {left}"


def _one_process_launch(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")


def test_data_parallel_group_still_referenced_after_block_warns(monkeypatch):
    _one_process_launch(monkeypatch)
    with pytest.warns(RuntimeWarning, match="still holds a reference") as record:
        with data_parallel(backend="gloo"):
            held = torch.distributed.group.WORLD  # what a module default would pin
    assert record[0].filename == __file__  # the block's line, not contextlib's
    del held


def test_data_parallel_group_freed_after_block_no_warning(monkeypatch, recwarn):
    _one_process_launch(monkeypatch)
    with data_parallel(backend="gloo"):
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # imports torch._dynamo
    assert not [w for w in recwarn if "still holds a reference" in str(w.message)]
    assert not torch.distributed.is_initialized()
