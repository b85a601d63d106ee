"""CenterLossEmbedder on LFW: View 1 verification, training and inference speed, identification.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs the real data (``SKFACE_DATA`` or ``--data-home``).

    python bench/embedding.py            # full run on CUDA: NN4.Small2, 96 px crops of 104 px
    python bench/embedding.py --quick --threads 1   # reduced CPU run (below)

Full mode (the issue's reference recipe): NN4.Small2, RGB, random 96 px crops
of 104 px face crops and flips, 30 epochs, batch 256, SGD Nesterov 0.9 with a
one-cycle rate peaking at 0.1, weight decay 5e-3, center-loss weight 0.1 and
rate 0.5, logits of the unit embedding scaled by 16, flip-averaged test
embeddings, bf16 on CUDA. Quick mode changes only the network and sizes:
``small_cnn`` (width 32) on random 64 px crops of 72 px face crops, 16
epochs, batch 128; identification with ``small_cnn`` width 16, 10 epochs;
speed rows on 2,048 images for 2 epochs.

Rows
- View 1 protocol, no identity leak: trained only on the images of the
  official ``dev_train`` people; scored on the 1,000 ``pairsDevTest`` pairs:
  accuracy with the threshold chosen by 10-fold cross-validation inside the
  test pairs, ROC AUC, and accuracy with the threshold chosen on the 2,200
  ``pairsDevTrain`` pairs (whose people were trained on: optimistic
  threshold). Baseline in the same run: eigenfaces (whitened PCA-128 on
  64x64 grey crops of the same faces, cosine scores).
- Training speed: images per second of ``CenterLossEmbedder.fit`` against a
  plain hand-written PyTorch loop training the same module (same criterion,
  optimiser, schedule, augmentation) on the same tensors; inference images
  per second of ``transform`` against a plain forward loop.
- Identification: ``make_pipeline(CenterLossEmbedder(...), SVC())`` on the
  LFW people with at least 20 images, stratified k-fold accuracy.
"""

import argparse
import functools
import copy
import math
import os
import time
from pathlib import Path

import numpy as np

from _common import emit as common_emit  # noqa: E402  (bench/ is on sys.path)

BENCH = "embedding"






def _settings(args):
    """Estimator settings of the run: the issue's reference on CUDA, reduced on the CPU."""
    if args.quick:
        return dict(
            backbone="small_cnn", backbone_params={"width": 32}, input_size=64, jitter=8,
            max_epochs=args.epochs or 16, batch_size=128, lr=0.1,
        )
    return dict(
        backbone="nn4_small2", backbone_params=None, input_size=96, jitter=8,
        max_epochs=args.epochs or 30, batch_size=256, lr=0.1,
    )


def _embedder(cfg, device, seed=0, **overrides):
    from skface.estimators import CenterLossEmbedder

    params = dict(
        backbone=cfg["backbone"], backbone_params=cfg["backbone_params"],
        embedding_dim=128, lambda_center=0.1, alpha_center=0.5, logit_scale=16.0,
        crop_size=cfg["input_size"], flip=True, test_flip=True,
        max_epochs=cfg["max_epochs"], lr=cfg["lr"], lr_schedule="onecycle", momentum=0.9,
        weight_decay=5e-3, batch_size=cfg["batch_size"], device=device, random_state=seed,
    )
    params.update(overrides)
    return CenterLossEmbedder(**params)


def _public_cfg(cfg):
    return {k: v for k, v in cfg.items() if v is not None}


def _pairs_scores(embedder, pairs):
    from skface.metrics import pair_scores

    n = len(pairs)
    flat = pairs.reshape(2 * n, *pairs.shape[2:])
    return pair_scores(embedder.transform(flat).reshape(n, 2, -1))


