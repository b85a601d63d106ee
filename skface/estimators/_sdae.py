"""ConvSDAEFeatures (stacked conv denoising autoencoder features) and its fine-tuned heads."""

import copy
import numbers

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
from skorch.callbacks import LRScheduler
from torch import nn

from .._params import check_choice, check_number, check_size
from .._validation import check_targets, restore_layout
from ..nn.augment import flip_shift
from ..nn.conv_dae import NOISE_KINDS, POOLINGS, ConvDAEStack, trunk_features
from ._base import (
    FaceEstimatorMixin,
    FaceNet,
    autocast,
    convert_images,
    seeded,
    to_tensor,
)

try:  # scikit-learn >= 1.6
    from sklearn.frozen import FrozenEstimator
except ImportError:  # pragma: no cover
    FrozenEstimator = None

__all__ = ["ConvSDAEFeatures", "SDAEClassifier", "SDAERegressor"]


# -- image preparation -----------------------------------------------------------------


def _load(images, size, channels, device, batch_size=1024):
    """NCHW ndarray -> float32 tensor on ``device`` at the model's size and channels."""
    return torch.cat([
        convert_images(to_tensor(images[i : i + batch_size], device), size, channels)
        for i in range(0, len(images), batch_size)
    ])


# -- skorch nets and training modules --------------------------------------------------


class _DenoisingNet(FaceNet):
    """skorch net whose module computes its own denoising loss; ``train_loss`` is that loss."""

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        x, _ = batch
        with autocast(self.device):
            loss = self.module_.loss(x, generator=self.generator_)
        loss.backward()
        return {"loss": loss, "y_pred": None}


class _LayerStage(nn.Module):
    """Greedy stage: layer ``index`` of ``stack`` learns to denoise the frozen code below it."""

    def __init__(self, stack, index, noise, level):
        super().__init__()
        self.stack, self.index, self.noise, self.level = stack, index, noise, level

    def train(self, mode=True):
        super().train(mode)
        # The layers below are finished: their batch norms keep their statistics.
        self.stack.trunk(self.index).eval()
        return self

    def loss(self, x, generator=None):
        return self.stack.layer_loss(x, self.index, self.noise, self.level, generator=generator)


class _JointStage(nn.Module):
    """Joint stage: the whole stack denoises images end to end."""

    def __init__(self, stack, noise, level):
        super().__init__()
        self.stack, self.noise, self.level = stack, noise, level

    def loss(self, x, generator=None):
        return self.stack.denoising_loss(x, self.noise, self.level, generator=generator)


