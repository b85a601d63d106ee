"""Convolutional denoising autoencoder layers, their corruption, and the stack they form."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# flip_shift lives with the other augmentations; re-exported for existing imports.
from .augment import flip_shift

__all__ = [
    "NOISE_KINDS",
    "ChannelStandardize",
    "ConvDAEStack",
    "DenoisingConvLayer",
    "corrupt",
    "flip_shift",
    "pool_features",
    "trunk_features",
]

NOISE_KINDS = ("mask", "gaussian")
POOLINGS = ("flatten", "avg", "max", "avgmax")
_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}


def corrupt(x, kind="mask", level=0.25, *, generator=None):
    """A corrupted copy of ``x`` for denoising training.

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W)
        Clean input (standardised pixels or a layer's activations).
    kind : {"mask", "gaussian"}, default="mask"
        "mask" sets a random fraction ``level`` of the entries to zero
        (masking noise; zero is the mean of standardised pixels) and scales
        the rest by ``1 / (1 - level)``, as dropout does, so that the
        expected input, and with it the batch-norm statistics the encoder
        learns, match the clean inputs it sees after training.
        "gaussian" adds zero-mean Gaussian noise whose standard deviation is
        ``level`` times each channel's standard deviation in the batch, so
        one level means the same for pixels and for activations of any scale.
    level : float, default=0.25
        Fraction masked (in [0, 1)) or relative noise standard deviation
        (>= 0). 0 returns ``x`` unchanged.
    generator : torch.Generator, default=None
        Random source, on ``x``'s device (global RNG when None).

    Returns
    -------
    noisy : Tensor of shape (n, C, H, W)
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}.")
    if level < 0 or (kind == "mask" and level >= 1):
        raise ValueError(f"level must be in [0, 1) for masking or >= 0, got {level!r}.")
    if level == 0:
        return x
    if kind == "mask":
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
        return x * (keep.to(x.dtype) / (1.0 - level))
    # Per-channel scale, detached: the noise is data, not part of the graph.
    scale = x.detach().float().std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return x + (noise * scale * level).to(x.dtype)


def pool_features(maps, pooling="avgmax"):
    """2-D features from feature maps.

    Parameters
    ----------
    maps : Tensor of shape (n, C, h, w)
    pooling : {"flatten", "avg", "max", "avgmax"}, default="avgmax"
        "flatten" keeps every value (``C * h * w`` features, channel-major);
        "avg" and "max" pool each channel globally (``C`` features);
        "avgmax" concatenates both (``2 * C``: all averages, then all maxima).

    Returns
    -------
    features : Tensor of shape (n, n_features)
    """
    if pooling == "flatten":
        return maps.flatten(1)
    if pooling == "avg":
        return maps.mean(dim=(2, 3))
    if pooling == "max":
        return maps.amax(dim=(2, 3))
    if pooling == "avgmax":
        return torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")


def trunk_features(trunk, x, layers=None, pooling="flatten", test_flip=False):
    """Features of images from one or several layers of an encoder trunk.

    Parameters
    ----------
    trunk : nn.Sequential
        ``ConvDAEStack.trunk()`` (or a copy): the standardisation, then one
        encoder per layer.
    x : Tensor of shape (n, C, H, W)
        Images.
    layers : sequence of int, default=None
        Indices (0 = bottom) of the layers whose codes make the features,
        in increasing order; None is the top layer alone.
    pooling : {"flatten", "avg", "max", "avgmax"}, default="flatten"
        As in :func:`pool_features`, per layer. With "flatten" the codes of
        lower layers are first average-pooled to the grid (h, w) of the
        highest layer used: every layer then describes the same regions of the face,
        each with its own channels, from edges and texture at the bottom to
        parts at the top (a "hypercolumn").
    test_flip : bool, default=False
        Average the features of each image with those of its left-right
        mirror image (``x.flip(-1)``), so that both get the same features.

    Returns
    -------
    features : Tensor of shape (n, n_features)
        Layer by layer, bottom first.
    """
    if test_flip:
        return (trunk_features(trunk, x, layers, pooling)
                + trunk_features(trunk, x.flip(-1), layers, pooling)) / 2
    n_layers = len(trunk) - 1
    layers = [n_layers - 1] if layers is None else list(layers)
    h = trunk[0](x)
    maps = []
    for index, encoder in enumerate(trunk[1 : max(layers) + 2]):
        h = encoder(h)
        if index in layers:
            maps.append(h)
    if pooling == "flatten":
        grid = maps[-1].shape[-2:]
        maps = [m if m.shape[-2:] == grid else F.adaptive_avg_pool2d(m, grid) for m in maps]
    return torch.cat([pool_features(m, pooling) for m in maps], dim=1)