def _verification_rows(emit, name, y_test, s_test, y_dev, s_dev, config, baseline=None):
    from skface.metrics import best_threshold, verification_accuracy, verification_roc_auc

    cv = verification_accuracy(y_test, s_test)
    auc = verification_roc_auc(y_test, s_test)
    t_dev, acc_dev_own = best_threshold(y_dev, s_dev)
    fixed = verification_accuracy(y_test, s_test, threshold=t_dev)
    b = baseline or {}
    emit(f"View 1 pairsDevTest accuracy, 10-fold CV threshold ({name})", round(cv.accuracy, 4),
         "accuracy", baseline=b.get("cv"),
         config={**config, "std": round(cv.std, 4), "n_pairs": len(y_test),
                 "cv_thresholds_mean": round(float(cv.thresholds.mean()), 4)})
    emit(f"View 1 pairsDevTest ROC AUC ({name})", round(auc, 4), "auc", baseline=b.get("auc"),
         config=config)
    emit(f"View 1 pairsDevTest accuracy, threshold from pairsDevTrain ({name})",
         round(fixed.accuracy, 4), "accuracy", baseline=b.get("dev"),
         config={**config, "threshold": round(t_dev, 4),
                 "pairsDevTrain_accuracy_at_it": round(acc_dev_own, 4),
                 "note": "pairsDevTrain people were trained on: optimistic threshold"})
    return {"cv": round(cv.accuracy, 4), "auc": round(auc, 4), "dev": round(fixed.accuracy, 4)}


def bench_view1(args, emit, device):
    from sklearn.decomposition import PCA

    from skface.datasets import fetch_lfw_pairs, fetch_lfw_people
    from skface.preprocessing import LFW_FACE_BOX, lfw_crop

    cfg = _settings(args)
    home = args.data_home

    # Eigenfaces baseline: whitened PCA-128 on 64x64 grey crops of the same face box.
    grey = dict(box=LFW_FACE_BOX, resize=(64, 64), color=False)
    t0 = time.perf_counter()
    people = fetch_lfw_people(data_home=home, subset="dev_train", **grey)
    dev = fetch_lfw_pairs(data_home=home, subset="dev_train", **grey)
    test = fetch_lfw_pairs(data_home=home, subset="dev_test", **grey)
    pca = PCA(128, whiten=True, random_state=0).fit(people.images.reshape(len(people.images), -1))

    def pca_scores(pairs):
        from skface.metrics import pair_scores

        z = pca.transform(pairs.reshape(2 * len(pairs), -1)).reshape(len(pairs), 2, -1)
        return pair_scores(z)

    eig_cfg = {"model": "whitened PCA-128 + cosine", "input": "64x64 grey",
               "box": list(LFW_FACE_BOX), "n_train_images": len(people.images),
               "n_train_people": len(people.target_names)}
    baseline = _verification_rows(
        emit, "eigenfaces", test.target, pca_scores(test.pairs), dev.target,
        pca_scores(dev.pairs), eig_cfg,
    )
    del people, dev, test

    # The embedder, on colour crops of input_size + jitter pixels.
    crop = lfw_crop(cfg["input_size"], jitter=cfg["jitter"], color=True)
    people = fetch_lfw_people(data_home=home, subset="dev_train", **crop)
    dev = fetch_lfw_pairs(data_home=home, subset="dev_train", **crop)
    test = fetch_lfw_pairs(data_home=home, subset="dev_test", **crop)
    load_s = time.perf_counter() - t0
    # No identity leak: the dev_train people and the dev_test pairs' people are disjoint.
    test_names = {n for pair in test.names for n in pair} if hasattr(test, "names") else set()
    overlap = len(test_names & set(people.target_names))

    embedder = _embedder(cfg, device, verbose=args.verbose)
    start = time.perf_counter()
    embedder.fit(people.images, people.target)
    fit_s = time.perf_counter() - start
    config = {
        **_public_cfg(cfg), "crop": crop["resize"], "n_train_images": len(people.images),
        "n_train_people": len(people.target_names), "train_people_in_test_pairs": overlap,
        "fit_s": round(fit_s, 1), "data_load_s": round(load_s, 1),
        "final_train_loss": round(float(embedder.net_.history[-1, "train_loss"]), 4),
        "lambda_center": 0.1, "alpha_center": 0.5, "logit_scale": 16.0,
        "optimizer": "SGD nesterov 0.9, wd 5e-3, one-cycle", "test_flip": True,
    }
    _verification_rows(
        emit, f"CenterLossEmbedder {cfg['backbone']}", test.target,
        _pairs_scores(embedder, test.pairs), dev.target, _pairs_scores(embedder, dev.pairs),
        config, baseline=baseline,
    )


