"""Batched image augmentation on tensors: crops, flips, shifts and similarity jitter, no Python loop."""

import torch

__all__ = ["center_crop", "flip_shift", "random_crop", "random_flip", "random_similarity"]


def center_crop(images, size):
    """The central ``size`` window of each image.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    size : int or (int, int)
        Crop (height, width); at most the image size.

    Returns
    -------
    crops : Tensor of shape (n, C, size_h, size_w)
        A view.
    """
    height, width = _pair(size)
    top = (images.shape[2] - height) // 2
    left = (images.shape[3] - width) // 2
    return images[:, :, top : top + height, left : left + width]


def random_crop(images, size, generator=None):
    """An independent, uniformly placed ``size`` window of each image.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    size : int or (int, int)
        Crop (height, width); at most the image size.
    generator : torch.Generator, default=None
        On the images' device.

    Returns
    -------
    crops : Tensor of shape (n, C, size_h, size_w)
    """
    n, _, full_h, full_w = images.shape
    height, width = _pair(size)
    if (height, width) == (full_h, full_w):
        return images
    device = images.device
    top = torch.randint(0, full_h - height + 1, (n, 1), generator=generator, device=device)
    left = torch.randint(0, full_w - width + 1, (n, 1), generator=generator, device=device)
    rows = top + torch.arange(height, device=device)  # (n, h)
    cols = left + torch.arange(width, device=device)  # (n, w)
    return _gather(images, rows, cols)


def random_flip(images, generator=None, p=0.5):
    """Mirror each image left-right with probability ``p``.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    generator : torch.Generator, default=None
        On the images' device.
    p : float, default=0.5

    Returns
    -------
    images : Tensor of shape (n, C, H, W)
    """
    flip = _coin(len(images), p, generator, images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def flip_shift(images, *, flip=True, max_shift=0, generator=None):
    """Randomly flip each image left-right and shift it by whole pixels.

    One gather for the batch, so there is no per-image Python work; edges
    are extended by repeating the border pixels. The pixels move exactly
    (no resampling blur). The image is shifted first and then mirrored, so
    a flipped image's shift is mirrored too (it is drawn symmetrically).

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    flip : bool, default=True
        Flip each image with probability 1/2, drawn as :func:`random_flip`
        draws it.
    max_shift : int, default=0
        Largest shift in pixels, drawn uniformly per image and axis from
        ``-max_shift`` to ``max_shift``.
    generator : torch.Generator, default=None
        Random source on the images' device (global RNG when None).

    Returns
    -------
    augmented : Tensor of shape (n, C, H, W)
        ``images`` itself when neither flipping nor shifting.
    """
    if not flip and max_shift <= 0:
        return images
    n, _, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device).expand(n, height)
    cols = torch.arange(width, device=device).expand(n, width)
    if flip:
        mirrored = _coin(n, 0.5, generator, device)
        cols = torch.where(mirrored[:, None], width - 1 - cols, cols)
    if max_shift > 0:
        shifts = torch.randint(
            -max_shift, max_shift + 1, (n, 2), generator=generator, device=device
        )
        # Output pixel j shows input pixel j + shift (x first, then y), clamped
        # to the image: the border pixels repeat.
        cols = (cols + shifts[:, :1]).clamp(0, width - 1)
        rows = (rows + shifts[:, 1:]).clamp(0, height - 1)
    out = _gather(images, rows, cols)
    # In the input's memory format: convolutions may round differently on the
    # other one, and channels-last input is what CUDA models are given.
    if images.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


def random_similarity(images, *, shift=0.0, scale=0.0, rotation=0.0, generator=None):
    """Move, zoom and turn each image by its own small random similarity.

    Each image is resampled (bilinear, edges extended by their border
    pixels) through a similarity about its centre, drawn independently:
    a shift uniform in ``[-shift, shift]`` times the image's side on each
    axis, a zoom ``exp(u)`` with ``u`` uniform in ``[-scale, scale]``, and
    a turn uniform in ``[-rotation, rotation]`` degrees.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
        Floating point.
    shift : float, default=0.0
        Largest shift, as a fraction of the side.
    scale : float, default=0.0
        Largest log zoom (0.08: about 8 % larger or smaller).
    rotation : float, default=0.0
        Largest turn, in degrees.
    generator : torch.Generator, default=None
        Random source on the images' device (global RNG when None).

    Returns
    -------
    jittered : Tensor of shape (n, C, H, W)
        ``images`` itself when all three are 0.
    """
    if shift <= 0 and scale <= 0 and rotation <= 0:
        return images
    n = len(images)
    device, dtype = images.device, images.dtype

    def uniform(limit, size):
        return (2 * torch.rand(size, generator=generator, device=device) - 1).to(dtype) * limit

    zoom = torch.exp(uniform(scale, n))
    angle = torch.deg2rad(uniform(rotation, n))
    move = uniform(2 * shift, (n, 2))  # grid coordinates span 2 per side
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output to input coordinates: the inverse of the drawn
    # similarity, so that content moves by +move and grows by zoom.
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * move[:, 0] + sin * move[:, 1])], dim=1),
        torch.stack([-sin, cos, -(-sin * move[:, 0] + cos * move[:, 1])], dim=1),
    ], dim=1)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def _coin(n, p, generator, device):
    """``n`` independent booleans, each true with probability ``p``."""
    return torch.rand(n, generator=generator, device=device) < p


def _gather(images, rows, cols):
    """Pixels ``rows[i] x cols[i]`` of each image: (n, h) and (n, w) indices -> (n, C, h, w)."""
    batch = torch.arange(len(images), device=images.device)[:, None, None]
    # One gather for the whole batch, on the channels-last view: (n, h, w, C).
    picked = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)


def _pair(size):
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)