class _AugmentNet(FaceNet):
    """skorch net that flips and shifts each training batch on the device."""

    def __init__(self, *args, flip=False, max_shift=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip = flip
        self.max_shift = max_shift

    def train_step_single(self, batch, **fit_params):
        x, y = batch
        x = flip_shift(x, flip=self.flip, max_shift=self.max_shift, generator=self.generator_)
        return super().train_step_single((x, y), **fit_params)


class _TrunkHead(nn.Module):
    """Encoder trunk, the encoder's features, dropout and a linear head: the fine-tuned model."""

    def __init__(self, trunk, layers, pooling, test_flip, n_features, n_outputs, dropout):
        super().__init__()
        self.trunk = trunk
        self.layers = layers
        self.pooling = pooling
        self.test_flip = test_flip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        features = trunk_features(self.trunk, x, self.layers, self.pooling, self.test_flip)
        return self.head(self.dropout(features))


# -- the transformer -------------------------------------------------------------------


def _has_inverse(estimator):
    if estimator.pooling != "flatten":
        raise AttributeError(
            "inverse_transform needs pooling='flatten': pooled features do not keep "
            "where things are in the image. Use reconstruct(X) to encode and decode images."
        )
    n_layers = len(np.atleast_1d(np.asarray(estimator.layer_channels, dtype=object)))
    try:
        top_only = _layer_indices(estimator.feature_layers, n_layers) == [n_layers - 1]
    except (TypeError, ValueError):
        top_only = True  # an invalid value: fit says what is wrong with it
    if not top_only:
        raise AttributeError(
            "inverse_transform needs feature_layers='top': the decoder starts from the "
            "top code alone. Use reconstruct(X) to encode and decode images."
        )
    if estimator.test_flip:
        raise AttributeError(
            "inverse_transform needs test_flip=False: averaged with its mirror image's, "
            "a code no longer describes one image. Use reconstruct(X) to encode and decode "
            "images."
        )
    return True


def _layer_indices(feature_layers, n_layers):
    """Sorted layer indices (0 = bottom) for a ``feature_layers`` parameter."""
    if isinstance(feature_layers, str):
        check_choice("feature_layers", feature_layers, ("top", "all"))
        return [n_layers - 1] if feature_layers == "top" else list(range(n_layers))
    message = (
        f"feature_layers must be 'top', 'all' or a non-empty sequence of distinct layer "
        f"indices in [-{n_layers}, {n_layers - 1}] (0 is the bottom layer, -1 the top), "
        f"got {feature_layers!r}."
    )
    try:
        indices = [int(i) for i in feature_layers if isinstance(i, numbers.Integral)
                   and not isinstance(i, bool)]
    except TypeError:
        raise ValueError(message) from None
    if not indices or len(indices) != len(feature_layers):
        raise ValueError(message)
    if any(not -n_layers <= i < n_layers for i in indices):
        raise ValueError(message)
    indices = [i % n_layers for i in indices]
    if len(set(indices)) != len(indices):
        raise ValueError(message)
    return sorted(indices)


class ConvSDAEFeatures(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, FaceEstimatorMixin, BaseEstimator
):
    """Face features from a stacked convolutional denoising autoencoder.

    Each layer is one or more convolutions with batch normalisation and
    ReLU, the last with stride 2, paired with a stride-2 transposed
    convolution that decodes it. The
    layers are trained greedily, bottom up: each learns to reconstruct its
    clean input (standardised pixels, or the code of the frozen layers
    below) from a corrupted copy (Vincent et al., 2010). The stack can then
    be fine-tuned jointly to denoise whole images. No labels are used.
    ``transform`` gives the top layer's code, flattened or pooled; each
    stage is a skorch fit.

    Parameters
    ----------
    layer_channels : tuple of int, default=(32, 64, 128)
        Channels of each layer, bottom up. Each layer halves the height and
        width, so 48x48 input gives a 6x6 top code with three layers.
    kernel_size : int, default=3
        Odd size of every (transposed) convolution kernel.
    convs_per_layer : int, default=1
        Encoder convolutions per layer: ``convs_per_layer - 1`` at full
        resolution, then the stride-2 one. 2 gives a deeper trunk, better
        for fine-tuning, at about twice the cost.
    noise : {"mask", "gaussian"}, default="mask"
        Corruption: "mask" zeroes a random fraction ``noise_level`` of the
        inputs (and scales the rest by ``1 / (1 - noise_level)``);
        "gaussian" adds noise with a standard deviation of ``noise_level``
        times each channel's.
    noise_level : float, default=0.3
        Fraction masked, in [0, 1), or relative noise standard deviation.
    pooling : {"flatten", "avgmax", "avg", "max"}, default="flatten"
        How ``transform`` turns a code (C, h, w) into features: every
        value (C*h*w features, which ``inverse_transform`` can decode), or
        per-channel global average and maximum concatenated (2C), or one of
        them (C). Aligned faces put the eyes, mouth and hair in the same
        place in every image, so keeping where a feature fired ("flatten")
        is worth much more to a linear head than global pooling: on UTKFace
        48x48 it gave 0.87 gender accuracy against 0.76 for "avgmax".
    feature_layers : {"top", "all"} or sequence of int, default="top"
        Which layers' codes make the features: the top layer's, every
        layer's, or the layers at these indices (0 is the bottom layer, -1
        the top). With "flatten" pooling the codes of lower layers are
        average-pooled to the grid of the highest layer used, so each face
        region is described from edges and texture (bottom) to parts (top).
        For linear heads "all" is worth it: on UTKFace 48x48 RGB (one fold,
        contrast-normalised input) it gave 0.890 gender accuracy and 8.68
        years of age MAE, against 0.878 and 8.96 for the top layer alone.
        ``inverse_transform`` needs "top".
    test_flip : bool, default=False
        True averages the features of each image with those of its
        left-right mirror image, so a face and its mirror image get the
        same features (as ``CenterLossEmbedder(test_flip=True)`` does for
        embeddings). Faces are nearly symmetric, so the mirror image is a
        second view of the same face, for twice the cost of
        ``transform``; the encoder's training does not change. On UTKFace
        48x48 RGB (frozen contrast-normalised and raw encoders, Ridge,
        measured on an inner split of one fold's training faces) it
        lowered the age MAE from 8.18 to 7.71 years. ``inverse_transform``
        needs False.
    input_size : int, tuple of int (height, width) or None, default=None
        Size the images are resized to (antialiased bilinear) before
        encoding; None keeps the size seen in ``fit``.
    color : bool or None, default=None
        True encodes RGB (grey images repeated on three channels), False
        grey (RGB converted with the BT.601 luma weights), None the
        channels of the images seen in ``fit``.
    pretrain_epochs : int, default=10
        Epochs of greedy denoising training per layer; 0 leaves the layers
        at their random initialisation (an untrained encoder).
    finetune_epochs : int, default=0
        Epochs of joint denoising training of the whole stack after the
        greedy stage.
    lr : float, default=1e-3
        Adam learning rate of both stages.
    batch_size : int, default=128
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X``.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available. On CUDA the
        convolutions run in bfloat16 autocast, channels-last.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and corruption; equal seeds give
        equal models on the CPU.
    verbose : int, default=0
        1 shows a progress bar per stage, 2 also skorch's epoch log.

    Attributes
    ----------
    net_ : FaceNet (skorch.NeuralNet)
        The joint stage; ``net_.module_.stack`` is the trained
        :class:`skface.nn.conv_dae.ConvDAEStack` (``stack.trunk()`` the
        encoder) and ``net_.history`` the joint epochs.
    layer_nets_ : list of FaceNet
        The greedy stages, bottom first, with their histories.
    input_size_ : tuple of int (height, width)
        Size the images are encoded at.
    n_channels_ : int
        Channels the images are encoded with (1 or 3).
    code_shape_ : tuple of int (C, h, w)
        Shape of the top code.
    image_shape_ : tuple of int (H, W, C)
        Shape of the images seen in ``fit``.
    image_layout_ : skface._validation.ImageLayout
        Layout of ``fit``'s input, which ``inverse_transform`` gives images
        back in.
    n_features_in_ : int
        ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a DataFrame with string column names.
    device_ : str
        Device the model was fitted on.

    See Also
    --------
    SDAEClassifier, SDAERegressor : the encoder fine-tuned with a head on labels.
    DBNReconstructor : a fully connected autoencoder pretrained as RBMs.
    skface.preprocessing.LocalContrastNormalizer : contrast-normalised faces
        in front of the encoder, for frozen features that serve linear heads.

    References
    ----------
    P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
    "Stacked denoising autoencoders: learning useful representations in a
    deep network with a local denoising criterion", JMLR 11, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import ConvSDAEFeatures
    >>> faces = np.random.RandomState(0).rand(32, 16, 16, 3).astype(np.float32)
    >>> sdae = ConvSDAEFeatures(layer_channels=(8, 16), pretrain_epochs=1,
    ...                         random_state=0).fit(faces)
    >>> sdae.transform(faces).shape
    (32, 256)
    >>> sdae.reconstruct(faces).shape
    (32, 16, 16, 3)
    """

    def __init__(
        self,
        layer_channels=(32, 64, 128),
        *,
        kernel_size=3,
        convs_per_layer=1,
        noise="mask",
        noise_level=0.3,
        pooling="flatten",
        feature_layers="top",
        test_flip=False,
        input_size=None,
        color=None,
        pretrain_epochs=10,
        finetune_epochs=0,
        lr=1e-3,
        batch_size=128,
        image_shape=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.layer_channels = layer_channels
        self.kernel_size = kernel_size
        self.convs_per_layer = convs_per_layer
        self.noise = noise
        self.noise_level = noise_level
        self.pooling = pooling
        self.feature_layers = feature_layers
        self.test_flip = test_flip
        self.input_size = input_size
        self.color = color
        self.pretrain_epochs = pretrain_epochs
        self.finetune_epochs = finetune_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        channels = np.atleast_1d(np.asarray(self.layer_channels, dtype=object))
        if channels.ndim != 1 or len(channels) == 0:
            raise ValueError(
                f"layer_channels must be a non-empty sequence of positive ints, got "
                f"{self.layer_channels!r}."
            )
        for c in channels:
            check_number("every entry of layer_channels", c, numbers.Integral, low=1)
        check_number("kernel_size", self.kernel_size, numbers.Integral, low=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size!r}.")
        check_number("convs_per_layer", self.convs_per_layer, numbers.Integral, low=1)
        check_choice("noise", self.noise, NOISE_KINDS)
        high = 1 if self.noise == "mask" else None
        check_number("noise_level", self.noise_level, low=0, high=high)
        check_choice("pooling", self.pooling, POOLINGS)
        _layer_indices(self.feature_layers, len(channels))
        check_choice("test_flip", self.test_flip, (True, False))
        check_choice("color", self.color, (None, True, False))
        for name in ("pretrain_epochs", "finetune_epochs"):
            check_number(name, getattr(self, name), numbers.Integral, low=0)
        check_number("batch_size", self.batch_size, numbers.Integral, low=1)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        return [int(c) for c in channels], check_size(self.input_size)

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Train the layers greedily as denoising autoencoders, then jointly.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images (see :func:`skface._validation.check_images`).
        y : None
            Ignored.

        Returns
        -------
        self : ConvSDAEFeatures
        """
        channels, size = self._check_params()
        self.device_ = self._check_common_params()
        images, _ = self._validate_images(X, reset=True)
        self.n_channels_ = images.shape[1] if self.color is None else (3 if self.color else 1)
        self.input_size_ = size or tuple(int(s) for s in images.shape[-2:])

        seed, *net_seeds = self._seeds(len(channels) + 2)
        with seeded(seed, self.device_):
            x = _load(images, self.input_size_, self.n_channels_, self.device_)
            stack = ConvDAEStack(
                self.n_channels_, channels, self.kernel_size, n_convs=self.convs_per_layer
            ).to(self.device_)
            stack.standardize.fit(x)
            common = dict(
                net_class=_DenoisingNet, lr=self.lr, batch_size=self.batch_size,
                optimizer=torch.optim.Adam,
            )
            self.layer_nets_ = []
            for i in range(len(channels)):
                net = self._make_net(
                    _LayerStage(stack, i, self.noise, self.noise_level),
                    desc=f"layer {i + 1}/{len(channels)}", seed=net_seeds[i],
                    max_epochs=self.pretrain_epochs, **common,
                )
                net.fit(x, None) if self.pretrain_epochs else net.initialize()
                self.layer_nets_.append(net)
            self.net_ = self._make_net(
                _JointStage(stack, self.noise, self.noise_level), desc="joint",
                seed=net_seeds[-1], max_epochs=self.finetune_epochs, **common,
            )
            self.net_.fit(x, None) if self.finetune_epochs else self.net_.initialize()
        stack.eval()
        self.code_shape_ = (stack.out_channels, *stack.code_size(self.input_size_))
        return self

    # -- inference -----------------------------------------------------------------------

    def _stack(self):
        return self.net_.module_.stack.eval()

    def _device(self):
        # skorch moves a CUDA-fitted net to the CPU when unpickled without CUDA.
        return self.net_.device

    def _feature_layers(self):
        return _layer_indices(self.feature_layers, len(self._stack().layers))

    @property
    def _n_features_out(self):
        stack = self._stack()
        layers = self._feature_layers()
        channels = sum(stack.layer_channels[i] for i in layers)
        if self.pooling == "flatten":
            # Every layer used is pooled to the grid of the highest one.
            height, width = stack.layer_sizes(self.input_size_)[layers[-1] + 1]
            return channels * height * width
        return 2 * channels if self.pooling == "avgmax" else channels

    def _encode(self, x):
        return self._stack().encode(convert_images(x, self.input_size_, self.n_channels_))

    def _features(self, x):
        x = convert_images(x, self.input_size_, self.n_channels_)
        return trunk_features(self._stack().trunk(), x, self._feature_layers(), self.pooling,
                              self.test_flip)

    def transform(self, X):
        """Pooled or flattened codes of the images, from the layers ``feature_layers`` picks.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the fitted size.

        Returns
        -------
        features : ndarray of shape (n, n_features)
            ``C * h * w`` features for "flatten" pooling, ``2 * C`` for
            "avgmax", ``C`` for "avg" or "max", where C sums the channels
            of the layers used and (h, w) is the highest one's grid;
            float64 for float64 input, else float32.
        """
        images, layout = self._validate_images(X, reset=False)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("test_flip", self.test_flip, (True, False))
        features = self._apply_batched(self._features, images, device=self._device())
        return features.astype(layout.dtype, copy=False)

    def _decode_images(self, code):
        images = self._stack().decode(code, self.input_size_)
        height, width, channels = self.image_shape_
        return convert_images(images, (height, width), channels)

    @available_if(_has_inverse)
    def inverse_transform(self, X):
        """Images decoded from flattened codes, in the layout of ``fit``'s input.

        Only with ``pooling="flatten"`` and ``feature_layers="top"``.

        Parameters
        ----------
        X : array-like of shape (n, C*h*w)
            Codes from :meth:`transform`.

        Returns
        -------
        images : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            The size and layout of the images seen in ``fit`` (resized back
            from ``input_size_``), on the scale of ``check_images`` (uint8
            input comes back in [0, 1]).
        """
        check_is_fitted(self)
        codes = check_array(X, dtype=(np.float64, np.float32))
        if codes.shape[1] != self._n_features_out:
            raise ValueError(
                f"X has {codes.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self._n_features_out} features as input: inverse_transform takes codes "
                "from transform, not images."
            )
        maps = codes.reshape(len(codes), *self.code_shape_)
        images = self._apply_batched(self._decode_images, maps, device=self._device())
        return restore_layout(images, self.image_layout_._replace(dtype=codes.dtype))

    def corrupt(self, X, random_state=None):
        """The images with the kind and level of noise the layers learned to remove.

        Applied in pixel space around the fitted per-channel statistics,
        which is what the noise of training does to standardised pixels:
        masking replaces a fraction ``noise_level`` of the values by their
        channel's mean and scales the rest away from it by
        ``1 / (1 - noise_level)``; Gaussian noise adds ``noise_level`` times
        each channel's standard deviation. Useful to show the denoising:
        ``reconstruct(corrupt(X))`` against ``X``.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the fitted size.
        random_state : int, RandomState instance or None, default=None
            Source of the noise.

        Returns
        -------
        noisy : ndarray of the same shape as ``X``
            float32 (float64 for float64 input), on the scale of
            ``check_images`` (uint8 input comes back in [0, 1]).
        """
        images, layout = self._validate_images(X, reset=False)
        images = np.asarray(images, dtype=np.float32)
        stats = self.net_.module_.stack.standardize
        mean = stats.mean.detach().cpu().numpy()
        std = stats.std.detach().cpu().numpy()
        if mean.shape[1] != images.shape[1]:  # colour input to a grey model, or back
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        rng = check_random_state(random_state)
        level = float(self.noise_level)
        if self.noise == "mask":
            keep = rng.random_sample(images.shape) >= level
            noisy = mean + (images - mean) * keep / (1.0 - level)
        else:
            noisy = images + rng.standard_normal(images.shape) * level * std
        return restore_layout(noisy.astype(np.float32), layout)

    def reconstruct(self, X):
        """Encode and decode images (denoising them): same shape and layout as ``X``.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)

        Returns
        -------
        reconstructions : ndarray of the same shape as ``X``
        """
        images, layout = self._validate_images(X, reset=False)
        recon = self._apply_batched(
            lambda x: self._decode_images(self._encode(x)), images, device=self._device()
        )
        return restore_layout(recon, layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# -- fine-tuned heads ------------------------------------------------------------------


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def check_encoder(encoder):
    """``encoder`` (None, a ConvSDAEFeatures, or a FrozenEstimator of a fitted one), unwrapped.

    Raises
    ------
    ValueError
        For a FrozenEstimator of an unfitted encoder.
    TypeError
        For anything else.
    """
    if FrozenEstimator is not None and isinstance(encoder, FrozenEstimator):
        encoder = encoder.estimator
        if not _is_fitted(encoder):
            raise ValueError(
                "encoder is a FrozenEstimator of an unfitted encoder; fit it first."
            )
    if encoder is not None and not isinstance(encoder, ConvSDAEFeatures):
        raise TypeError(
            f"encoder must be None, a ConvSDAEFeatures (fitted or not) or a "
            f"FrozenEstimator of a fitted one, got {type(encoder).__name__}."
        )
    return encoder


class _SDAEHeadBase(FaceEstimatorMixin, BaseEstimator):
    """Fit logic shared by SDAEClassifier and SDAERegressor."""

    def __init__(
        self,
        encoder=None,
        *,
        max_epochs=20,
        lr=1e-3,
        weight_decay=1e-2,
        batch_size=128,
        dropout=0.2,
        flip=True,
        max_shift=0.08,
        image_shape=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.dropout = dropout
        self.flip = flip
        self.max_shift = max_shift
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        check_number("max_epochs", self.max_epochs, numbers.Integral, low=0)
        check_number("batch_size", self.batch_size, numbers.Integral, low=1)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("dropout", self.dropout, low=0, high=1)
        check_number("max_shift", self.max_shift, low=0, high=0.5)
        check_choice("flip", self.flip, (True, False))
        encoder = check_encoder(self.encoder)
        return ConvSDAEFeatures() if encoder is None else encoder

    def _fitted_encoder(self, encoder, X, seed):
        """The encoder as given when fitted, else a clone of it fitted on ``X``."""
        if _is_fitted(encoder):
            return encoder
        encoder = clone(encoder)
        overrides = {}
        if encoder.random_state is None:
            overrides["random_state"] = seed
        if encoder.image_shape is None and self.image_shape is not None:
            overrides["image_shape"] = self.image_shape
        if encoder.device == "auto":
            overrides["device"] = self.device_
        return encoder.set_params(**overrides).fit(X)

    def _train(self, X, images, targets, n_outputs, criterion):
        """Fine-tune a copy of the encoder's trunk with a linear head on ``targets``."""
        encoder = self._check_params()
        encoder_seed, seed, net_seed = self._seeds(3)
        self.encoder_ = self._fitted_encoder(encoder, X, encoder_seed)
        self.input_size_ = self.encoder_.input_size_
        self.n_channels_ = self.encoder_.n_channels_
        # A copy: fine-tuning never changes the encoder the caller passed.
        trunk = copy.deepcopy(self.encoder_._stack().trunk())
        max_shift = int(round(self.max_shift * min(self.input_size_)))
        with seeded(seed, self.device_):
            module = _TrunkHead(
                trunk, self.encoder_._feature_layers(), self.encoder_.pooling,
                bool(self.encoder_.test_flip), self.encoder_._n_features_out, n_outputs,
                self.dropout,
            )
            x = _load(images, self.input_size_, self.n_channels_, self.device_)
            self.net_ = self._make_net(
                module, desc="fine-tune", net_class=_AugmentNet, seed=net_seed,
                criterion=criterion, max_epochs=self.max_epochs, lr=self.lr,
                batch_size=self.batch_size, optimizer=torch.optim.AdamW,
                optimizer__weight_decay=self.weight_decay,
                callbacks=[("lr_scheduler", LRScheduler(
                    policy="CosineAnnealingLR", T_max=max(self.max_epochs, 1)))],
                flip=self.flip, max_shift=max_shift,
            )
            self.net_.fit(x, targets) if self.max_epochs else self.net_.initialize()
        self.net_.module_.eval()
        return self

    def _check_y(self, y, n_samples):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        return check_targets(y, n_samples, estimator=self)

    def _outputs(self, X):
        """Head outputs (n, n_outputs), float64."""
        images, _ = self._validate_images(X, reset=False)
        module = self.net_.module_.eval()

        def forward(x):
            return module(convert_images(x, self.input_size_, self.n_channels_))

        return self._apply_batched(forward, images, device=self.net_.device).astype(np.float64)


class SDAEClassifier(ClassifierMixin, _SDAEHeadBase):
    """Classifier fine-tuned end to end from a convolutional SDAE encoder.

    The encoder's trunk (its layers' convolutions, batch norms and
    activations) is copied, topped with the encoder's features (its
    ``feature_layers``, ``pooling`` and ``test_flip``), dropout and a
    linear layer, and trained on the labels with cross-entropy (AdamW,
    cosine learning-rate decay), with random flips and shifts of the
    training images.

    Parameters
    ----------
    encoder : ConvSDAEFeatures, FrozenEstimator of one, or None, default=None
        Where the trunk comes from. A fitted encoder gives its trained
        weights (copied; the encoder is not changed). An unfitted one is
        cloned and fitted on ``X`` first (its ``random_state``, if None,
        drawn from this estimator's); ``ConvSDAEFeatures(pretrain_epochs=0)``
        is thus the same architecture without pretraining. None is
        ``ConvSDAEFeatures()``. ``clone`` (as in cross-validation) keeps
        only an encoder's parameters: wrap a fitted encoder in
        :class:`sklearn.frozen.FrozenEstimator` to keep its weights.
    max_epochs : int, default=20
        Epochs of fine-tuning; 0 keeps the encoder and a random head.
    lr : float, default=1e-3
        Initial AdamW learning rate, decayed to 0 on a cosine.
    weight_decay : float, default=1e-2
        AdamW's decoupled weight decay.
    batch_size : int, default=128
    dropout : float, default=0.2
        Dropout on the pooled features, in [0, 1).
    flip : bool, default=True
        Flip training images left-right at random (faces are roughly
        symmetric; labels do not change).
    max_shift : float, default=0.08
        Largest random shift of training images, as a fraction of the
        encoder's input size (rounded to whole pixels); 0 disables.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X``.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the head, shuffling and augmentation (and an unfitted
        encoder without its own seed).
    verbose : int, default=0
        1 shows progress bars, 2 also skorch's epoch log.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    net_ : FaceNet (skorch.NeuralNet)
        The fine-tuned model (``net_.module_.trunk``, ``.head``) and its history.
    encoder_ : ConvSDAEFeatures
        The fitted encoder the trunk was copied from (the one passed, when
        it was fitted).
    input_size_ : tuple of int (height, width)
    n_channels_ : int
        Size and channels the images are resized and converted to.
    image_shape_ : tuple of int (H, W, C)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    device_ : str

    See Also
    --------
    ConvSDAEFeatures : the unsupervised encoder, usable frozen in a Pipeline.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import ConvSDAEFeatures, SDAEClassifier
    >>> rng = np.random.RandomState(0)
    >>> faces = rng.rand(40, 16, 16).astype(np.float32)
    >>> y = (faces[:, :8].mean(axis=(1, 2)) > faces[:, 8:].mean(axis=(1, 2))).astype(int)
    >>> encoder = ConvSDAEFeatures((8, 16), pretrain_epochs=1, random_state=0)
    >>> clf = SDAEClassifier(encoder, max_epochs=2, random_state=0).fit(faces, y)
    >>> clf.predict_proba(faces).shape
    (40, 2)
    """

    def fit(self, X, y):
        """Fit the encoder if needed, then fine-tune it with a classification head.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images.
        y : array-like of shape (n,)
            Class labels.

        Returns
        -------
        self : SDAEClassifier
        """
        self.device_ = self._check_common_params()
        images, _ = self._validate_images(X, reset=True)
        y = column_or_1d(self._check_y(y, len(images)), warn=True)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; the data "
                f"has 1 class: {self.classes_[0]!r}."
            )
        targets = torch.as_tensor(y_index, dtype=torch.long, device=self.device_)
        return self._train(X, images, targets, len(self.classes_), nn.CrossEntropyLoss)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
            float64, columns in the order of ``classes_``.
        """
        logits = self._outputs(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Most probable class of each image.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)

        Returns
        -------
        y : ndarray of shape (n,)
        """
        scores = self._outputs(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(scores, axis=1)]