def _plain_loop(module, criterion, x, y, *, epochs, batch_size, lr, crop, device, seed):
    """The hand-written reference: same module, loss, optimiser, schedule and augmentation."""
    import torch

    from skface._device import autocast
    from skface.nn.augment import random_crop, random_flip

    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                weight_decay=5e-3)
    n = len(x)
    steps = epochs * math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, cycle_momentum=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    module.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:
                continue
            xb = random_flip(random_crop(x[index], crop, generator), generator)
            yb = y[index]
            with autocast(device):
                emb = module(xb)
                logits = module.head(emb)
            loss = criterion(emb, logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            criterion.center_loss.update_centers(emb.detach(), yb)
            scheduler.step()
            total += loss.detach()
        losses.append(total)
    return torch.stack(losses).cpu()  # one sync, as the estimator does


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_speed(args, emit, device):
    import torch

    from skface.datasets import fetch_lfw_people
    from skface._device import autocast
    from skface.estimators._stream import to_tensor
    from skface.preprocessing import lfw_crop

    cfg = _settings(args)
    crop = lfw_crop(cfg["input_size"], jitter=cfg["jitter"], color=True)
    people = fetch_lfw_people(data_home=args.data_home, subset="dev_train", **crop)
    n = args.speed_images or (len(people.images) if not args.quick else 2048)
    images, target = people.images[:n], people.target[:n]
    epochs = 2 if args.quick else 3
    bs = cfg["batch_size"]
    config = {**_public_cfg(cfg), "max_epochs": epochs, "crop": crop["resize"], "n_images": n,
              "batch_size": bs, "augmentation": "random crop + flip", "center_loss": True}

    def fit_estimator():
        est = _embedder(cfg, device, max_epochs=epochs)
        _sync(device)
        start = time.perf_counter()
        est.fit(images, target)
        _sync(device)
        return est, time.perf_counter() - start

    def fit_plain(template):
        # The same module class and initial weights as the estimator's, data on the device.
        module = copy.deepcopy(template.net_.module_)
        criterion = copy.deepcopy(template.net_.criterion_)
        x = to_tensor(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), device)
        classes, y = np.unique(target, return_inverse=True)
        y = torch.as_tensor(y, device=device)
        _sync(device)
        start = time.perf_counter()
        _plain_loop(module, criterion, x, y, epochs=epochs, batch_size=bs, lr=cfg["lr"],
                    crop=cfg["input_size"], device=device, seed=0)
        _sync(device)
        return module, time.perf_counter() - start

    template = _embedder(cfg, device, max_epochs=0).fit(images, target)
    # Warm-up (allocator, cuDNN autotuning) for both, then the timed runs, twice each,
    # interleaved; the best of each is kept.
    est_times, plain_times = [], []
    for _ in range(2):
        est, t_est = fit_estimator()
        _, t_plain = fit_plain(template)
        est_times.append(t_est)
        plain_times.append(t_plain)
    t_est, t_plain = min(est_times), min(plain_times)
    per_epoch = [float(d) for d in est.net_.history[:, "dur"]]
    emit("fit images/s: CenterLossEmbedder.fit vs plain PyTorch loop (same module & data)",
         round(n * epochs / t_est, 1), "img/s", baseline=round(n * epochs / t_plain, 1),
         config={**config, "fit_s": [round(t, 2) for t in est_times],
                 "plain_s": [round(t, 2) for t in plain_times],
                 "timing": "whole fit() call incl. validation and host-to-device copy"})
    emit("fit images/s, epochs only (skorch history dur) vs plain PyTorch loop",
         round(n / float(np.mean(per_epoch)), 1), "img/s",
         baseline=round(n * epochs / t_plain, 1), config={**config, "epoch_s": per_epoch})

    # Inference: transform (no test-time flip) against a plain batched forward.
    n_inf = min(len(people.images), 4096 if args.quick else len(people.images))
    batch = people.images[:n_inf]
    est.set_params(test_flip=False)
    est.transform(batch[:512])
    _sync(device)
    start = time.perf_counter()
    est.transform(batch)
    _sync(device)
    t_transform = time.perf_counter() - start
    module = est.net_.module_.eval()
    x = to_tensor(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), device)
    size = cfg["input_size"]
    top = (x.shape[2] - size) // 2
    with torch.no_grad(), autocast(device):
        module(x[:512, :, top:top + size, top:top + size])
        _sync(device)
        start = time.perf_counter()
        for i in range(0, n_inf, 512):
            module(x[i:i + 512, :, top:top + size, top:top + size]).float()
        _sync(device)
    t_plain_inf = time.perf_counter() - start
    emit("inference images/s: transform (no test flip) vs plain forward loop",
         round(n_inf / t_transform, 1), "img/s", baseline=round(n_inf / t_plain_inf, 1),
         config={**_public_cfg(cfg), "n_images": n_inf, "batch_size": 512,
                 "max_epochs": epochs,
                 "precision": "bf16 autocast" if device.startswith("cuda") else "float32",
                 "timing": "transform includes validation and host-to-device copy; "
                           "plain loop has the data on the device"})


