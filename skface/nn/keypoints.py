"""Batched keypoint-aware augmentation: flips with left/right swaps, rotation, scale, shift."""

import math

import torch
import torch.nn.functional as F

__all__ = [
    "IBUG_68_FLIP_PAIRS",
    "KAGGLE_15_FLIP_PAIRS",
    "augment_keypoints",
    "default_flip_pairs",
    "flip_keypoints",
    "flip_permutation",
    "random_affine",
    "warp_images",
    "warp_keypoints",
]

#: Kaggle Facial Keypoints Detection, in its column order (the ``keypoint_names`` of
#: ``fetch_facial_keypoints``):
#: eye centres, inner and outer eye corners, inner and outer eyebrow ends, mouth corners.
#: The nose tip and the two lip centres lie on the axis of symmetry.
KAGGLE_15_FLIP_PAIRS = ((0, 1), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12))

#: The iBUG 300-W 68-point layout (0-based): jaw 0-16, eyebrows 17-26, nose 27-35,
#: eyes 36-47, outer lips 48-59, inner lips 60-67. Points on the axis (chin 8, nose
#: bridge 27-30, nose 33, lip centres 51, 57, 62, 66) map to themselves.
IBUG_68_FLIP_PAIRS = (
    (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    (60, 64), (61, 63), (65, 67),
)  # fmt: skip


def default_flip_pairs(n_keypoints):
    """Built-in left/right pairs for a number of keypoints, or None when unknown.

    Parameters
    ----------
    n_keypoints : int
        15 is Kaggle's layout, 68 the iBUG 300-W one.

    Returns
    -------
    pairs : tuple of (int, int) or None
    """
    return {15: KAGGLE_15_FLIP_PAIRS, 68: IBUG_68_FLIP_PAIRS}.get(int(n_keypoints))


def flip_permutation(pairs, n_keypoints, device=None):
    """Index permutation that relabels keypoints after a mirror flip.

    Parameters
    ----------
    pairs : iterable of (int, int)
        Left/right pairs; each index appears at most once. Keypoints in no
        pair keep their index.
    n_keypoints : int
    device : torch.device, default=None

    Returns
    -------
    perm : LongTensor of shape (n_keypoints,)
        ``flipped[:, i] = mirrored[:, perm[i]]``; an involution.

    Raises
    ------
    ValueError
        If an index is out of range or appears twice.
    """
    perm = list(range(n_keypoints))
    seen = set()
    for pair in pairs:
        i, j = (int(v) for v in pair)
        for k in (i, j):
            if not 0 <= k < n_keypoints:
                raise ValueError(
                    f"flip pair {tuple(pair)} names keypoint {k}, outside 0..{n_keypoints - 1}."
                )
            if k in seen:
                raise ValueError(f"keypoint {k} appears in more than one flip pair.")
        seen.update((i, j))
        perm[i], perm[j] = j, i
    return torch.tensor(perm, dtype=torch.long, device=device)


def flip_keypoints(keypoints, width, perm=None):
    """Keypoints of the left-right mirror image.

    Coordinates are in pixels with the image spanning ``[0, width]`` (the
    centre of pixel column ``j`` is at ``j + 0.5``), so the mirror of ``x``
    is ``width - x``.

    Parameters
    ----------
    keypoints : Tensor of shape (n, K, 2)
        (x, y) in pixels; NaN stays NaN.
    width : float
        Image width in pixels.
    perm : LongTensor of shape (K,), default=None
        From :func:`flip_permutation`: the left eye of the mirror image is
        the right eye of the original. None keeps the labels.

    Returns
    -------
    flipped : Tensor of shape (n, K, 2)
    """
    flipped = torch.stack([width - keypoints[..., 0], keypoints[..., 1]], dim=-1)
    return flipped if perm is None else flipped[:, perm]


def random_affine(n, size, *, flip=False, rotation=0.0, scale=0.0, shift=0.0,
                  generator=None, device=None):
    """Random similarity transforms (with optional mirroring), one per image.

    Each image is mirrored left-right with probability 1/2 (if ``flip``),
    rotated about its centre by an angle uniform in ``[-rotation,
    rotation]`` degrees, zoomed by a factor uniform in ``[1 - scale, 1 +
    scale]`` and moved by a shift uniform in ``[-shift, shift]`` times the
    image size on each axis, in that order.

    Parameters
    ----------
    n : int
        Number of transforms.
    size : (int, int)
        Image (height, width) in pixels: rotations are true rotations in
        pixels also for non-square images.
    flip : bool, default=False
    rotation : float, default=0.0
        Largest rotation, in degrees.
    scale : float, default=0.0
        Largest relative zoom, in [0, 1).
    shift : float, default=0.0
        Largest shift as a fraction of the height and width.
    generator : torch.Generator, default=None
        On ``device``; global RNG when None.
    device : torch.device, default=None

    Returns
    -------
    matrix : Tensor of shape (n, 2, 3)
        Forward map in centred pixel coordinates ``q = p - (W/2, H/2)``:
        a point at ``q`` moves to ``matrix[:, :, :2] @ q + matrix[:, :, 2]``.
    flipped : BoolTensor of shape (n,)
        Which transforms mirror the image.
    """
    height, width = size
    kw = dict(generator=generator, device=device)

    def uniform(limit):
        return (2 * torch.rand(n, **kw) - 1) * limit

    flipped = torch.rand(n, **kw) < 0.5 if flip else torch.zeros(n, dtype=torch.bool,
                                                                  device=device)
    angle = uniform(math.radians(rotation)) if rotation else torch.zeros(n, device=device)
    zoom = 1 + uniform(scale) if scale else torch.ones(n, device=device)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    sign = 1 - 2 * flipped.float()
    matrix = torch.zeros(n, 2, 3, device=device)
    # zoom * R(angle) @ diag(sign, 1): mirror first, then rotate and zoom.
    matrix[:, 0, 0] = cos * sign
    matrix[:, 0, 1] = -sin
    matrix[:, 1, 0] = sin * sign
    matrix[:, 1, 1] = cos
    if shift:
        matrix[:, 0, 2] = uniform(shift * width)
        matrix[:, 1, 2] = uniform(shift * height)
    return matrix, flipped


def _grid_theta(matrix, size):
    """``affine_grid``'s theta (output -> input, normalised) for a forward pixel map.

    The linear part ``A = [[a, b], [c, d]]`` must be invertible (those of
    :func:`random_affine` always are: their determinant is plus or minus the
    zoom squared); a singular one gives infinities.
    """
    height, width = size
    a, b, tx = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2]
    c, d, ty = matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2]
    # A^-1 in closed form: torch.linalg.inv checks on the host that A is
    # invertible, which waits for the device once per batch on CUDA.
    det = a * d - b * c
    i00, i01, i10, i11 = d / det, -b / det, -c / det, a / det
    # Normalised coordinates are u = N q with N = diag(2/W, 2/H), so theta is
    # [N A^-1 N^-1 | -N A^-1 t]; N's entries are Python numbers, never a tensor
    # copied from the host.
    row0 = [i00, i01 * (height / width), -(i00 * tx + i01 * ty) * (2.0 / width)]
    row1 = [i10 * (width / height), i11, -(i10 * tx + i11 * ty) * (2.0 / height)]
    return torch.stack([torch.stack(row0, dim=1), torch.stack(row1, dim=1)], dim=1)


