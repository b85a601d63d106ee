"""Local contrast normalisation of images: subtractive and divisive, per image."""

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur", "local_contrast_normalize"]

# Above this radius the kernel's normaliser is the integral of the Gaussian, not
# a sum of millions of terms: the two agree to float64 rounding from sigma ~ 100.
_SUMMED_RADIUS = 4096

# Above this sigma the kernel is flat to float64 rounding over any image (k / sigma
# < 1e-8 for k < 1e7 pixels) and its tails past the edges are halves: larger ones
# are taken as this one, which keeps sigma * sqrt(2 pi) and 3 * sigma finite.
_FLAT_SIGMA = 1e15


def _radius(sigma):
    return max(1, int(round(3 * sigma)))


def _gaussian_kernel(sigma, dtype, device):
    radius = _radius(sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _folded_blur_matrix(sigma, size, dtype, device):
    """(size, size) matrix ``M``: ``M @ x`` is the blur of ``x`` with edges replicated.

    For a kernel at least as wide as the image. Replicating the edges to the
    kernel's radius ``r`` puts every weight that falls beyond an edge on that
    edge pixel, so ``M[i, j]`` is the kernel's weight ``w[j - i]`` inside the
    image plus, on the first and last columns, the kernel's tail past the
    edge. The result is what the padded convolution gives, without building
    a padding of ``r`` pixels (3 million for sigma=1e6).
    """
    if size == 1:
        return torch.ones(1, 1, dtype=dtype, device=device)
    radius = _radius(sigma)
    # (k / sigma)^2, not k^2 / sigma^2: sigma^2 overflows for sigma above 1e154.
    offsets = torch.arange(size, dtype=torch.float64)  # |k| < size <= radius
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    if radius <= _SUMMED_RADIUS:
        # The normaliser of _gaussian_kernel: the same truncated kernel, summed.
        all_offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        total = float(torch.exp(-0.5 * (all_offsets / sigma) ** 2).sum())
    else:
        # Sum over |k| <= r of exp(-k^2 / 2 sigma^2): the integral over
        # [-b, b], b = r + 1/2 (midpoint rule), plus Euler-Maclaurin's first
        # correction; what is left is about 1e-3 / sigma^4 relative.
        edge = radius + 0.5
        total = (sigma * math.sqrt(2 * math.pi) * math.erf(edge / (sigma * math.sqrt(2)))
                 + edge / (12 * sigma**2) * math.exp(-0.5 * (edge / sigma) ** 2))
    weights = weights / total
    # tail[m] = sum of w[k] for k >= m, from the symmetry sum_k w[k] = 1.
    inner = torch.cat([weights[:1], 2 * weights[1:]]).cumsum(0)  # sum over |k| <= m
    tail = torch.cat([((1 + weights[0]) / 2).reshape(1), (1 - inner[:-1]) / 2])
    index = torch.arange(size)
    matrix = weights[(index[None, :] - index[:, None]).abs()]
    matrix[:, 0] = tail
    matrix[:, -1] = tail.flip(0)
    return matrix.to(dtype=dtype, device=device)


def _weighted_sum(terms):
    """``sum(t * w for w, t in terms)`` one rounding operation at a time, in order.

    Each product and each partial sum is its own elementwise operation: no
    fused multiply-add and no reduction whose order depends on the tensor's
    size, so every output value is computed by the same float operations
    whatever the batch, on any device.
    """
    total = None
    for weight, term in terms:
        term = term * weight
        total = term if total is None else total + term
    return total


def _blur_axis(images, sigma, dim):
    """Blur along ``dim`` (-1: width, -2: height), edges replicated."""
    size = images.shape[dim]
    folded = _radius(sigma) >= size
    if images.dtype != torch.float64:
        # float32 (or lower) by shifted copies, elementwise: convolution and matmul
        # kernels round differently with the batch size (a one-channel conv2d by up
        # to 3e-7), and a face's features must not depend on its batch.
        if folded:
            matrix = _folded_blur_matrix(sigma, size, images.dtype, images.device)
            column = (-1, 1) if dim == -2 else (1, -1)
            # (M x)[i] = sum over j of M[i, j] x[j]: column j of M times line j of x.
            return _weighted_sum((matrix[:, j].reshape(column), images.narrow(dim, j, 1))
                                 for j in range(size))
        # Weights as numbers, from the CPU: a tensor on the images' device would
        # be read back per call (and meta tensors, shapes only, have no values).
        kernel = _gaussian_kernel(sigma, images.dtype, "cpu").tolist()
        radius = len(kernel) // 2
        padding = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
        padded = F.pad(images, padding, mode="replicate")
        return _weighted_sum((weight, padded.narrow(dim, k, size))
                             for k, weight in enumerate(kernel))
    if folded:
        # The kernel is wider than the image: fold it onto the image instead of
        # padding (memory and time grow with the kernel, not the image, otherwise).
        matrix = _folded_blur_matrix(sigma, size, images.dtype, images.device)
        return images @ matrix.T if dim == -1 else matrix @ images
    kernel = _gaussian_kernel(sigma, images.dtype, images.device)
    channels, radius = images.shape[1], len(kernel) // 2
    if dim == -1:
        weights, padding = kernel.view(1, 1, 1, -1), (radius, radius, 0, 0)
    else:
        weights, padding = kernel.view(1, 1, -1, 1), (0, 0, radius, radius)
    return F.conv2d(F.pad(images, padding, mode="replicate"),
                    weights.expand(channels, 1, *weights.shape[2:]), groups=channels)


def gaussian_blur(images, sigma):
    """Separable Gaussian blur of each channel, edges replicated.

    The kernel is truncated at ``round(3 * sigma)`` pixels. Along an axis
    where that is at least the image size, the kernel is folded onto the
    image (the weight past each edge goes to the edge pixel, as replicated
    edges would give it), so any ``sigma`` costs at most ``O(size^2)`` per
    row or column, not time and memory in proportion to ``sigma``. A
    sigma far larger than the image leaves nearly all the weight on the
    replicated edges: the blur tends to the mean of the four corner pixels.
    Below float64 each image's blur is computed by the same float
    operations whatever the batch it is in (float64 uses convolutions,
    whose rounding is far below its precision).

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    sigma : float
        Standard deviation in pixels, > 0 and finite.

    Returns
    -------
    blurred : Tensor of shape (n, C, H, W)
    """
    if not 0 < sigma < math.inf:
        raise ValueError(f"sigma must be > 0 and finite, got {sigma!r}.")
    sigma = min(float(sigma), _FLAT_SIGMA)
    # "replicate" works for any image size, even a one-pixel strip ("reflect" does not).
    return _blur_axis(_blur_axis(images, sigma, -1), sigma, -2)


def local_contrast_normalize(images, sigma=2.0, *, eps=1e-3):
    """Local contrast normalisation (Pinto et al., 2008; Jarrett et al., 2009).

    Each pixel minus the Gaussian-weighted mean of its neighbourhood (per
    channel), divided by the Gaussian-weighted standard deviation of that
    neighbourhood (over the channels together), but never by less than the
    image's mean local standard deviation, so that flat regions are not
    blown up into noise. What is left is edges and texture at a common
    contrast: brightness, colour casts and lighting gradients are gone.
    Each image is normalised by its own statistics, so the result does not
    depend on the rest of the batch: in float32 too, each image's values
    are computed by the same float operations whatever the batch (they
    differ from float64's by about 1e-6 on faces).

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
    # Centred first, each channel about its image-wide mean (summed in float64):
    # a blur of values near zero keeps float32's digits for the local
    # deviations, instead of losing them to a difference of two levels near 0.5.
    # The means are reductions, whose order may change with the batch; summed
    # in float64 they round to the same float32 whatever it is.
    images = images - _image_mean(images, dim=(2, 3))
    centred = images - gaussian_blur(images, sigma)
    squares = centred * centred
    # Summed over the channels slice by slice (elementwise, not a reduction).
    total = squares[:, :1]
    for channel in range(1, squares.shape[1]):
        total = total + squares[:, channel : channel + 1]
    local_std = gaussian_blur(total / squares.shape[1], sigma).sqrt()
    floor = _image_mean(local_std, dim=(1, 2, 3)).clamp(min=eps)
    return centred / torch.maximum(local_std, floor)


def _image_mean(images, dim):
    """Per-image mean over ``dim`` (kept), accumulated in float64, in the images' dtype."""
    return images.mean(dim=dim, keepdim=True, dtype=torch.float64).to(images.dtype)