def bench_identification(args, emit, device):
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    from skface.datasets import fetch_lfw_people
    from skface.preprocessing import lfw_crop

    cfg = _settings(args)
    if args.quick:
        cfg = {**cfg, "backbone_params": {"width": 16}, "max_epochs": args.ident_epochs or 10}
    crop = lfw_crop(cfg["input_size"], jitter=cfg["jitter"], color=True)
    people = fetch_lfw_people(data_home=args.data_home, min_faces_per_person=20, **crop)
    pipe = make_pipeline(_embedder(cfg, device), SVC())
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    start = time.perf_counter()
    scores = cross_val_score(pipe, people.images, people.target, cv=cv)
    elapsed = time.perf_counter() - start
    counts = np.bincount(people.target)
    emit("identification accuracy: make_pipeline(CenterLossEmbedder, SVC()), LFW >= 20 images",
         round(float(scores.mean()), 4), "accuracy",
         baseline=round(float(counts.max() / counts.sum()), 4),
         config={**_public_cfg(cfg), "crop": crop["resize"], "n_images": len(people.images),
                 "n_people": len(people.target_names), "cv": f"stratified {args.folds}-fold",
                 "fold_scores": [round(float(s), 4) for s in scores],
                 "std": round(float(scores.std()), 4), "svc": "SVC() defaults (RBF, C=1)",
                 "baseline": "majority class", "elapsed_s": round(elapsed, 1)})


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="reduced CPU run (small_cnn, 64 px crops, fewer epochs)")
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA", "../shared/data"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids oversubscription on shared cores)")
    parser.add_argument("--epochs", type=int, default=None, help="View 1 training epochs")
    parser.add_argument("--ident-epochs", type=int, default=None)
    parser.add_argument("--folds", type=int, default=5, help="identification CV folds")
    parser.add_argument("--speed-images", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=["view1", "speed", "ident"],
                        choices=["view1", "speed", "ident"])
    parser.add_argument("--out", default=None, help="also append the JSON rows to this file")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    args.data_home = str(Path(args.data_home).resolve())

    import torch

    from skface._device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    emit = functools.partial(common_emit, BENCH, device=device, out=args.out)
    for name in args.only:
        {"view1": bench_view1, "speed": bench_speed, "ident": bench_identification}[name](
            args, emit, device)


if __name__ == "__main__":
    main()
