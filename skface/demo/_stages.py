"""The demo's four stages: fit one estimator each, evaluate it, draw its figures."""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Context", "Figure", "Section", "STAGES"]

# The central 128x128 of the 250x250 LFW images, brought down to 32x32 for the DBN.
_DBN_BOX = (61, 61, 189, 189)
_SEED = 0
# On scikit-image's 80 training faces the presets' epochs, sized for ~10,000
# faces, are a few dozen steps: not enough to leave the mean face. These give a
# few thousand steps in seconds.
_SAMPLE_DBN = dict(hidden_layer_sizes=(256, 32), pretrain_epochs=20, finetune_epochs=200,
                   batch_size=16)
_SAMPLE_SDAE = dict(pretrain_epochs=60, lr=3e-3, batch_size=16)


@dataclass
class Figure:
    """A rendered figure of the report."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Section:
    """What one stage of the demo produced (or why it did not run)."""

    key: str
    title: str
    estimator: str
    status: str = "ok"  # "ok", "skipped" or "failed"
    data: str = ""
    metrics: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    headline: str = ""  # the result for the summary table, "value (what it is)"
    baseline: str = ""  # the same for the baseline measured beside it
    reason: str = ""  # why it was skipped or failed, and what to do about it
    fallback: str = ""  # set when it ran on the bundled sample: what is missing, how to get it
    # What longer runs measured (bench/RESULTS.md, section named), to read this run's numbers by.
    reference: str = ""
    # Model against baseline, machine-readable (see `compare`); {} for a stage without one.
    comparison: dict = field(default_factory=dict)


def compare(section, metric, baseline_metric, better, what, baseline_name):
    """Record whether the model beats its baseline on one metric; say so when it does not.

    Sets ``section.comparison`` to ``{"metric", "baseline_metric", "better"
    ("lower" or "higher"), "value", "baseline_value", "beats_baseline"}``, and
    when the model does not beat the baseline adds a sentence to the notes
    (the report and the console show it).
    """
    value, base = section.metrics[metric], section.metrics[baseline_metric]
    beats = value < base if better == "lower" else value > base
    section.comparison = {"metric": metric, "baseline_metric": baseline_metric,
                          "better": better, "value": value, "baseline_value": base,
                          "beats_baseline": bool(beats)}
    if not beats:
        section.notes.insert(0, (
            f"Loses to its baseline: {what} {value:.4g} for {section.estimator}, "
            f"{base:.4g} for {baseline_name} ({better} is better). With this preset's short "
            "training the model does not beat the simple baseline."
        ))


@dataclass
class Context:
    """Everything a stage needs: settings, where the data is, the device."""

    settings: object
    data_home: object
    device: str = "auto"
    verbose: int = 1
    download: bool = False
    _present: dict = field(default_factory=dict)

    def present(self, *names):
        """Whether every named dataset is in the data home (or may be downloaded)."""
        from skface.datasets import get_dataset_info

        for name in names:
            if name not in self._present:
                self._present[name] = get_dataset_info(name).is_present(self.data_home)
        return all(self._present[name] or (self.download and _downloads(name)) for name in names)

    def how_to_get(self, *names):
        """One line per missing dataset: what is missing and how to get it."""
        lines, seen = [], set()
        for name in names:
            if self.present(name):
                continue
            message = _missing_message(name, self.data_home)
            # LFW's people and pairs share their images: say what is missing once.
            key = message.replace(name, "")
            if key not in seen:
                seen.add(key)
                lines.append(f"{name}: {message}")
        return "\n".join(lines)

    def estimator_params(self):
        # Bars follow tqdm's rule (terminal or notebook only) unless the demo is quiet.
        return {"device": self.device, "random_state": _SEED,
                "verbose": "auto" if self.verbose else 0}

    def fetch(self, name, **kwargs):
        from skface.datasets import fetch

        with warnings.catch_warnings():
            # UTKFace's three malformed file names are reported in the Bunch's `skipped`.
            warnings.simplefilter("ignore", UserWarning)
            return fetch(name, data_home=self.data_home,
                         download_if_missing=self.download, **kwargs)


def _downloads(name):
    """Whether the dataset's fetcher can download every file it needs."""
    return name in {"lfw_people", "lfw_pairs"}


