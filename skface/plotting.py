"""Figures for face models: reconstructions, filters, ROC curves, denoising, error by age, alignment."""

import numpy as np

from ._validation import check_images

__all__ = [
    "plot_alignment",
    "plot_denoising",
    "plot_error_by_age",
    "plot_filters",
    "plot_keypoints",
    "plot_reconstructions",
    "plot_roc",
]


def _as_numpy(array):
    # Accept torch tensors without importing torch here.
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return array


def _displayable(images, image_shape):
    """(n, H, W) grey or (n, H, W, 3) RGB float images for imshow."""
    images, _ = check_images(_as_numpy(images), image_shape=image_shape)
    images = images.transpose(0, 2, 3, 1)
    return images[..., 0] if images.shape[-1] == 1 else images


def _image_grid(rows, n_cols, *, tile_size, cmap, labels=None, frame=False, extent=False):
    """A figure of image tiles: ``len(rows)`` grid rows per row of images.

    Image ``i`` of every entry of ``rows`` is shown in column ``i % n_cols``,
    the entries one above the other (an original above its reconstruction);
    more images wrap onto further groups of rows. Images are clipped to
    [0, 1]. Tiles without an image are left blank.

    Parameters
    ----------
    rows : list of ndarray of shape (n, H, W) or (n, H, W, 3), or of lists
        Images from :func:`_displayable` (or lists of such images, each its
        own size); the first ``n`` of each are shown.
    n_cols : int
        Images per row; at most ``n``.
    tile_size : float
        Inches per tile.
    cmap : str
        Colour map for grey images.
    labels : sequence of str, default=None
        Y-axis label of each entry of ``rows``, on the first column.
    frame : bool, default=False
        Keep the axes' frame around each image.
    extent : bool, default=False
        Put pixel edges at whole numbers (pixel (0, 0) spans [0, 1]), the
        coordinates keypoints are drawn in.

    Returns
    -------
    fig : matplotlib.figure.Figure
    tiles : list of list of matplotlib Axes
        ``tiles[i][r]`` shows image ``i`` of ``rows[r]``.
    """
    import matplotlib.pyplot as plt

    n = min(len(images) for images in rows)
    n_cols = max(1, min(n_cols, n))
    per_image = len(rows)
    n_rows = per_image * -(-n // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * tile_size, n_rows * tile_size), squeeze=False
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    tiles = []
    for i in range(n):
        group, col = divmod(i, n_cols)
        tiles.append([])
        for offset, images in enumerate(rows):
            ax = axes[per_image * group + offset, col]
            ax.set_axis_on()
            if not frame:
                for spine in ax.spines.values():
                    spine.set_visible(False)
            height, width = images[i].shape[:2]
            ax.imshow(np.clip(images[i], 0, 1), cmap=cmap, vmin=0, vmax=1,
                      extent=(0, width, height, 0) if extent else None)
            if col == 0 and labels:
                ax.set_ylabel(labels[offset], fontsize=8)
            tiles[-1].append(ax)
    return fig, tiles


def plot_reconstructions(
    originals,
    reconstructions,
    *,
    image_shape=None,
    n_images=10,
    n_cols=10,
    labels=("original", "reconstruction"),
    tile_size=1.2,
    cmap="gray",
):
    """Grid of originals, each above its reconstruction.

    Parameters
    ----------
    originals, reconstructions : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Images in any layout :func:`skface._validation.check_images` reads,
        with values in [0, 1] (or uint8); values outside are clipped.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Needed for flat rows.
    n_images : int, default=10
        Number of pairs shown (the first ones).
    n_cols : int, default=10
        Pairs per row pair; more images wrap onto further row pairs.
    labels : tuple of str, default=("original", "reconstruction")
        Row labels, on the first column.
    tile_size : float, default=1.2
        Inches per image.
    cmap : str, default="gray"
        Colour map for grey images.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    originals = _displayable(originals, image_shape)
    reconstructions = _displayable(reconstructions, image_shape)
    if originals.shape[1:] != reconstructions.shape[1:]:
        raise ValueError(
            f"originals are {originals.shape[1:]} images but reconstructions are "
            f"{reconstructions.shape[1:]}; they must have the same shape."
        )
    fig, _ = _image_grid(
        [originals[:n_images], reconstructions[:n_images]], n_cols,
        tile_size=tile_size, cmap=cmap, labels=labels,
    )
    fig.tight_layout(pad=0.2)
    return fig


def plot_filters(components, image_shape, *, n_filters=64, n_cols=8, tile_size=1.0, cmap="gray"):
    """First-layer filters (weights of each hidden unit) shown as images.

    Each filter is scaled on its own, symmetrically around zero, so mid grey
    is a zero weight.

    Parameters
    ----------
    components : array-like or tensor of shape (n_units, H*W*C)
        One row per hidden unit, in flat channels-last order, e.g.
        ``DBNReconstructor.components_``.
    image_shape : tuple of int (H, W) or (H, W, C)
        Shape of one image.
    n_filters : int, default=64
        Number of filters shown (the first ones).
    n_cols : int, default=8
        Filters per row.
    tile_size : float, default=1.0
        Inches per filter.
    cmap : str, default="gray"
        Colour map for grey filters.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    components = np.asarray(_as_numpy(components), dtype=np.float64)
    if components.ndim != 2:
        raise ValueError(
            f"components must be 2-D (n_units, n_pixels), got shape {components.shape}."
        )
    components = components[:n_filters]
    # Map each filter to [0, 1] with 0.5 for a zero weight.
    peak = np.abs(components).max(axis=1, keepdims=True)
    tiles = 0.5 + 0.5 * components / np.where(peak > 0, peak, 1.0)
    tiles = _displayable(tiles, image_shape)
    # Framed: the mid grey (zero) surround of neighbouring filters would merge.
    fig, _ = _image_grid([tiles], n_cols, tile_size=tile_size, cmap=cmap, frame=True)
    fig.tight_layout(pad=0.2)
    return fig


def plot_roc(y_true, scores, *, ax=None, label=None, log_fpr=False):
    """ROC curve(s) of face-verification pair scores, with the AUC in the legend.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for pairs of the same person, 0 otherwise.
    scores : array-like of shape (n_pairs,) or dict of str to array-like
        Pair similarities (e.g. :func:`skface.metrics.pair_scores`); a dict
        draws one curve per entry, labelled by its key.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    label : str, default=None
        Legend label of a single curve.
    log_fpr : bool, default=False
        Logarithmic false-positive axis, to read the low-FPR end.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .metrics import verification_roc, verification_roc_auc

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
    else:
        fig = ax.figure
    curves = scores if isinstance(scores, dict) else {label: scores}
    for name, values in curves.items():
        values = _as_numpy(values)
        fpr, tpr, _ = verification_roc(y_true, values)
        auc = verification_roc_auc(y_true, values)
        text = f"AUC = {auc:.3f}" if name is None else f"{name} (AUC = {auc:.3f})"
        ax.plot(fpr, tpr, label=text)
    if log_fpr:
        ax.set_xscale("log")
    else:
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_denoising(
    noisy,
    reconstructed,
    clean,
    *,
    image_shape=None,
    n_images=8,
    n_cols=8,
    labels=("noisy", "reconstructed", "clean"),
    tile_size=1.2,
    cmap="gray",
):
    """Grid of corrupted inputs, the model's reconstructions, and the clean images.

    Parameters
    ----------
    noisy, reconstructed, clean : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Images of one shape in any layout
        :func:`skface._validation.check_images` reads, values in [0, 1]
        (or uint8); values outside are clipped. ``reconstructed`` is e.g.
        ``ConvSDAEFeatures.reconstruct(noisy)``.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Needed for flat rows.
    n_images : int, default=8
        Number of triples shown (the first ones).
    n_cols : int, default=8
        Triples per row triple; more wrap onto further rows.
    labels : tuple of str, default=("noisy", "reconstructed", "clean")
        Row labels, on the first column.
    tile_size : float, default=1.2
        Inches per image.
    cmap : str, default="gray"
        Colour map for grey images.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    rows = [_displayable(images, image_shape) for images in (noisy, reconstructed, clean)]
    if len({r.shape[1:] for r in rows}) != 1:
        raise ValueError(
            f"noisy, reconstructed and clean images must have the same shape, got "
            f"{[r.shape[1:] for r in rows]}."
        )
    fig, _ = _image_grid(
        [r[:n_images] for r in rows], n_cols, tile_size=tile_size, cmap=cmap, labels=labels
    )
    fig.tight_layout(pad=0.2)
    return fig


def plot_error_by_age(age, abs_error, *, bin_width=5, ax=None, color="tab:blue"):
    """Mean absolute error of age predictions per age bin, to see where a model fails.

    Each bar is the mean of ``abs_error`` over the faces whose true age falls
    in the bin, labelled with how many faces that is; empty bins are left
    out. The dashed line is the overall mean.

    Parameters
    ----------
    age : array-like of shape (n,)
        True ages, in years.
    abs_error : array-like of shape (n,)
        Absolute errors ``|predicted - age|``, in years.
    bin_width : float, default=5
        Width of the age bins, starting at 0.
    ax : matplotlib Axes, default=None
        Drawn into; a new figure when None.
    color : str, default="tab:blue"

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    age = np.asarray(age, dtype=np.float64).ravel()
    abs_error = np.asarray(abs_error, dtype=np.float64).ravel()
    if len(age) != len(abs_error):
        raise ValueError(
            f"age and abs_error must have the same length, got {len(age)} and "
            f"{len(abs_error)}."
        )
    if bin_width <= 0:
        raise ValueError(f"bin_width must be positive, got {bin_width!r}.")
    bins = np.floor(age / bin_width).astype(np.int64)
    edges = np.unique(bins)
    means = np.array([abs_error[bins == b].mean() for b in edges])
    counts = np.array([(bins == b).sum() for b in edges])
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(edges) + 2), 3.5))
    else:
        fig = ax.figure
    left = edges * bin_width
    bars = ax.bar(left, means, width=0.9 * bin_width, align="edge", color=color)
    for bar, count in zip(bars, counts):
        ax.annotate(
            f"{count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center", va="bottom", fontsize=6,
        )
    if len(abs_error):
        ax.axhline(abs_error.mean(), color="k", linestyle="--", linewidth=1,
                   label=f"overall {abs_error.mean():.2f}")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("true age (years); bar labels: number of faces")
    ax.set_ylabel("MAE (years)")
    fig.tight_layout()
    return fig


def _points(points, n, name):
    """(n, K, 2) float points from (n, K, 2) or flat (n, 2K) keypoints, or None."""
    if points is None:
        return None
    points = np.asarray(_as_numpy(points), dtype=np.float64)
    if points.ndim == 2 and points.shape[1] % 2 == 0:
        points = points.reshape(len(points), -1, 2)
    if points.ndim != 3 or points.shape[2] != 2 or len(points) < n:
        raise ValueError(
            f"{name} must have shape (n, K, 2) or (n, 2K) with one row per image shown; "
            f"got {points.shape} for {n} images."
        )
    return points


def plot_keypoints(
    images,
    true=None,
    pred=None,
    *,
    image_shape=None,
    n_images=8,
    n_cols=4,
    tile_size=2.0,
    cmap="gray",
    labels=("true", "predicted"),
    marker_size=9.0,
):
    """Faces with their true and predicted keypoints drawn on them.

    True keypoints are green dots, predicted ones red crosses; missing
    (NaN) keypoints are not drawn. Coordinates are in pixels with the image
    spanning ``[0, W] x [0, H]`` (the centre of the top-left pixel at
    ``(0.5, 0.5)``), as :class:`~skface.estimators.KeypointRegressor` and
    the keypoint fetchers give them.

    Parameters
    ----------
    images : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        Faces in any layout :func:`skface._validation.check_images` reads,
        values in [0, 1] (or uint8).
    true, pred : array-like of shape (n, K, 2) or (n, 2K), default=None
        True and predicted (x, y) of each keypoint; either may be None.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Needed for flat rows.
    n_images : int, default=8
        Number of faces shown (the first ones).
    n_cols : int, default=4
        Faces per row.
    tile_size : float, default=2.0
        Inches per face.
    cmap : str, default="gray"
        Colour map for grey images.
    labels : tuple of str, default=("true", "predicted")
        Legend entries, on the first face.
    marker_size : float, default=9.0
        Marker area in points^2.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    faces = _displayable(images, image_shape)
    n_images = min(n_images, len(faces))
    true = _points(true, n_images, "true")
    pred = _points(pred, n_images, "pred")
    fig, tiles = _image_grid([faces[:n_images]], n_cols, tile_size=tile_size, cmap=cmap,
                             extent=True)
    height, width = faces.shape[1:3]
    for i, (ax,) in enumerate(tiles):
        if true is not None:
            ax.scatter(true[i, :, 0], true[i, :, 1], s=marker_size, c="lime",
                       edgecolors="k", linewidths=0.3, label=labels[0])
        if pred is not None:
            ax.scatter(pred[i, :, 0], pred[i, :, 1], s=marker_size * 1.5, c="red",
                       marker="x", linewidths=0.8, label=labels[1])
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
    if n_images and (true is not None or pred is not None) and labels:
        tiles[0][0].legend(loc="lower left", fontsize=6, framealpha=0.7, borderpad=0.3,
                           handletextpad=0.2)
    fig.tight_layout(pad=0.2)
    return fig


def plot_alignment(images, result, *, n_images=8, n_cols=4, tile_size=2.0, template=None):
    """A contact sheet: each raw image with its box and landmarks, above its aligned crop.

    Parameters
    ----------
    images : list of ndarray of shape (H_i, W_i[, C]) or array of equal-size images
        The images given to :meth:`skface.align.FaceAligner.align` (arrays,
        uint8 or floats in [0, 1]; read files with
        ``[np.asarray(PIL.Image.open(p)) for p in paths]``).
    result : Bunch
        What :meth:`~skface.align.FaceAligner.align` returned for them:
        ``images`` (the crops), ``found``, ``boxes``, ``landmarks``.
    n_images : int, default=8
        Number of images shown (the first ones).
    n_cols : int, default=4
        Images per row.
    tile_size : float, default=2.0
        Inches per tile.
    template : ndarray of shape (K, 2), default=None
        Template points drawn on every crop (e.g.
        :func:`skface.align.template_points`), to see the landmarks land.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Boxes in yellow, landmarks as red dots; images without a face are
        titled "no face: centre crop".
    """
    import matplotlib.patches as patches

    crops = np.asarray(result.images)
    n = min(n_images, len(crops))
    raw = [_display_one(images[i]) for i in range(n)]
    aligned = [_display_one(_crop_image(crops, i)) for i in range(n)]
    fig, tiles = _image_grid([raw, aligned], n_cols, tile_size=tile_size, cmap="gray",
                             frame=True, extent=True)
    for i, (raw_ax, crop_ax) in enumerate(tiles):
        if result.found[i]:
            x0, y0, x1, y1 = result.boxes[i]
            raw_ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                               edgecolor="yellow", linewidth=1.2))
            points = np.asarray(result.landmarks[i])
            if len(points) != 2:  # 2 points are the box's corners, already drawn
                raw_ax.scatter(points[:, 0], points[:, 1], s=4, c="red", linewidths=0)
        else:
            raw_ax.set_title("no face: centre crop", fontsize=8)
        if template is not None:
            crop_ax.scatter(template[:, 0], template[:, 1], s=4, c="cyan", linewidths=0)
    fig.tight_layout()
    return fig


def _display_one(image):
    """One image of any size for imshow: floats in [0, 1], grey as (H, W)."""
    image = np.asarray(image)
    image = image / 255.0 if image.dtype == np.uint8 else image
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def _crop_image(crops, i):
    """Crop ``i`` as an image, whatever layout (grey, channels last, flat) the aligner gave."""
    crop = crops[i]
    if crop.ndim == 1:
        grey = int(round(np.sqrt(crop.size)))
        channels = 1 if grey * grey == crop.size else 3
        side = int(round(np.sqrt(crop.size / channels)))
        crop = crop.reshape(side, side, channels)
    return crop
