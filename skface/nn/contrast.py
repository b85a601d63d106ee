"""Local contrast normalisation of images: subtractive and divisive, per image."""

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur", "local_contrast_normalize"]


def _gaussian_kernel(sigma, dtype, device):
    radius = max(1, int(round(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(images, sigma):
    """Separable Gaussian blur of each channel, edges replicated.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    blurred : Tensor of shape (n, C, H, W)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}.")
    kernel = _gaussian_kernel(float(sigma), images.dtype, images.device)
    channels, radius = images.shape[1], len(kernel) // 2
    # "replicate" works for any image size, even a one-pixel strip ("reflect" does not).
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), rows,
                   groups=channels)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), cols,
                    groups=channels)


def local_contrast_normalize(images, sigma=2.0, *, eps=1e-3):
    """Local contrast normalisation (Pinto et al., 2008; Jarrett et al., 2009).

    Each pixel minus the Gaussian-weighted mean of its neighbourhood (per
    channel), divided by the Gaussian-weighted standard deviation of that
    neighbourhood (over the channels together), but never by less than the
    image's mean local standard deviation, so that flat regions are not
    blown up into noise. What is left is edges and texture at a common
    contrast: brightness, colour casts and lighting gradients are gone.
    Each image is normalised by its own statistics, so the result does not
    depend on the rest of the batch.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
        Floating point.
    sigma : float, default=2.0
        Neighbourhood size: standard deviation of the Gaussian window, in pixels.
    eps : float, default=1e-3
        Lowest divisor, in the images' units (a quarter of a grey level
        for images in [0, 1]): nearly constant images stay nearly zero
        instead of having their rounding noise blown up.

    Returns
    -------
    normalized : Tensor of shape (n, C, H, W)
        Zero local mean, about unit local standard deviation.
    """
    centred = images - gaussian_blur(images, sigma)
    local_std = gaussian_blur(centred.pow(2).mean(dim=1, keepdim=True), sigma).sqrt()
    floor = local_std.mean(dim=(1, 2, 3), keepdim=True).clamp(min=eps)
    return centred / torch.maximum(local_std, floor)