def _missing_message(name, data_home):
    """The fetcher's own explanation of what is missing, folder and source included."""
    from skface.datasets import get_fetcher

    try:
        get_fetcher(name)(data_home=data_home, download_if_missing=False)
    except FileNotFoundError as exc:
        message = " ".join(str(exc).split())
    except Exception as exc:  # noqa: BLE001 (a broken copy is still worth reporting)
        message = f"could not be read ({type(exc).__name__}: {exc})"
    else:
        return "present"
    absent = _absent_required(name, data_home)
    # The fetcher stops at the first thing missing (LFW's images before pairs.txt, the
    # training files before the test files): name every other one now, not next run.
    unnamed = [rel for rel in absent if not _names(message, rel.rstrip("/").split("|")[0])]
    if unnamed:
        from skface.datasets import get_dataset_info

        folder = get_dataset_info(name).path(data_home)
        message += f" Also needed in {folder}: {', '.join(unnamed)}."
    if _downloads(name):
        message += (f" Or let skface download it: `skface fetch {name} --download` "
                    "(or `skface demo --download`).")
    return message


def _names(message, path):
    """Whether ``message`` names ``path`` as a whole word (not "test" in "train-test")."""
    import re

    return re.search(rf"(?<![\w.-]){re.escape(path)}(?![\w.-])", message) is not None


def _absent_required(name, data_home):
    """The paths of the dataset's ``required`` list that are not in its folder."""
    from skface.datasets import get_dataset_info
    from skface.datasets._registry import _exists

    info = get_dataset_info(name)
    root = info.path(data_home)
    return [rel for rel in info.required
            if not any(_exists(root, alt) for alt in rel.split("|"))]


# One line per stage: what bench/RESULTS.md measured with longer training, so that a
# quick or smoke run's numbers can be read against it. Only measured numbers.
_REFERENCES = {
    "align": (
        "bench/RESULTS.md, \"Detection and alignment\" > \"Detection\": on all 770 test "
        "frames MTCNN finds 1.000 of the faces (IoU >= 0.5), the bundled cascade 0.727; "
        "the full preset scores all 770."
    ),
    "dbn": (
        "bench/RESULTS.md, \"DBN\": a 1024-1000-500-250-64 DBN (20 CD epochs a layer, 50 "
        "of fine-tuning, 9,525 faces) reaches held-out MSE 0.00534 against PCA-64's "
        "0.00393; \"Demo\": the quick preset measured 0.0063 against 0.0039."
    ),
    "sdae": (
        "bench/RESULTS.md, \"SDAE\" > \"The defaults\": ConvSDAEFeatures() at 48 px, five "
        "folds, gender 0.897 and age MAE 7.91 y (PCA-128: 0.837, 11.77); \"Demo\": the "
        "quick preset measured 0.873 and 10.15 y (PCA-128: 0.853, 11.8)."
    ),
    "keypoints": (
        "bench/RESULTS.md, \"Keypoints\": 64-px input, 30 epochs with augmentation, test "
        "RMSE 1.450 px (60 epochs: 1.224) against the mean shape's 4.923; \"Demo\": the "
        "quick preset measured 2.04 px."
    ),
    "embedding": (
        "bench/RESULTS.md, \"Embedding\": small_cnn width 32, 64-px crops, 16 epochs, "
        "View 1 accuracy 0.852 +- 0.032, AUC 0.931 (eigenfaces 0.683); \"Demo\": the quick "
        "preset measured 0.830 +- 0.029, AUC 0.910."
    ),
}


def _subsample(n_total, n_keep, rng):
    """Sorted indices of ``n_keep`` of ``n_total`` items (all of them for None)."""
    if n_keep is None or n_keep >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, n_keep, replace=False))