class ChannelStandardize(nn.Module):
    """Subtract a per-channel mean and divide by a per-channel standard deviation.

    Optionally after local contrast normalisation of each image
    (:func:`~skface.nn.contrast.local_contrast_normalize`), so that the
    statistics, the encoder and every head built on its trunk all see the
    same contrast-normalised input.

    Parameters
    ----------
    n_channels : int
    contrast : float or None, default=None
        Sigma of the local contrast normalisation applied first, in pixels;
        None standardises the pixels as they are.

    Attributes
    ----------
    mean, std : buffers of shape (1, n_channels, 1, 1)
        Identity (0 and 1) until :meth:`fit` or a loaded state dict sets them.
    """

    def __init__(self, n_channels, contrast=None):
        super().__init__()
        self.contrast = None if contrast is None else float(contrast)
        self.register_buffer("mean", torch.zeros(1, n_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, n_channels, 1, 1))

    def prepare(self, x):
        """The images the statistics describe: contrast-normalised when ``contrast`` is set."""
        if self.contrast is None:
            return x
        from .contrast import local_contrast_normalize

        # float32, which local_contrast_normalize computes batch-independently (a
        # face's features must not depend on its batch) and centred (within about
        # 1e-6 of float64 on faces); float64 runs at 1/30-1/60 of the speed on GPUs.
        if x.device.type != "cuda":  # no autocast there (meta tensors: shapes only)
            return local_contrast_normalize(x.float(), self.contrast)
        # Outside autocast: the local standard deviation divides, and bfloat16's
        # 3 digits would show up as noise in flat regions.
        with torch.autocast("cuda", enabled=False):
            return local_contrast_normalize(x.float(), self.contrast)

    @torch.no_grad()
    def fit(self, x):
        """Set the statistics from images ``x`` of shape (n, C, H, W); returns self."""
        x = self.prepare(x.float())
        self.mean.copy_(x.mean(dim=(0, 2, 3), keepdim=True))
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        # A constant channel stays as it is rather than blowing up.
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    @torch.no_grad()
    def set_stats(self, mean, std):
        """Set the statistics from per-channel ``mean`` and ``std`` arrays; returns self.

        For statistics gathered in batches (sets streamed from disk) of
        :meth:`prepare`'s output; a constant channel keeps a standard
        deviation of 1, as in :meth:`fit`.
        """
        mean = torch.as_tensor(np.asarray(mean, np.float32)).reshape(self.mean.shape)
        std = torch.as_tensor(np.asarray(std, np.float32)).reshape(self.std.shape)
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, x):
        return (self.prepare(x) - self.mean) / self.std

    def inverse(self, z):
        """Back from standardised values to the input's scale (contrast-normalised if set)."""
        return z * self.std + self.mean

    def extra_repr(self):
        return "" if self.contrast is None else f"contrast={self.contrast}"


def _conv_out(size, kernel_size):
    """Spatial size after a stride-2 convolution padded by ``kernel_size // 2``."""
    pad = kernel_size // 2
    return (size + 2 * pad - kernel_size) // 2 + 1


class _Upsample(nn.Module):
    """Stride-2 transposed convolution to an exact output size, then BN + activation."""

    def __init__(self, in_channels, out_channels, kernel_size, post):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2
        )
        self.post = post

    def forward(self, h, output_size):
        # output_size picks the output padding, so odd sizes come back exactly.
        return self.post(self.deconv(h, output_size=list(output_size)))


