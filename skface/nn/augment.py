"""Batched image augmentation on tensors: per-sample random crops and flips, no Python loop."""

import torch

__all__ = ["center_crop", "random_crop", "random_flip"]


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
    rows = (top + torch.arange(height, device=device))[:, :, None]  # (n, h, 1)
    cols = (left + torch.arange(width, device=device))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=device)[:, None, None]
    # One gather for the whole batch, on the channels-last view: (n, h, w, C).
    crops = images.permute(0, 2, 3, 1)[batch, rows, cols]
    return crops.permute(0, 3, 1, 2)


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
    flip = torch.rand(len(images), generator=generator, device=images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def _pair(size):
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)