def _render(fig, name, title, caption=""):
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Figure(name=name, title=title, png=buffer.getvalue(), caption=caption)


_SAMPLE_DATA = "scikit-image's bundled LFW subset (25x25 grey): 80 faces to train, 20 to test."


def _sample_split(rng):
    """Scikit-image's 100 bundled LFW faces (25x25 grey, [0, 1]), split 80 / 20."""
    from skimage.data import lfw_subset

    # lfw_subset() holds 100 faces followed by 100 non-faces.
    faces = lfw_subset()[:100].astype(np.float32)
    order = rng.permutation(len(faces))
    return faces[order[:80]], faces[order[80:]]


def _fit_timed(estimator, *args):
    start = time.perf_counter()
    estimator.fit(*args)
    return time.perf_counter() - start


# -- stage 0: detection and alignment ---------------------------------------------------


def _mtcnn_ready(ctx):
    """Whether MTCNN's weights are cached, or the demo may download them."""
    from skface.align import fetch_mtcnn_weights

    if ctx.download:
        return True
    try:
        fetch_mtcnn_weights(download_if_missing=False)
    except FileNotFoundError:
        return False
    return True


def stage_align(ctx):
    """FaceDetector and FaceAligner: faces found, and aligned onto one template."""
    from skimage import data as skdata

    from skface.align import FaceAligner, FaceDetector, template_points
    from skface.align._aligner import _KEYPOINT_DROP, _KEYPOINT_FRAME
    from skface.metrics import box_iou
    from skface.plotting import plot_alignment

    section = Section("align", "Face detection and alignment", "FaceDetector, FaceAligner",
                      reference=_REFERENCES["align"])
    with_data = ctx.present("youtube_faces_keypoints")
    # The bundled photos get the bundled cascade: the same result on every machine.
    backend = "mtcnn" if with_data and _mtcnn_ready(ctx) else "cascade"
    detector = FaceDetector(backend, device=ctx.device)
    aligner = FaceAligner(detector, size=96, no_face="center").fit()
    if with_data:
        from pathlib import Path

        import pandas as pd

        folder = Path(ctx.data_home) / "youtube_faces_keypoints"
        table = pd.read_csv(folder / "test_frames_keypoints.csv")
        people = table.iloc[:, 0].str.rsplit("_", n=1).str[0]
        shown = np.flatnonzero(~people.duplicated().to_numpy())[:8]  # one frame a person
        n_scored = min(ctx.settings.align_n_frames, len(table))
        names = table.iloc[:n_scored, 0].tolist()
        paths = [str(folder / "test" / name) for name in names]
        points = table.iloc[:n_scored, 1:].to_numpy(np.float64).reshape(n_scored, 68, 2)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # counted below
            result = aligner.align(paths)
        section.seconds = time.perf_counter() - start
        truth = np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)
        iou = box_iou(result.boxes, truth)
        found = float(np.mean(iou >= 0.5))
        # Baseline: no detector at all, one fixed box per image where this set puts faces.
        boxes = _centre_boxes(paths, _KEYPOINT_FRAME, _KEYPOINT_DROP)
        centre = float(np.mean(box_iou(boxes, truth) >= 0.5))
        section.data = (
            f"The first {n_scored} YouTube Faces keypoint test frames (72-494 px, from their "
            f"files), {backend} backend; a face counts as found when its box overlaps the "
            "box of the 68 annotated points with IoU >= 0.5."
        )
        section.metrics = {"backend": backend, "n_images": n_scored,
                           "found_fraction": round(found, 4),
                           "centre_box_found_fraction": round(centre, 4),
                           "no_face": int((~result.found).sum()),
                           "images_per_second": round(n_scored / section.seconds, 1)}
        section.headline = f"{found:.1%} (faces found, IoU >= 0.5)"
        section.baseline = f"{centre:.1%} (a fixed centre box)"
        compare(section, "found_fraction", "centre_box_found_fraction", "higher",
                "faces found", "a fixed centre box")
        section.notes.append(
            f"Baseline: no detector, the same box in every image: centred, its side the "
            f"image's divided by {_KEYPOINT_FRAME} and {_KEYPOINT_DROP:.0%} of the image "
            "below its centre (this keypoint set's average framing of a face)."
        )
        images = [np.asarray(_read_rgb(folder / "test" / table.iloc[i, 0])) for i in shown]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            shown_result = aligner.align(images)
    else:
        camera = np.repeat(skdata.camera()[..., None], 3, axis=2)  # grey: as RGB like the others
        images = [skdata.astronaut(), camera, skdata.chelsea()]
        section.data = (
            "scikit-image's bundled photos (astronaut, camera, chelsea: a cat, so no face), "
            f"{backend} backend."
        )
        section.fallback = ctx.how_to_get("youtube_faces_keypoints")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the cat: reported below
            shown_result = aligner.align(images)
        section.seconds = time.perf_counter() - start
        section.metrics = {"backend": backend, "n_images": len(images),
                           "no_face": int((~shown_result.found).sum())}
        section.headline = f"{int(shown_result.found.sum())} of {len(images)} (images with a face)"
        section.baseline = "none (the bundled photos have no annotated face boxes)"
    if backend == "cascade":
        section.notes.append(
            "The cascade gives boxes only, so crops are aligned on the box (scale and shift); "
            "MTCNN's eyes, nose and mouth also fix the rotation. `skface demo --download` "
            "fetches MTCNN's weights (2 MB, pinned)."
        )
    n_points = 5 if backend == "mtcnn" else 68
    fig = plot_alignment(images, shown_result, n_images=8, n_cols=4,
                         template=template_points(n_points, 96, aligner.padding))
    section.figures.append(_render(
        fig, "alignment_contact_sheet", "Detected faces and their aligned crops",
        "Top: each image with its box (yellow) and landmarks (red). Below it: the aligned "
        "96x96 crop with the template's points (cyan). Images without a face are centre-cropped "
        "and titled so.",
    ))
    return section