class DenoisingConvLayer(nn.Module):
    """One convolutional denoising autoencoder layer.

    The encoder is ``n_convs`` convolutions, each followed by batch
    normalisation and an activation, the last with stride 2: it halves the
    height and width. The decoder is a stride-2
    transposed convolution back to the input's size, followed by batch
    normalisation and the activation unless ``linear_output`` (for the
    first layer, which reconstructs standardised pixels).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default=3
        Odd kernel size of every convolution.
    n_convs : int, default=1
        Convolutions in the encoder: ``n_convs - 1`` at full resolution
        (``out_channels`` each), then the stride-2 one. Two give a deeper,
        more accurate trunk for supervised fine-tuning at about twice the cost.
    batch_norm : bool, default=True
        Batch normalisation after the encoder's convolution (and the
        decoder's, unless ``linear_output``).
    activation : {"relu", "elu", "leaky_relu", "gelu"}, default="relu"
    linear_output : bool, default=False
        Decoder output without normalisation or activation.

    Attributes
    ----------
    encoder : nn.Sequential
        ``(n, in_channels, H, W) -> (n, out_channels, ceil(H/2), ceil(W/2))``.
    decoder : module
        ``decoder(h, output_size)``: back to ``(n, in_channels, *output_size)``.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size=3,
        *,
        n_convs=1,
        batch_norm=True,
        activation="relu",
        linear_output=False,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}.")
        if n_convs < 1:
            raise ValueError(f"n_convs must be a positive int, got {n_convs!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}."
            )
        self.kernel_size = kernel_size
        act = _ACTIVATIONS[activation]
        blocks = []
        for i in range(n_convs):
            blocks += [
                nn.Conv2d(
                    in_channels if i == 0 else out_channels, out_channels, kernel_size,
                    stride=2 if i == n_convs - 1 else 1, padding=kernel_size // 2,
                    bias=not batch_norm,
                ),
                nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(),
                act(),
            ]
        self.encoder = nn.Sequential(*blocks)
        if linear_output:
            post = nn.Identity()
        else:
            post = nn.Sequential(
                nn.BatchNorm2d(in_channels) if batch_norm else nn.Identity(), act()
            )
        self.decoder = _Upsample(out_channels, in_channels, kernel_size, post)

    def output_size(self, size):
        """Spatial size ``(h, w)`` of the code for an input of size ``(H, W)``."""
        return tuple(_conv_out(s, self.kernel_size) for s in size)

    def forward(self, x):
        """Encode and decode: a reconstruction of ``x``, same shape."""
        return self.decoder(self.encoder(x), x.shape[-2:])


class ConvDAEStack(nn.Module):
    """A stack of :class:`DenoisingConvLayer` over standardised images.

    ``trunk()`` is the encoder as one ``nn.Sequential`` (standardisation,
    then each layer's encoder), sharing this stack's modules: the reusable
    feature extractor for supervised heads (age, gender, keypoints).

    Parameters
    ----------
    in_channels : int
        1 (grey) or 3 (RGB).
    layer_channels : sequence of int, default=(32, 64, 128)
        Output channels of each layer, bottom up; each layer halves the
        image's height and width.
    kernel_size : int, default=3
    n_convs : int, default=1
        Encoder convolutions per layer (see :class:`DenoisingConvLayer`).
    batch_norm : bool, default=True
    activation : str, default="relu"
    contrast : float or None, default=None
        Sigma of a local contrast normalisation in front of the
        standardisation (see :class:`ChannelStandardize`): the stack then
        models, and reconstructs, contrast-normalised images.

    Attributes
    ----------
    standardize : ChannelStandardize
        Per-channel pixel statistics; :meth:`ChannelStandardize.fit` them
        on the training images before training.
    layers : nn.ModuleList of DenoisingConvLayer
    """

    def __init__(
        self,
        in_channels,
        layer_channels=(32, 64, 128),
        kernel_size=3,
        *,
        n_convs=1,
        batch_norm=True,
        activation="relu",
        contrast=None,
    ):
        super().__init__()
        layer_channels = [int(c) for c in layer_channels]
        if not layer_channels or min(layer_channels) < 1:
            raise ValueError(
                f"layer_channels must be a non-empty sequence of positive ints, got "
                f"{layer_channels!r}."
            )
        self.in_channels = in_channels
        self.layer_channels = tuple(layer_channels)
        self.standardize = ChannelStandardize(in_channels, contrast)
        inputs = [in_channels, *layer_channels[:-1]]
        self.layers = nn.ModuleList(
            DenoisingConvLayer(
                c_in, c_out, kernel_size, n_convs=n_convs, batch_norm=batch_norm,
                activation=activation, linear_output=i == 0,
            )
            for i, (c_in, c_out) in enumerate(zip(inputs, layer_channels))
        )

    @property
    def out_channels(self):
        """Channels of the top layer's code."""
        return self.layer_channels[-1]

    def trunk(self, depth=None):
        """The encoder as ``nn.Sequential``: standardise, then ``depth`` layers' encoders.

        The modules are shared with the stack, not copied; deep-copy the
        result to train it separately.

        Parameters
        ----------
        depth : int, default=None
            Number of layers (all when None).

        Returns
        -------
        trunk : nn.Sequential
            ``(n, C, H, W)`` images -> ``(n, out_channels, h, w)`` codes.
        """
        layers = self.layers[: len(self.layers) if depth is None else depth]
        return nn.Sequential(self.standardize, *(layer.encoder for layer in layers))

    def code_size(self, size):
        """Spatial size ``(h, w)`` of the top code for images of size ``(H, W)``."""
        sizes = self.layer_sizes(size)
        return sizes[-1]

    def layer_sizes(self, size):
        """Spatial sizes for images of size ``(H, W)``: the input's, then each layer's code's.

        Returns
        -------
        sizes : list of tuple of int (h, w)
            ``len(layers) + 1`` sizes, bottom first.
        """
        sizes = [tuple(int(s) for s in size)]
        for layer in self.layers:
            sizes.append(layer.output_size(sizes[-1]))
        return sizes

    def encode(self, x, depth=None):
        """Codes of images ``x`` (n, C, H, W) after ``depth`` layers (all when None)."""
        return self.trunk(depth)(x)

    def decode(self, code, image_size):
        """Images (n, C, H, W) of size ``image_size`` = (H, W) decoded from top codes."""
        sizes = self.layer_sizes(image_size)
        h = code
        for layer, size in zip(reversed(self.layers), reversed(sizes[:-1])):
            h = layer.decoder(h, size)
        return self.standardize.inverse(h)

    def forward(self, x):
        """Reconstructions of images ``x``, same shape and scale."""
        return self.decode(self.encode(x), x.shape[-2:])

    # -- denoising objectives ------------------------------------------------------

    @torch.no_grad()
    def layer_target(self, x, index):
        """Clean input of layer ``index``: the frozen lower layers' code of images ``x``."""
        return self.encode(x, depth=index)

    def layer_loss(self, x, index, noise="mask", level=0.25, *, generator=None):
        """Greedy denoising loss of layer ``index`` on images ``x``.

        The layer reconstructs its clean input (the code of the layers below,
        which get no gradient) from a corrupted copy; the loss is the mean
        squared error.

        Returns
        -------
        loss : scalar Tensor
        """
        target = self.layer_target(x, index)
        noisy = corrupt(target, noise, level, generator=generator)
        return F.mse_loss(self.layers[index](noisy).float(), target.float())

    def denoising_loss(self, x, noise="mask", level=0.25, *, generator=None):
        """Joint denoising loss of the whole stack on images ``x``.

        Corrupts the standardised pixels and reconstructs the clean ones
        through every layer; the mean squared error is in standardised units.

        Returns
        -------
        loss : scalar Tensor
        """
        target = self.standardize(x)
        noisy = corrupt(target, noise, level, generator=generator)
        h = noisy
        for layer in self.layers:
            h = layer.encoder(h)
        sizes = self.layer_sizes(x.shape[-2:])
        for layer, size in zip(reversed(self.layers), reversed(sizes[:-1])):
            h = layer.decoder(h, size)
        return F.mse_loss(h.float(), target.float())
