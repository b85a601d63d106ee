"""DBN face reconstruction: fine-tuned DBN against PCA-64 and a random start; RBM against sklearn.

Prints one JSON object per row (see bench/README.md). Data: LFW deep-funneled,
grey 32x32 crops of the central 128x128 region; training on the 9,525 images
of the official ``dev_train`` people, testing on one image (the first by file
name) of each of the 1,711 ``dev_test`` people. Pixel values are in [0, 1].

    python bench/dbn.py --quick              # CPU smoke run, about two minutes
    python bench/dbn.py --threads 1          # full run: CPU, about 25 minutes on 2 cores
    python bench/dbn.py --device cuda        # full run on a GPU, with the all-LFW row

Rows: PCA-64, the fine-tuned DBN and the same network from a random start
(held-out MSE, in one table); a single RBM layer of skface against
scikit-learn's BernoulliRBM (seconds per epoch and reconstruction MSE);
on CUDA in the full mode, the whole DBN on all 13,233 faces at 64x64.
"""

import argparse
import sys
import time

import numpy as np

from _common import default_data_home, emit as _emit  # bench/ is on sys.path

BENCH = "dbn"
BOX = (61, 61, 189, 189)  # central 128x128 of the 250x250 image
LAYERS = (1000, 500, 250, 64)


def emit(what, value, unit, *, device, **kwargs):
    return _emit(BENCH, what, value, unit, device=device, **kwargs)


def load_faces(data_home, *, resize=0.25, subset=None):
    """(train, test) grey faces: dev_train, and the first image of each dev_test person."""
    from skface.datasets import fetch_lfw_people

    kw = dict(data_home=data_home, box=BOX, resize=resize, color=False, download_if_missing=False)
    if subset == "all":
        return fetch_lfw_people(subset="all", **kw).images, None
    train = fetch_lfw_people(subset="dev_train", **kw)
    test = fetch_lfw_people(subset="dev_test", **kw)
    order = np.argsort(test.filenames, kind="stable")
    _, first = np.unique(test.target[order], return_index=True)
    return train.images, test.images[order[first]]


def mse(a, b):
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return float(np.mean((a - b) ** 2))


def fit_dbn(train, *, pretrain_epochs, finetune_epochs, finetune_lr, finetune_weight_decay,
            batch_size, device, seed, verbose):
    from skface.estimators import DBNReconstructor

    dbn = DBNReconstructor(
        LAYERS,
        pretrain_epochs=pretrain_epochs,
        finetune_epochs=finetune_epochs,
        finetune_lr=finetune_lr,
        finetune_weight_decay=finetune_weight_decay,
        batch_size=batch_size,
        device=device,
        random_state=seed,
        verbose=verbose,
    )
    start = time.perf_counter()
    dbn.fit(train)
    wall = time.perf_counter() - start
    pretrain_s = sum(float(np.sum(net.history[:, "dur"])) for net in dbn.rbm_nets_ if net.history)
    finetune_s = float(np.sum(dbn.net_.history[:, "dur"])) if dbn.net_.history else 0.0
    return dbn, {"wall_s": round(wall, 1), "pretrain_s": round(pretrain_s, 1),
                 "finetune_s": round(finetune_s, 1)}