def _centre_boxes(paths, frame, drop):
    """One fixed box per image file, (n, 4) x0, y0, x1, y1: where this keypoint set frames faces.

    Its side is the image's shorter side over ``frame``, its centre ``drop``
    times that side below the image's centre.
    """
    from PIL import Image

    boxes = []
    for path in paths:
        with Image.open(path) as im:  # the header only: the size
            width, height = im.size
        side = min(width, height)
        half = side / frame / 2
        cx, cy = width / 2, height / 2 + drop * side
        boxes.append((cx - half, cy - half, cx + half, cy + half))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _read_rgb(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


# -- stage 1: DBN ----------------------------------------------------------------------


def stage_dbn(ctx):
    """DBNReconstructor: codes and reconstructions of faces it never saw, against PCA."""
    from sklearn.decomposition import PCA

    from skface.estimators import DBNReconstructor
    from skface.plotting import plot_reconstructions

    s = ctx.settings
    rng = np.random.RandomState(_SEED)
    section = Section("dbn", "Deep belief network: face reconstruction", "DBNReconstructor",
                      reference=_REFERENCES["dbn"])
    if ctx.present("lfw_people"):
        common = dict(box=_DBN_BOX, resize=0.25, color=False)
        train = ctx.fetch("lfw_people", subset="dev_train", **common).images
        test = ctx.fetch("lfw_people", subset="dev_test", **common)
        _, first = np.unique(test.target, return_index=True)  # one face per unseen person
        test = test.images[np.sort(first)]
        section.data = (
            f"LFW deep-funneled, 32x32 grey: trained on faces of the official dev_train "
            f"people, tested on one face of each of the {len(test)} dev_test people "
            "(never seen in training)."
        )
    else:
        train, test = _sample_split(rng)
        section.data = _SAMPLE_DATA + " No LFW in the data home."
        section.fallback = ctx.how_to_get("lfw_people")
    params = dict(hidden_layer_sizes=s.dbn_layers, pretrain_epochs=s.dbn_pretrain_epochs,
                  finetune_epochs=s.dbn_finetune_epochs)
    if section.fallback:
        params.update(_SAMPLE_DBN)
    train = train[_subsample(len(train), s.dbn_n_train, rng)]
    dbn = DBNReconstructor(**params, **ctx.estimator_params())
    section.seconds = _fit_timed(dbn, train)
    recon = dbn.reconstruct(test)
    n_code = params["hidden_layer_sizes"][-1]
    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    pca = PCA(n_code, random_state=_SEED).fit(flat_train)
    pca_recon = pca.inverse_transform(pca.transform(flat_test))
    section.metrics = {
        "n_train": len(train),
        "n_test": len(test),
        "layers": "-".join(
            str(n) for n in (int(np.prod(train.shape[1:])), *params["hidden_layer_sizes"])
        ),
        "test_mse": float(np.mean((recon - test) ** 2)),
        f"pca{n_code}_test_mse": float(np.mean((pca_recon - flat_test) ** 2)),
        "fit_seconds": round(section.seconds, 1),
    }
    section.headline = f"{section.metrics['test_mse']:.4f} (held-out MSE)"
    section.baseline = (f"{section.metrics[f'pca{n_code}_test_mse']:.4f} "
                        f"(PCA-{n_code}, same code size)")
    compare(section, "test_mse", f"pca{n_code}_test_mse", "lower", "held-out MSE",
            f"PCA-{n_code}")
    fig = plot_reconstructions(test[:10], recon[:10], n_images=10, n_cols=10)
    section.figures.append(_render(
        fig, "dbn_reconstructions", "Reconstructions of unseen faces",
        f"Top: test faces. Bottom: the DBN's reconstruction from its {n_code}-number code.",
    ))
    return section


# -- stage 2: SDAE ---------------------------------------------------------------------


def stage_sdae(ctx):
    """ConvSDAEFeatures: denoising, then gender and age heads on the frozen features."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skface.estimators import ConvSDAEFeatures
    from skface.plotting import plot_denoising, plot_error_by_age

    s = ctx.settings
    rng = np.random.RandomState(_SEED)
    section = Section(
        "sdae", "Convolutional stacked denoising autoencoder: age and gender",
        "ConvSDAEFeatures", reference=_REFERENCES["sdae"],
    )
    # Every layer's code, averaged with the mirror image's: better features for the
    # linear heads at no training cost (bench/RESULTS.md); reconstruct is unchanged.
    sdae = ConvSDAEFeatures(
        s.sdae_channels, pretrain_epochs=s.sdae_pretrain_epochs, batch_size=64,
        input_size=s.sdae_size, feature_layers="all", test_flip=True,
        # The demo's measured setting: raw pixels (its denoising pictures and
        # corrupt() are in pixel space), masking noise, its heads' own scaler.
        contrast=None, noise="mask", noise_level=0.3, feature_scale=None,
        **ctx.estimator_params(),
    )
    if not ctx.present("utkface"):
        train, test = _sample_split(rng)
        section.data = _SAMPLE_DATA + " No UTKFace in the data home, so no age or gender heads."
        section.fallback = ctx.how_to_get("utkface")
        section.notes.append("Skipped the age and gender heads and the age-error plot.")
        sdae.set_params(**_SAMPLE_SDAE)
        section.seconds = _fit_timed(sdae, train)
        section.metrics = {"n_train": len(train), "n_test": len(test),
                           **_denoising_metrics(sdae, test),
                           "fit_seconds": round(section.seconds, 1)}
        section.headline = f"{section.metrics['denoised_mse']:.4f} (denoised MSE)"
        section.baseline = f"{section.metrics['noisy_mse']:.4f} (noisy input MSE)"
        compare(section, "denoised_mse", "noisy_mse", "lower", "denoised MSE",
                "the noisy input")
        _denoising_figure(section, sdae, test, rng, plot_denoising)
        return section

    faces = ctx.fetch("utkface", size=s.sdae_size, color=True)
    keep = _subsample(len(faces.images), s.sdae_n_faces, rng)
    X, gender, age = faces.images[keep], faces.gender[keep], faces.age[keep].astype(float)
    X_train, X_test, g_train, g_test, a_train, a_test = train_test_split(
        X, gender, age, test_size=0.2, stratify=gender, random_state=_SEED
    )
    section.data = (
        f"UTKFace, {s.sdae_size}x{s.sdae_size} RGB: {len(X_train)} faces to train, "
        f"{len(X_test)} held out (stratified on gender)."
    )
    section.seconds = _fit_timed(sdae, X_train)
    F_train, F_test = sdae.transform(X_train), sdae.transform(X_test)
    # Strong regularisation: the flattened features outnumber the training faces.
    gender_head = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    age_head = make_pipeline(StandardScaler(), Ridge(alpha=1000.0))
    gender_head.fit(F_train, g_train)
    age_head.fit(F_train, a_train)
    age_pred = age_head.predict(F_test)

    flat_train, flat_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    n_pca = min(128, len(X_train) - 1)
    pca_gender = make_pipeline(PCA(n_pca, random_state=_SEED), StandardScaler(),
                               LogisticRegression(max_iter=2000)).fit(flat_train, g_train)
    pca_age = make_pipeline(PCA(n_pca, random_state=_SEED), Ridge()).fit(flat_train, a_train)
    section.metrics = {
        "n_train": len(X_train),
        "n_test": len(X_test),
        "n_features": int(F_train.shape[1]),
        **_denoising_metrics(sdae, X_test),
        "gender_accuracy": float(gender_head.score(F_test, g_test)),
        "age_mae": float(np.mean(np.abs(age_pred - a_test))),
        f"pca{n_pca}_gender_accuracy": float(pca_gender.score(flat_test, g_test)),
        f"pca{n_pca}_age_mae": float(np.mean(np.abs(pca_age.predict(flat_test) - a_test))),
        "fit_seconds": round(section.seconds, 1),
    }
    m = section.metrics
    section.headline = (f"{m['gender_accuracy']:.3f} / {m['age_mae']:.1f} y "
                        "(gender accuracy / age MAE)")
    section.baseline = (f"{m[f'pca{n_pca}_gender_accuracy']:.3f} / "
                        f"{m[f'pca{n_pca}_age_mae']:.1f} y (PCA-{n_pca} + same heads)")
    compare(section, "gender_accuracy", f"pca{n_pca}_gender_accuracy", "higher",
            "gender accuracy", f"PCA-{n_pca} + the same heads")
    section.notes.append(
        "Heads: StandardScaler + LogisticRegression(C=0.01) for gender, StandardScaler + "
        "Ridge(alpha=1000) for age, on the frozen encoder's features (every layer's code, "
        "averaged with the mirror image's); the PCA rows are the same heads on PCA of the "
        "raw pixels."
    )
    _denoising_figure(section, sdae, X_test, rng, plot_denoising)
    fig = plot_error_by_age(a_test, np.abs(age_pred - a_test))
    section.figures.append(_render(
        fig, "sdae_age_error", "Age error by age",
        "Mean absolute error of the Ridge head per 5-year age bin of the held-out faces "
        "(where the model does badly).",
    ))
    return section


def _denoising_metrics(sdae, clean):
    """Mean squared error to the clean faces: of the noisy input, and of its reconstruction."""
    noisy = sdae.corrupt(clean, random_state=_SEED)
    return {
        "noisy_mse": float(np.mean((noisy - clean) ** 2)),
        "denoised_mse": float(np.mean((sdae.reconstruct(noisy) - clean) ** 2)),
    }


def _denoising_figure(section, sdae, images, rng, plot_denoising):
    clean = images[:8]
    noisy = sdae.corrupt(clean, random_state=rng)
    fig = plot_denoising(noisy, sdae.reconstruct(noisy), clean)
    section.figures.append(_render(
        fig, "sdae_denoising", "Denoising held-out faces",
        f"Top: faces with {sdae.noise_level:.0%} of their pixels masked. Middle: the "
        "autoencoder's reconstruction. Bottom: the clean faces.",
    ))


# -- stage 3: keypoints ----------------------------------------------------------------


def stage_keypoints(ctx):
    """KeypointRegressor: 68 facial keypoints on unseen frames."""
    from skface.estimators import KeypointRegressor
    from skface.metrics import keypoint_rmse
    from skface.plotting import plot_keypoints

    s = ctx.settings
    rng = np.random.RandomState(_SEED)
    section = Section("keypoints", "Facial keypoints", "KeypointRegressor",
                      reference=_REFERENCES["keypoints"])
    if not ctx.present("youtube_faces_keypoints"):
        section.status = "skipped"
        section.reason = ctx.how_to_get("youtube_faces_keypoints")
        return section
    train = ctx.fetch("youtube_faces_keypoints", subset="train", size=96)
    test = ctx.fetch("youtube_faces_keypoints", subset="test", size=96)
    keep = _subsample(len(train.images), s.kp_n_train, rng)
    X, y = train.images[keep], train.keypoints[keep]
    section.data = (
        f"YouTube Faces 68-point keypoints, grey, resized to {s.kp_size}x{s.kp_size} inside "
        f"the model: {len(X)} training frames, the {len(test.images)} official test frames. "
        "RMSE in pixels of a 96x96 face."
    )
    model = KeypointRegressor(
        s.kp_channels, convs_per_layer=1, input_size=s.kp_size, max_epochs=s.kp_epochs,
        batch_size=32, **ctx.estimator_params(),
    )
    section.seconds = _fit_timed(model, X, y)
    pred = model.predict(test.images)
    mean_shape = np.broadcast_to(y.mean(axis=0), test.keypoints.shape)
    per_point = keypoint_rmse(test.keypoints, pred, per_keypoint=True)
    section.metrics = {
        "n_train": len(X),
        "n_test": len(test.images),
        "test_rmse": float(keypoint_rmse(test.keypoints, pred)),
        "mean_shape_rmse": float(keypoint_rmse(test.keypoints, mean_shape)),
        "worst_keypoints": [int(i) for i in np.argsort(per_point)[::-1][:3]],
        "fit_seconds": round(section.seconds, 1),
    }
    section.headline = f"{section.metrics['test_rmse']:.2f} px (test RMSE, 96-px face)"
    section.baseline = f"{section.metrics['mean_shape_rmse']:.2f} px (mean shape)"
    compare(section, "test_rmse", "mean_shape_rmse", "lower", "test RMSE", "the mean shape")
    section.notes.append(
        "The official test frames show the same people as the training frames, which "
        "flatters the model; flips, small rotations, zooms and shifts were on in training."
    )
    _, first = np.unique(test.identity, return_index=True)  # a different person per tile
    shown = np.sort(first)[:8]
    fig = plot_keypoints(test.images[shown], test.keypoints[shown], pred[shown],
                         n_images=8, n_cols=4)
    section.figures.append(_render(
        fig, "keypoints_test_faces", "Predicted and true keypoints on test faces",
        "Green: annotated keypoints. Red: predicted.",
    ))
    return section


# -- stage 4: embeddings ---------------------------------------------------------------


def stage_embedding(ctx):
    """CenterLossEmbedder: LFW View 1 verification, against eigenfaces."""
    from sklearn.decomposition import PCA

    from skface.estimators import CenterLossEmbedder
    from skface.metrics import pair_scores, verification_accuracy, verification_roc_auc
    from skface.plotting import plot_roc
    from skface.preprocessing import lfw_crop

    s = ctx.settings
    rng = np.random.RandomState(_SEED)
    section = Section("embedding", "Face embeddings: LFW verification", "CenterLossEmbedder",
                      reference=_REFERENCES["embedding"])
    if not ctx.present("lfw_people", "lfw_pairs"):
        section.status = "skipped"
        section.reason = ctx.how_to_get("lfw_people", "lfw_pairs")
        return section
    crop = lfw_crop(s.emb_size, jitter=max(s.emb_size // 8, 1), color=True)
    people = ctx.fetch("lfw_people", subset="dev_train", **crop)
    test = ctx.fetch("lfw_pairs", subset="dev_test", **crop)
    keep = _subsample(len(people.images), s.emb_n_train, rng)
    X, y = people.images[keep], people.target[keep]
    section.data = (
        f"LFW View 1, no identity leak: trained on {len(X)} images of "
        f"{len(np.unique(y))} dev_train people ({s.emb_size}-px random crops, flips); "
        f"scored on the {len(test.target)} pairsDevTest pairs, whose people it never saw."
    )
    model = CenterLossEmbedder(
        "small_cnn", backbone_params={"width": s.emb_width}, crop_size=s.emb_size,
        max_epochs=s.emb_epochs, batch_size=128, lr=0.1, weight_decay=5e-3,
        **ctx.estimator_params(),
    )
    section.seconds = _fit_timed(model, X, y)

    n = len(test.pairs)
    flat = test.pairs.reshape(2 * n, *test.pairs.shape[2:])
    scores = pair_scores(model.transform(flat).reshape(n, 2, -1))
    # Eigenfaces baseline on grey versions of the same crops.
    grey = X.mean(axis=-1).reshape(len(X), -1)
    pca = PCA(min(128, len(X) - 1), whiten=True, random_state=_SEED).fit(grey)
    eig = pca.transform(flat.mean(axis=-1).reshape(2 * n, -1)).reshape(n, 2, -1)
    eig_scores = pair_scores(eig)
    acc = verification_accuracy(test.target, scores)
    eig_acc = verification_accuracy(test.target, eig_scores)
    section.metrics = {
        "n_train": len(X),
        "n_test_pairs": n,
        "verification_accuracy": float(acc.accuracy),
        "verification_accuracy_std": float(acc.std),
        "roc_auc": float(verification_roc_auc(test.target, scores)),
        "eigenfaces_verification_accuracy": float(eig_acc.accuracy),
        "eigenfaces_roc_auc": float(verification_roc_auc(test.target, eig_scores)),
        "fit_seconds": round(section.seconds, 1),
    }
    m = section.metrics
    section.headline = (f"{m['verification_accuracy']:.3f} / {m['roc_auc']:.3f} "
                        "(LFW View 1 accuracy / AUC)")
    section.baseline = (f"{m['eigenfaces_verification_accuracy']:.3f} / "
                        f"{m['eigenfaces_roc_auc']:.3f} (eigenfaces)")
    compare(section, "verification_accuracy", "eigenfaces_verification_accuracy", "higher",
            "LFW View 1 accuracy", "eigenfaces")
    section.notes.append(
        "Accuracy: threshold chosen by 10-fold cross-validation inside the test pairs (each "
        "fold's threshold from the other nine), as LFW View 2 does. Backbone: small_cnn, the "
        "quick stand-in for NN4.Small2."
    )
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    plot_roc(test.target, scores, ax=ax, label="CenterLossEmbedder")
    plot_roc(test.target, eig_scores, ax=ax, label="eigenfaces (PCA)")
    section.figures.append(_render(
        fig, "embedding_roc", "LFW pairsDevTest ROC",
        "Cosine similarity of the 128-d embeddings (flip-averaged) against whitened PCA.",
    ))
    return section


STAGES = (
    ("align", stage_align),
    ("dbn", stage_dbn),
    ("sdae", stage_sdae),
    ("keypoints", stage_keypoints),
    ("embedding", stage_embedding),
)
