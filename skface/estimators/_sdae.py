"""ConvSDAEFeatures: face features from a stacked convolutional denoising autoencoder."""

import numbers

import numpy as np
import torch
from skorch.history import History
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_array, check_is_fitted

from .._params import check_choice, check_number, check_size
from .._validation import restore_layout
from ..nn.conv_dae import NOISE_KINDS, POOLINGS, ConvDAEStack, trunk_features
from ..nn.trunk import ConvTrunk
from .._device import autocast, seeded
from ._base import FaceEstimatorMixin, FaceNet
from ._encoder import Trunk, is_fitted
from ._stream import convert_images, device_images, fit_standardize

__all__ = ["ConvSDAEFeatures", "check_encoder", "load_images"]

# A face's scaled feature vector has this mean squared length (see feature_scale):
# chosen so that LogisticRegression() and RidgeCV() at their default
# regularisation serve the default features as well as tuned C and alpha do.
FEATURE_SCALE = 32.0


def load_images(images, size, channels, device):
    """Validated images -> float32 (n, C, H, W) on ``device`` at a model's size and channels.

    A tensor for float32 arrays; for uint8 or memory-mapped input
    (:class:`~skface._validation.RawImages`) a
    :class:`~skface.estimators._stream.DeviceImages` that converts batch by
    batch.
    """
    return device_images(images, device, size, channels)


class _DenoisingNet(FaceNet):
    """skorch net over a :class:`ConvDAEStack` that trains one stage of it per fit.

    ``stage`` is the index of the layer a greedy stage trains (the layers
    below it frozen, their batch norms keeping their statistics), or
    "joint" for end-to-end denoising of whole images. ``train_loss`` is the
    stage's denoising loss.
    """

    def __init__(self, *args, stage="joint", noise="mask", noise_level=0.3, **kwargs):
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.noise = noise
        self.noise_level = noise_level

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        stack = self.module_
        x, _ = batch
        with autocast(self.device):
            if self.stage == "joint":
                loss = stack.denoising_loss(x, self.noise, self.noise_level,
                                            generator=self.generator_)
            else:
                # The layers below are finished: their batch norms keep their
                # statistics (skorch has just put the whole stack in train mode).
                stack.standardize.eval()
                for layer in stack.layers[: self.stage]:
                    layer.eval()
                loss = stack.layer_loss(x, self.stage, self.noise, self.noise_level,
                                        generator=self.generator_)
        loss.backward()
        return {"loss": loss, "y_pred": None}


# -- the transformer -------------------------------------------------------------------


def _fitted_or_params(estimator):
    """(pooling, layer indices or None, test_flip): fitted values, else the parameters."""
    if hasattr(estimator, "feature_layers_"):
        return estimator.pooling_, estimator.feature_layers_, estimator.test_flip_
    n_layers = len(np.atleast_1d(np.asarray(estimator.layer_channels, dtype=object)))
    try:
        layers = _layer_indices(estimator.feature_layers, n_layers)
    except (TypeError, ValueError):
        layers = None  # an invalid value: fit says what is wrong with it
    return estimator.pooling, layers, estimator.test_flip


def _has_inverse(estimator):
    pooling, layers, test_flip = _fitted_or_params(estimator)
    if pooling != "flatten":
        raise AttributeError(
            "inverse_transform needs pooling='flatten': pooled features do not keep "
            "where things are in the image. Use reconstruct(X) to encode and decode images."
        )
    channels = getattr(estimator, "layer_channels_", None)
    if channels is None:
        channels = np.atleast_1d(np.asarray(estimator.layer_channels, dtype=object))
    if layers is not None and layers != [len(channels) - 1]:
        raise AttributeError(
            "inverse_transform needs feature_layers='top': the decoder starts from the "
            "top code alone. Use reconstruct(X) to encode and decode images."
        )
    if test_flip:
        raise AttributeError(
            "inverse_transform needs test_flip=False: averaged with its mirror image's, "
            "a code no longer describes one image. Use reconstruct(X) to encode and decode "
            "images."
        )
    return True