_REGRESSION_LOSSES = {
    "squared_error": nn.MSELoss,
    "absolute_error": nn.L1Loss,
    "huber": nn.HuberLoss,
}


class SDAERegressor(RegressorMixin, _SDAEHeadBase):
    """Regressor fine-tuned end to end from a convolutional SDAE encoder.

    As :class:`SDAEClassifier`, with a linear head on standardised targets
    (each target's mean and standard deviation from the training set) and
    a regression loss.

    Parameters
    ----------
    encoder : ConvSDAEFeatures, FrozenEstimator of one, or None, default=None
        See :class:`SDAEClassifier`.
    loss : {"huber", "squared_error", "absolute_error"}, default="huber"
        Training loss on the standardised targets; "huber" is squared
        within one standard deviation and absolute beyond, robust to the
        rare extreme targets (very old ages) that dominate a squared error.
    max_epochs, lr, weight_decay, batch_size, dropout, flip, max_shift, image_shape, \
device, random_state, verbose
        See :class:`SDAEClassifier`.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Target standardisation.
    net_, encoder_, input_size_, n_channels_, image_shape_, n_features_in_, \
feature_names_in_, device_
        See :class:`SDAEClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import ConvSDAEFeatures, SDAERegressor
    >>> rng = np.random.RandomState(0)
    >>> faces = rng.rand(40, 16, 16).astype(np.float32)
    >>> age = 20 + 40 * faces.mean(axis=(1, 2))
    >>> encoder = ConvSDAEFeatures((8, 16), pretrain_epochs=1, random_state=0)
    >>> reg = SDAERegressor(encoder, max_epochs=2, random_state=0).fit(faces, age)
    >>> reg.predict(faces).shape
    (40,)
    """

    def __init__(
        self,
        encoder=None,
        *,
        loss="huber",
        max_epochs=20,
        lr=1e-3,
        weight_decay=1e-2,
        batch_size=128,
        dropout=0.2,
        flip=True,
        max_shift=0.08,
        image_shape=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            encoder, max_epochs=max_epochs, lr=lr, weight_decay=weight_decay,
            batch_size=batch_size, dropout=dropout, flip=flip, max_shift=max_shift,
            image_shape=image_shape, device=device, random_state=random_state,
            verbose=verbose,
        )
        self.loss = loss

    def fit(self, X, y):
        """Fit the encoder if needed, then fine-tune it with a regression head.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images.
        y : array-like of shape (n,) or (n, n_targets)
            Targets.

        Returns
        -------
        self : SDAERegressor
        """
        check_choice("loss", self.loss, tuple(_REGRESSION_LOSSES))
        self.device_ = self._check_common_params()
        images, _ = self._validate_images(X, reset=True)
        y = check_array(
            self._check_y(y, len(images)), ensure_2d=False, dtype=np.float64,
            input_name="y",
        )
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}.")
        self._y_ndim = y.ndim
        y2 = y.reshape(len(y), -1)
        self.n_outputs_ = y2.shape[1]
        self.y_mean_ = y2.mean(axis=0)
        std = y2.std(axis=0)
        self.y_scale_ = np.where(std > 1e-12, std, 1.0)
        targets = torch.as_tensor(
            (y2 - self.y_mean_) / self.y_scale_, dtype=torch.float32, device=self.device_
        )
        return self._train(X, images, targets, self.n_outputs_, _REGRESSION_LOSSES[self.loss])

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)

        Returns
        -------
        y : ndarray of shape (n,) or (n, n_targets)
            float64, in the shape of the ``y`` seen in ``fit``.
        """
        out = self._outputs(X) * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
