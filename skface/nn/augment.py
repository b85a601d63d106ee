"""Batched image augmentation on tensors: per-sample crops, flips and shifts, no Python loop."""

import torch

__all__ = ["center_crop", "flip_shift", "random_crop", "random_flip"]


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