def _has_corrupt(estimator):
    contrast = getattr(estimator, "contrast_", estimator.contrast)
    if contrast is not None:
        raise AttributeError(
            "corrupt needs contrast=None: with contrast normalisation the layers learned "
            "to denoise contrast-normalised images, not the pixels given."
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
    ``transform`` gives the layers' codes, flattened or pooled; each
    stage is a skorch fit.

    The defaults are the frozen-features recipe for linear heads: faces
    contrast-normalised inside the encoder, three layers of 64-256
    channels trained 3 epochs each against strong Gaussian noise, every
    layer's code, averaged with the mirror image's, and standardised and
    scaled so that ``LogisticRegression()`` and ``RidgeCV()`` at their
    own defaults serve them well (see ``feature_scale``). For
    reconstructions of the pixels themselves (``inverse_transform``,
    ``corrupt``, denoising pictures) use ``contrast=None,
    feature_layers="top", test_flip=False``.

    Parameters
    ----------
    layer_channels : tuple of int, default=(64, 128, 256)
        Channels of each layer, bottom up. Each layer halves the height and
        width, so 48x48 input gives a 6x6 top code with three layers.
    kernel_size : int, default=3
        Odd size of every (transposed) convolution kernel.
    convs_per_layer : int, default=1
        Encoder convolutions per layer: ``convs_per_layer - 1`` at full
        resolution, then the stride-2 one. 2 gives a deeper trunk, better
        for fine-tuning, at about twice the cost.
    contrast : float or None, default=2.0
        Sigma, in pixels at ``input_size``, of the local contrast
        normalisation the encoder applies to every image before its
        per-channel standardisation (as
        :class:`~skface.preprocessing.LocalContrastNormalizer` does, but
        inside the model: on the GPU, in batches, and in every head built
        on its trunk); None encodes the pixels as they are. It removes
        brightness, colour casts and smooth lighting, which a denoising
        autoencoder otherwise spends its capacity on, and keeps edges and
        skin texture: on UTKFace 48x48 RGB (one fold) it took gender
        accuracy from 0.870 to 0.890 and age MAE from 9.92 to 8.68 years
        with the same linear heads. With it the layers model
        contrast-normalised faces: ``reconstruct`` and
        ``inverse_transform`` give contrast-normalised images, and
        ``corrupt`` is not available.
    noise : {"mask", "gaussian"}, default="gaussian"
        Corruption: "mask" zeroes a random fraction ``noise_level`` of the
        inputs (and scales the rest by ``1 / (1 - noise_level)``);
        "gaussian" adds noise with a standard deviation of ``noise_level``
        times each channel's.
    noise_level : float, default=0.5
        Fraction masked, in [0, 1), or relative noise standard deviation.
    pooling : {"flatten", "avgmax", "avg", "max"}, default="flatten"
        How ``transform`` turns a code (C, h, w) into features: every
        value (C*h*w features, which ``inverse_transform`` can decode), or
        per-channel global average and maximum concatenated (2C), or one of
        them (C). Aligned faces put the eyes, mouth and hair in the same
        place in every image, so keeping where a feature fired ("flatten")
        is worth much more to a linear head than global pooling: on UTKFace
        48x48 it gave 0.87 gender accuracy against 0.76 for "avgmax".
    feature_layers : {"top", "all"} or sequence of int, default="all"
        Which layers' codes make the features: the top layer's, every
        layer's, or the layers at these indices (0 is the bottom layer, -1
        the top). With "flatten" pooling the codes of lower layers are
        average-pooled to the grid of the highest layer used, so each face
        region is described from edges and texture (bottom) to parts (top).
        For linear heads "all" is worth it: on UTKFace 48x48 RGB (one fold,
        contrast-normalised input) it gave 0.890 gender accuracy and 8.68
        years of age MAE, against 0.878 and 8.96 for the top layer alone.
        ``inverse_transform`` needs "top".
    test_flip : bool, default=True
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
    feature_scale : float or None, default=32.0
        ``transform`` standardises each feature over the training faces
        (the means and standard deviations are learned at the end of
        ``fit``, from one more pass over them) and multiplies the whole
        vector by ``sqrt(feature_scale / n_features)``: a face's features
        then have a mean squared length of ``feature_scale`` whatever the
        size of the encoder, so a linear head's regularisation means the
        same for any of them. The default suits scikit-learn's default
        regularisation: at 48x48 (16,128 features) ``LogisticRegression()``
        acts as C=0.002 and ``RidgeCV()``'s largest alpha (10) as
        alpha=5,040 on standardised features, close to the C=0.003 and
        alpha=10,000 tuned for the recipe. Chosen among 16, 32, 48 and 96 on
        an inner split of one UTKFace fold's training faces (gender
        accuracy 0.886, 0.884, 0.883, 0.883; age MAE 8.05, 7.99, 8.00,
        8.14 years). A ``StandardScaler`` after the encoder undoes it (tune
        C and alpha yourself then); None gives the codes as they are.
    input_size : int, tuple of int (height, width) or None, default=None
        Size the images are resized to (antialiased bilinear) before
        encoding; None keeps the size seen in ``fit``.
    color : bool or None, default=None
        True encodes RGB (grey images repeated on three channels), False
        grey (RGB converted with the BT.601 luma weights), None the
        channels of the images seen in ``fit``.
    pretrain_epochs : int, default=3
        Epochs of greedy denoising training per layer; 0 leaves the layers
        at their random initialisation (an untrained encoder).
    finetune_epochs : int, default=0
        Epochs of joint denoising training of the whole stack after the
        greedy stage.
    lr : float, default=1e-3
        Adam learning rate of both stages.
    batch_size : int, default=128
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X`` (one of H, W may be
        -1, as in ``numpy.reshape``). Flat rows without it raise: a
        fetcher's ``.data`` has no shape of its own, so pass its
        ``.images`` or, for LFW, ``image_shape=(62, 47)``.
    checkpoint : path-like or None, default=None
        A folder to write the training state to after every epoch of every
        stage. A ``fit`` with the same data, parameters and folder resumes
        where an interrupted one stopped (finished stages are loaded, not
        trained again) and gives the same model as an uninterrupted fit on
        the CPU; a folder written by another fit raises. Ctrl-C always
        stops the whole fit and leaves the estimator as it was before it.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available. On CUDA the
        convolutions train in bfloat16 autocast, channels-last; features
        are computed in float32 unless inside :func:`skface.bf16_inference`.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and corruption; equal seeds give
        equal models on the CPU.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added to every training stage's net (each stage gets its own copy;
        the objects passed are not changed). skface trains without a
        validation split: early stopping watches the training loss,
        ``EarlyStopping(monitor="train_loss")``.
    verbose : "auto" or int, default="auto"
        "auto" shows a progress bar per training stage on an interactive
        terminal or notebook and nothing in logs, pipes or CI (tqdm's own
        rule); 0 shows nothing, 1 always the bars, 2 also skorch's epoch log.

    Attributes
    ----------
    net_ : FaceNet (skorch.NeuralNet)
        The net that trained every stage: ``net_.module_`` is the trained
        :class:`skface.nn.conv_dae.ConvDAEStack` and ``net_.history`` the
        joint stage's epochs. Heads build on the encoder through
        :meth:`export_trunk`.
    pretrain_histories_ : list of skorch.History
        The greedy stages' epochs, bottom layer first.
    input_size_ : tuple of int (height, width)
        Size the images are encoded at.
    n_channels_ : int
        Channels the images are encoded with (1 or 3).
    layer_channels_ : tuple of int
        Channels of each layer.
    feature_layers_ : list of int
        Layers (0 = bottom) whose codes ``transform`` gives.
    pooling_ : str
    test_flip_ : bool
        ``pooling`` and ``test_flip`` at ``fit``: the output of
        ``transform`` is fixed by the fit, whatever ``set_params`` does
        afterwards, until the next ``fit``.
    code_shape_ : tuple of int (C, h, w)
        Shape of the top code.
    contrast_ : float or None
        ``contrast`` at ``fit``.
    feature_scale_ : float or None
        ``feature_scale`` at ``fit``: what ``transform`` applies, whatever
        ``set_params`` does afterwards.
    feature_mean_, feature_gain_ : ndarray of shape (n_features,) or None
        The offset subtracted from each feature and the gain it is then
        multiplied by (0 for a feature constant over the training faces);
        None without ``feature_scale``.
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
    >>> sdae.transform(faces).shape  # both layers' codes on the 4x4 grid: (8 + 16) * 16
    (32, 384)
    >>> sdae.reconstruct(faces).shape
    (32, 16, 16, 3)
    """

    # Parameters added after models were first saved, with the value that a file or
    # pickle without them meant (the behaviour of the skface that wrote it).
    _legacy_params = {"contrast": None, "feature_scale": None}

    def __setstate__(self, state):
        for name, value in self._legacy_params.items():
            state.setdefault(name, value)
        super().__setstate__(state)

    def __init__(
        self,
        layer_channels=(64, 128, 256),
        *,
        kernel_size=3,
        convs_per_layer=1,
        contrast=2.0,
        noise="gaussian",
        noise_level=0.5,
        pooling="flatten",
        feature_layers="all",
        test_flip=True,
        feature_scale=FEATURE_SCALE,
        input_size=None,
        color=None,
        pretrain_epochs=3,
        finetune_epochs=0,
        lr=1e-3,
        batch_size=128,
        image_shape=None,
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
    ):
        self.layer_channels = layer_channels
        self.kernel_size = kernel_size
        self.convs_per_layer = convs_per_layer
        self.contrast = contrast
        self.noise = noise
        self.noise_level = noise_level
        self.pooling = pooling
        self.feature_layers = feature_layers
        self.test_flip = test_flip
        self.feature_scale = feature_scale
        self.input_size = input_size
        self.color = color
        self.pretrain_epochs = pretrain_epochs
        self.finetune_epochs = finetune_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.image_shape = image_shape
        self.callbacks = callbacks
        self.checkpoint = checkpoint
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
        if self.contrast is not None:
            check_number("contrast", self.contrast, low=0, low_inclusive=False, high=np.inf)
        check_choice("noise", self.noise, NOISE_KINDS)
        high = 1 if self.noise == "mask" else None
        check_number("noise_level", self.noise_level, low=0, high=high)
        check_choice("pooling", self.pooling, POOLINGS)
        _layer_indices(self.feature_layers, len(channels))
        check_choice("test_flip", self.test_flip, (True, False))
        if self.feature_scale is not None:
            check_number("feature_scale", self.feature_scale, low=0, low_inclusive=False,
                         high=np.inf)
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
        images, _ = self._validate_images(X, reset=True, raw=True)
        self.n_channels_ = images.shape[1] if self.color is None else (3 if self.color else 1)
        self.input_size_ = size or tuple(int(s) for s in images.shape[-2:])

        checkpoints = self._checkpoints(images)
        seed, *net_seeds = self._seeds(len(channels) + 2)
        with seeded(seed, self.device_):
            x = load_images(images, self.input_size_, self.n_channels_, self.device_)
            net = self._make_net(
                ConvDAEStack, desc="", net_class=_DenoisingNet,
                module__in_channels=self.n_channels_, module__layer_channels=tuple(channels),
                module__kernel_size=self.kernel_size, module__n_convs=self.convs_per_layer,
                module__contrast=None if self.contrast is None else float(self.contrast),
                noise=self.noise, noise_level=self.noise_level, lr=self.lr,
                batch_size=self.batch_size, optimizer=torch.optim.Adam,
            )
            net.initialize()
            fit_standardize(net.module_.standardize, x)
            histories = []
            stages = [(i, self.pretrain_epochs, f"layer {i + 1}/{len(channels)}")
                      for i in range(len(channels))]
            for stage, epochs, desc in stages + [("joint", self.finetune_epochs, "joint")]:
                name = stage if stage == "joint" else f"layer{stage}"
                # Each stage is its own small fit: a fresh optimizer and history.
                net.set_params(stage=stage, max_epochs=epochs, seed=net_seeds.pop(0))
                self._set_progress(net, desc)
                net.initialize_optimizer()
                net.history_ = History()  # not initialize_history: it clears the last one
                self._train_stage(net, x, None, checkpoints=checkpoints, stage=name,
                                  epochs=epochs)
                histories.append(net.history)
        net.module_.eval()
        self.net_ = net
        self.pretrain_histories_ = histories[:-1]
        self.layer_channels_ = tuple(channels)
        self.feature_layers_ = _layer_indices(self.feature_layers, len(channels))
        self.pooling_ = self.pooling
        self.test_flip_ = bool(self.test_flip)
        self.code_shape_ = (channels[-1], *net.module_.code_size(self.input_size_))
        self.contrast_ = None if self.contrast is None else float(self.contrast)
        self._fit_feature_scaling(images)
        return self

    def _fit_feature_scaling(self, images):
        """Per-feature offset and gain that ``transform`` applies (none without feature_scale)."""
        self.feature_scale_ = None if self.feature_scale is None else float(self.feature_scale)
        self.feature_mean_ = self.feature_gain_ = None
        if self.feature_scale_ is None:
            return
        # Batch by batch, in float64: the features of every training face would be
        # n_faces * n_features floats at once (gigabytes for a large set).
        count, total, squares = 0, 0.0, 0.0
        # Training-size batches: the fit's memory stays what training needs.
        for codes in self._iter_batched(self._features, images, device=self._device(),
                                        batch_size=self.batch_size):
            codes = codes.double()
            count += len(codes)
            total = total + codes.sum(dim=0)
            squares = squares + codes.square().sum(dim=0)
        mean = (total / count).numpy()
        std = np.sqrt(np.maximum((squares / count).numpy() - mean**2, 0.0))
        n_features = len(mean)
        # Standardised features, then a common gain: a face's feature vector has a
        # mean squared length of feature_scale whatever the number of features, so
        # a head's regularisation means the same for any encoder size. A feature
        # constant over the training faces (a dead ReLU) stays at zero.
        # Constant means a spread within rounding of the mean (the one-pass variance
        # leaves about 1e-8 of it).
        constant = std <= 1e-6 * (np.abs(mean) + 1e-3)
        gain = np.sqrt(self.feature_scale_ / n_features) / np.where(constant, np.inf, std)
        self.feature_mean_ = mean.astype(np.float32)
        self.feature_gain_ = gain.astype(np.float32)

    # -- inference -----------------------------------------------------------------------

    def _stack(self):
        return self.net_.module_.eval()

    def _device(self):
        # skorch moves a CUDA-fitted net to the CPU when unpickled without CUDA.
        return self.net_.device

    @property
    def _n_features_out(self):
        layers = self.feature_layers_
        channels = sum(self.layer_channels_[i] for i in layers)
        if self.pooling_ == "flatten":
            # Every layer used is pooled to the grid of the highest one.
            height, width = self._stack().layer_sizes(self.input_size_)[layers[-1] + 1]
            return channels * height * width
        return 2 * channels if self.pooling_ == "avgmax" else channels

    def _encode(self, x):
        return self._stack().encode(convert_images(x, self.input_size_, self.n_channels_))

    def _features(self, x):
        x = convert_images(x, self.input_size_, self.n_channels_)
        return trunk_features(self._stack().trunk(), x, self.feature_layers_, self.pooling_,
                              self.test_flip_)

    def export_trunk(self):
        """The trained encoder trunk as a spec plus weights, for models built on it.

        The SDAE heads and ``KeypointRegressor(encoder=...)`` build their
        networks from this alone.

        Returns
        -------
        trunk : skface.estimators.Trunk
            The trunk's module class (:class:`skface.nn.trunk.ConvTrunk`),
            its keyword arguments and its state dict (CPU copies), with
            the fitted feature settings (layers, pooling, mirror
            averaging), input size and channels, and the feature width.
        """
        check_is_fitted(self)
        stack = self._stack()
        state = {k: v.detach().to("cpu", copy=True)
                 for k, v in stack.trunk().state_dict().items()}
        return Trunk(
            module=ConvTrunk,
            kwargs=dict(in_channels=self.n_channels_, layer_channels=self.layer_channels_,
                        kernel_size=self.net_.module__kernel_size,
                        n_convs=self.net_.module__n_convs,
                        contrast=getattr(self.net_, "module__contrast", None)),
            state_dict=state,
            feature_layers=tuple(self.feature_layers_),
            pooling=self.pooling_,
            test_flip=self.test_flip_,
            input_size=tuple(self.input_size_),
            n_channels=self.n_channels_,
            n_features=self._n_features_out,
        )

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
        images, layout = self._validate_images(X, reset=False, raw=True)
        features = self._apply_batched(self._features, images, device=self._device())
        if getattr(self, "feature_gain_", None) is not None:
            features = (features - self.feature_mean_) * self.feature_gain_
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
        if getattr(self, "feature_gain_", None) is not None:
            # Back from the scaled features to the codes (a feature constant in
            # training, with no gain, goes back to its constant).
            gain = self.feature_gain_
            safe = np.where(gain > 0, gain, 1.0)
            codes = np.where(gain > 0, codes / safe, 0.0) + self.feature_mean_
        maps = codes.reshape(len(codes), *self.code_shape_)
        images = self._apply_batched(self._decode_images, maps, device=self._device())
        return restore_layout(images, self.image_layout_._replace(dtype=codes.dtype))

    @available_if(_has_corrupt)
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
        stats = self._stack().standardize
        mean = stats.mean.detach().cpu().numpy()
        std = stats.std.detach().cpu().numpy()
        if mean.shape[1] != images.shape[1]:  # colour input to a grey model, or back
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        rng = check_random_state(random_state)
        level = float(self.net_.noise_level)
        if self.net_.noise == "mask":
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
        images, layout = self._validate_images(X, reset=False, raw=True)
        recon = self._apply_batched(
            lambda x: self._decode_images(self._encode(x)), images, device=self._device()
        )
        return restore_layout(recon, layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def check_encoder(encoder):
    """``encoder`` (None, a ConvSDAEFeatures, or a FrozenEstimator of a fitted one), unwrapped.

    Raises
    ------
    ValueError
        For a FrozenEstimator of an unfitted encoder.
    TypeError
        For anything else.
    """
    if isinstance(encoder, FrozenEstimator):
        encoder = encoder.estimator
        if not is_fitted(encoder):
            raise ValueError(
                "encoder is a FrozenEstimator of an unfitted encoder; fit it first."
            )
    if encoder is not None and not isinstance(encoder, ConvSDAEFeatures):
        raise TypeError(
            f"encoder must be None, a ConvSDAEFeatures (fitted or not) or a "
            f"FrozenEstimator of a fitted one, got {type(encoder).__name__}."
        )
    return encoder