def reconstruction_table(train, test, args, device):
    """PCA-64, the fine-tuned DBN and the random start: held-out MSE."""
    from sklearn.decomposition import PCA

    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    start = time.perf_counter()
    pca = PCA(n_components=LAYERS[-1], random_state=0).fit(flat_train)
    pca_s = time.perf_counter() - start
    pca_mse = mse(flat_test, pca.inverse_transform(pca.transform(flat_test)))
    mean_face_mse = mse(flat_test, np.broadcast_to(flat_train.mean(0), flat_test.shape))
    data = {"n_train": len(train), "n_test": len(test), "image": list(train.shape[1:])}
    emit("pca64_test_mse", round(pca_mse, 6), "mse", device=device,
         config={**data, "n_components": 64, "fit_s": round(pca_s, 2)})
    emit("mean_face_test_mse", round(mean_face_mse, 6), "mse", device=device, config=data)

    common = dict(finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
                  finetune_weight_decay=args.finetune_weight_decay, batch_size=args.batch_size,
                  device=device, seed=args.seed, verbose=args.verbose)
    dbn, dbn_times = fit_dbn(train, pretrain_epochs=args.pretrain_epochs, **common)
    dbn_mse = -dbn.score(test)
    config = {**data, "layers": [train[0].size, *LAYERS], "pretrain_epochs": args.pretrain_epochs,
              "cd_k": dbn.cd_k, "pretrain_lr": [net.lr for net in dbn.rbm_nets_],
              "momentum": dbn.momentum, "weight_decay": dbn.weight_decay,
              "finetune_epochs": args.finetune_epochs, "finetune_lr": args.finetune_lr,
              "optimizer": "AdamW", "finetune_weight_decay": args.finetune_weight_decay,
              "batch_size": args.batch_size, "visible": "gaussian",
              "code": "linear", "train_mse": round(-dbn.score(train), 6), **dbn_times}
    emit("dbn_finetuned_test_mse", round(dbn_mse, 6), "mse", baseline=round(pca_mse, 6),
         device=device, config=config, bar="ratio <= 1.4 (baseline: PCA-64)",
         passed=bool(dbn_mse <= 1.4 * pca_mse))

    random, random_times = fit_dbn(train, pretrain_epochs=0, **common)
    random_mse = -random.score(test)
    emit("random_start_test_mse", round(random_mse, 6), "mse", baseline=round(dbn_mse, 6),
         device=device,
         config={**config, "pretrain_epochs": 0, "init": "N(0, 0.01^2) weights, zero biases",
                 "train_mse": round(-random.score(train), 6), **random_times},
         bar="ratio >= 3 (baseline: fine-tuned DBN)", passed=bool(random_mse >= 3 * dbn_mse))
    print(
        "\n| model | held-out MSE | vs PCA-64 |\n|---|---|---|\n"
        f"| PCA-64 | {pca_mse:.5f} | 1.00x |\n"
        f"| DBN {'-'.join(map(str, config['layers']))}, fine-tuned | {dbn_mse:.5f} | "
        f"{dbn_mse / pca_mse:.2f}x |\n"
        f"| same net, random start | {random_mse:.5f} | {random_mse / pca_mse:.2f}x |\n"
        f"| mean face | {mean_face_mse:.5f} | {mean_face_mse / pca_mse:.2f}x |\n",
        file=sys.stderr,
    )
    return dbn


def rbm_vs_sklearn(train, test, args, device):
    """One Bernoulli RBM, same shapes, batch size, epochs and PCD-1 as sklearn's BernoulliRBM."""
    import torch
    from scipy.special import expit
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    from skface.estimators import DBNReconstructor

    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    n_hidden, epochs, lr, batch = LAYERS[0], args.rbm_epochs, 0.1, args.batch_size
    config = {"n_visible": flat_train.shape[1], "n_hidden": n_hidden, "epochs": epochs,
              "lr": lr, "batch_size": batch, "algorithm": "PCD-1, no momentum, no weight decay",
              "n_train": len(train), "dtype": "float32", "threads": torch.get_num_threads()}

    theirs = BernoulliRBM(n_components=n_hidden, learning_rate=lr, batch_size=batch,
                          n_iter=epochs, random_state=args.seed)
    # NumPy's BLAS gets as many threads as torch, for a like-for-like timing.
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        start = time.perf_counter()
        theirs.fit(flat_train)
        sk_epoch_s = (time.perf_counter() - start) / epochs
    sk_recon = expit(theirs.transform(flat_test) @ theirs.components_ + theirs.intercept_visible_)
    sk_mse = mse(flat_test, sk_recon)

    ours = DBNReconstructor(
        (n_hidden,), visible_units="bernoulli", code_units="sigmoid", pretrain_epochs=epochs,
        pretrain_lr=lr, momentum=0.0, weight_decay=0.0, persistent=True, finetune_epochs=0,
        batch_size=batch, device=device, random_state=args.seed,
    )
    start = time.perf_counter()
    ours.fit(flat_train)
    our_epoch_s = (time.perf_counter() - start) / epochs
    our_mse = -ours.score(flat_test)

    emit("rbm_seconds_per_epoch", round(our_epoch_s, 4), "s/epoch", baseline=round(sk_epoch_s, 4),
         device=device, config={**config, "baseline": "sklearn BernoulliRBM (NumPy)",
                                "includes": "whole fit() wall time / epochs"})
    emit("rbm_test_recon_mse", round(our_mse, 6), "mse", baseline=round(sk_mse, 6), device=device,
         config={**config, "baseline": "sklearn BernoulliRBM (NumPy)",
                 "recon": "mean-field sigmoid(W^T sigmoid(W v + c) + b)"})


