"""One rank of the 2-process gloo tests (tests/test_distributed_training.py), and their fits.

Run as a script with the launcher's environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), it fits each scenario inside
``skface.parallel.data_parallel()`` and writes ``rank<r>.npz`` to the folder
given as its argument (``--exit-only``: one short fit, for the exit-abort
loop of bench/ddp_exit_loop.py). The test process imports the same scenario
functions to fit them in one process, for comparison.
"""

import glob
import json
import os
import sys

import numpy as np
import torch
from torch import nn


class TinyBackbone(nn.Module):
    """A backbone without batch norm: data-parallel training then equals one process's."""

    def __init__(self, in_channels, embedding_dim):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, embedding_dim)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


def faces(n, size, seed):
    rng = np.random.RandomState(seed)
    return rng.rand(n, size, size).astype(np.float32)


def flat_params(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()


def embedder(random_state=0, max_epochs=2, checkpoint=None):
    """CenterLossEmbedder on 61 faces of 6 people, batches of 16 (the last, 13, splits 7/6)."""
    from skface.estimators import CenterLossEmbedder

    X, y = faces(61, 12, 0), np.arange(61) % 6
    est = CenterLossEmbedder(
        backbone=TinyBackbone, embedding_dim=8, max_epochs=max_epochs, batch_size=16,
        lr=0.05, lambda_center=0.5, checkpoint=checkpoint, random_state=random_state,
    ).fit(X, y)
    return {
        "centers": est.centers_,
        "loss": np.array(est.net_.history[:, "train_loss"]),
        "params": flat_params(est.net_.module_),
        "embeddings": est.transform(X[:8]),
    }


def sdae_classifier():
    """SDAEClassifier (batch norm in the trunk) on 48 faces, two classes, batches of 16."""
    from skface.estimators import ConvSDAEFeatures, SDAEClassifier

    X = faces(48, 16, 1)
    y = (X[:, :8].mean(axis=(1, 2)) > X[:, 8:].mean(axis=(1, 2))).astype(int)
    encoder = ConvSDAEFeatures((4, 8), pretrain_epochs=0, random_state=0)
    clf = SDAEClassifier(encoder, max_epochs=2, batch_size=16, dropout=0.0,
                         random_state=0).fit(X, y)
    return {
        "loss": np.array(clf.net_.history[:, "train_loss"]),
        "params": flat_params(clf.net_.module_),
        "proba": clf.predict_proba(X[:8]),
    }


def keypoints():
    """KeypointRegressor (augmented: flips, rotations, zoom, shifts) on 40 faces, 3 points."""
    from skface.estimators import KeypointRegressor

    X = faces(40, 16, 2)
    y = np.random.RandomState(3).uniform(3, 13, size=(40, 3, 2))
    reg = KeypointRegressor((4, 8), convs_per_layer=1, input_size=16, flip_pairs=None,
                            dropout=0.0, max_epochs=2, batch_size=16,
                            random_state=0).fit(X, y)
    return {
        "loss": np.array(reg.net_.history[:, "train_loss"]),
        "params": flat_params(reg.net_.module_),
    }


def native_threads():
    """Names of this process's native threads (Linux; empty elsewhere), Python's included."""
    names = []
    for path in glob.glob("/proc/self/task/*/comm"):
        try:
            with open(path) as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return sorted(names)


def exit_only(out):
    """One 1-epoch fit in the block; writes the threads alive after it (the exit-abort case)."""
    from skface.parallel import data_parallel

    torch.set_num_threads(1)
    with data_parallel(timeout=60) as group:
        embedder(max_epochs=1)
        rank = group.rank
    np.savez(os.path.join(out, f"rank{rank}.npz"), threads_after_block=np.array(native_threads()))


def main(out):
    from skface.parallel import data_parallel

    torch.set_num_threads(1)
    results, errors = {}, {}
    with data_parallel(timeout=60) as group:
        for name, value in embedder().items():
            results[f"embedder_{name}"] = value
        for name, value in sdae_classifier().items():
            results[f"sdae_{name}"] = value
        for name, value in keypoints().items():
            results[f"keypoints_{name}"] = value
        # Checkpoints: written by rank 0 only; a second fit loads the finished stage.
        folder = os.path.join(out, "checkpoint")
        first = embedder(checkpoint=folder, max_epochs=1)
        def stamps():
            return sorted((entry.path, entry.stat().st_mtime_ns) for entry in os.scandir(folder))

        before = stamps()
        again = embedder(checkpoint=folder, max_epochs=1)
        # Loaded, not trained again: a training fit would rewrite the files.
        results["checkpoint_same"] = np.array(
            [np.array_equal(first[k], again[k]) for k in ("params", "centers")]
            + [len(before) > 0, stamps() == before])
        # random_state=None: each process draws its own seeds; rank 0's must win.
        results["unseeded_params"] = embedder(random_state=None, max_epochs=1)["params"]
        # Different data on each rank must fail on every rank, not hang.
        from skface.estimators import CenterLossEmbedder

        X = faces(20 + group.rank, 12, 0)
        try:
            CenterLossEmbedder(backbone=TinyBackbone, embedding_dim=8, max_epochs=1,
                               batch_size=8, random_state=0).fit(X, np.arange(len(X)) % 2)
        except ValueError as exc:
            errors["different_data"] = str(exc)
        # The same images in another order on rank 1: also different batches.
        X = faces(20, 12, 0)
        order = np.arange(20) if group.rank == 0 else np.roll(np.arange(20), 1)
        try:
            CenterLossEmbedder(backbone=TinyBackbone, embedding_dim=8, max_epochs=1,
                               batch_size=8, random_state=0).fit(X[order], order % 2)
        except ValueError as exc:
            errors["reordered_data"] = str(exc)
        rank = group.rank
    # Every thread torch.distributed started (gloo's, the TCPStore's) must be gone.
    results["threads_after_block"] = np.array(native_threads())
    np.savez(os.path.join(out, f"rank{rank}.npz"), **results)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(errors, f)


if __name__ == "__main__":
    if sys.argv[2:] == ["--exit-only"]:
        exit_only(sys.argv[1])
    else:
        main(sys.argv[1])