def warp_images(images, matrix, *, padding_mode="border"):
    """Apply per-image forward pixel maps to images, in one ``grid_sample`` call.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    matrix : Tensor of shape (n, 2, 3)
        From :func:`random_affine`.
    padding_mode : {"border", "zeros", "reflection"}, default="border"
        What fills the parts of the output that come from outside the image.

    Returns
    -------
    warped : Tensor of shape (n, C, H, W)
        Bilinear resampling; same dtype as ``images``.
    """
    size = tuple(images.shape[-2:])
    theta = _grid_theta(matrix.float(), size)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)
    return out.to(images.dtype)


def warp_keypoints(keypoints, matrix, size, flipped=None, perm=None):
    """Move keypoints with the images :func:`warp_images` transforms.

    Parameters
    ----------
    keypoints : Tensor of shape (n, K, 2)
        (x, y) in pixels, the image spanning ``[0, W] x [0, H]``; NaN (a
        missing keypoint) stays NaN.
    matrix : Tensor of shape (n, 2, 3)
        From :func:`random_affine`.
    size : (int, int)
        Image (height, width).
    flipped : BoolTensor of shape (n,), default=None
        Mirrored images, whose keypoints are relabelled by ``perm``.
    perm : LongTensor of shape (K,), default=None
        From :func:`flip_permutation`, on the keypoints' device: indexing
        CUDA keypoints with a CPU ``perm`` copies it over and waits for the
        copy, on every call.

    Returns
    -------
    warped : Tensor of shape (n, K, 2)
    """
    height, width = size
    centre = _xy(width / 2.0, height / 2.0, keypoints)
    q = keypoints - centre
    linear = matrix[:, :, :2].to(keypoints.dtype)
    offset = matrix[:, :, 2].to(keypoints.dtype)
    out = q @ linear.transpose(1, 2) + offset[:, None, :] + centre
    if flipped is not None and perm is not None:
        out = torch.where(flipped[:, None, None], out[:, perm], out)
    return out


def _xy(x, y, like):
    """The (2,) tensor ``(x, y)`` with ``like``'s dtype and device, filled there.

    ``torch.tensor([x, y], device="cuda")`` copies from the host and waits
    for the copy: a synchronisation on every call.
    """
    return torch.stack([like.new_full((), x), like.new_full((), y)])


def augment_keypoints(images, keypoints, *, perm=None, flip=False, rotation=0.0, scale=0.0,
                      shift=0.0, generator=None, padding_mode="border"):
    """Randomly transform a batch of images and their keypoints together.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    keypoints : Tensor of shape (n, K, 2)
        (x, y) in pixels of ``images``; NaN where missing.
    perm : LongTensor of shape (K,), default=None
        Left/right relabelling (:func:`flip_permutation`); needed for ``flip``.
        On the images' device (build it there once, not per batch).
    flip, rotation, scale, shift : see :func:`random_affine`
    generator : torch.Generator, default=None
        On the images' device.
    padding_mode : str, default="border"
        See :func:`warp_images`.

    Returns
    -------
    images : Tensor of shape (n, C, H, W)
    keypoints : Tensor of shape (n, K, 2)
    """
    if flip and perm is None:
        raise ValueError(
            "Flipping needs the left/right keypoint pairs (perm); without them a "
            "mirrored left eye would be labelled as the left eye."
        )
    if not (flip or rotation or scale or shift):
        return images, keypoints
    size = tuple(images.shape[-2:])
    matrix, flipped = random_affine(
        len(images), size, flip=flip, rotation=rotation, scale=scale, shift=shift,
        generator=generator, device=images.device,
    )
    return (
        warp_images(images, matrix, padding_mode=padding_mode),
        warp_keypoints(keypoints, matrix, size, flipped, perm),
    )