def full_lfw_gpu(args, device):
    """The whole DBN on all 13,233 faces at 64x64: wall time and images per second."""
    what = "dbn_all_lfw_64x64_fit"
    if not device.startswith("cuda") or args.quick:
        emit(what, None, "s", device=device, status="pending",
             config={"reason": "needs the CUDA full mode: python bench/dbn.py on a GPU machine"})
        return
    faces, _ = load_faces(args.data_home, resize=0.5, subset="all")
    dbn, times = fit_dbn(faces, pretrain_epochs=args.pretrain_epochs,
                         finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
                         finetune_weight_decay=args.finetune_weight_decay,
                         batch_size=args.batch_size, device=device, seed=args.seed,
                         verbose=args.verbose)
    epochs = args.pretrain_epochs * len(LAYERS) + args.finetune_epochs
    config = {"n_images": len(faces), "image": list(faces.shape[1:]),
              "layers": [faces[0].size, *LAYERS], "pretrain_epochs": args.pretrain_epochs,
              "finetune_epochs": args.finetune_epochs, "train_mse": round(-dbn.score(faces), 6),
              **times}
    emit(what, times["wall_s"], "s", device=device, config=config)
    emit("dbn_all_lfw_64x64_images_per_s", round(len(faces) * epochs / times["wall_s"], 1),
         "images/s", device=device, config={**config, "epochs_counted": epochs})


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="CPU smoke run: 2,000 training faces, a few epochs")
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="CD epochs per RBM (quick 2; full: CPU 20, CUDA 50)")
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="AdamW epochs (quick 5; full: CPU 50, CUDA 100)")
    parser.add_argument("--finetune-lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--finetune-weight-decay", type=float, default=0.2,
                        help="AdamW (decoupled) weight decay")
    parser.add_argument("--rbm-epochs", type=int, default=None,
                        help="epochs of the RBM comparison (quick 1; full 5)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from skface._device import resolve_device

    device = resolve_device(args.device)
    # The full CPU run is DBNReconstructor's defaults; it fits in about 25 minutes
    # on 2 cores. On CUDA the pretraining gets the reference's 50 epochs.
    mode = "quick" if args.quick else ("cuda" if device.startswith("cuda") else "cpu")
    defaults = {  # quick, cpu, cuda
        "pretrain_epochs": (2, 20, 50), "finetune_epochs": (5, 50, 100), "rbm_epochs": (1, 5, 10),
    }
    for name, values in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, values[("quick", "cpu", "cuda").index(mode)])

    train, test = load_faces(args.data_home)
    if args.quick:
        train = train[:2000]
    reconstruction_table(train, test, args, device)
    rbm_vs_sklearn(train, test, args, device)
    full_lfw_gpu(args, device)


if __name__ == "__main__":
    main()
