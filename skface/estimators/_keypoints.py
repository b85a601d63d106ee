"""KeypointRegressor: facial keypoints by a CNN, with missing labels and SDAE pretraining."""

import numbers
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from .._params import check_number, check_size
from .._validation import _warn_at_caller
from ..metrics import keypoint_rmse
from ..nn.keypoints import (
    default_flip_pairs,
    flip_permutation,
    random_affine,
    warp_images,
    warp_keypoints,
)
from ..nn.losses import MaskedMSELoss
from ..nn.trunk import ConvTrunk, TrunkKeypointHead
from .._device import autocast, on_cuda, seeded
from ._base import FaceEstimatorMixin, FaceNet, one_cycle
from ._encoder import is_fitted
from ._sdae import ConvSDAEFeatures, check_encoder
from ._stream import convert_images, device_images, fit_standardize, to_tensor

__all__ = ["KeypointRegressor"]

_POOLINGS = ("avg", "flatten")

# Stands in for the missing partner of a known coordinate during augmentation.
_STAND_IN = 1e30


# -- the network -----------------------------------------------------------------------


class _KeypointNet(FaceNet):
    """skorch net: keypoint-consistent augmentation on the device, few syncs.

    Targets are normalised coordinates ``(n, 2K)`` in [-1, 1] of the model's
    input (NaN where missing). Per batch there is no host synchronisation:
    batch losses reach ``history`` once per epoch (``deferred_loss``), and
    the augmentation's constants are built once per fit.
    """

    data_parallel = True

    def __init__(self, *args, flip_perm=None, rotation=0.0, scale=0.0, shift=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip_perm = flip_perm
        self.rotation = rotation
        self.scale = scale
        self.shift = shift

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # Built once on the device: a tensor from a Python list per batch is a
        # host-to-device copy each step.
        self.flip_perm_ = (None if self.flip_perm is None
                           else torch.as_tensor(self.flip_perm, device=self.device))
        self.half_ = None
        if X is not None:
            height, width = X.shape[-2:]
            self.half_ = torch.tensor([width / 2.0, height / 2.0], device=self.device)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.flip_perm_ = self.half_ = None

    def _skip_batch(self, batch, iterator):
        # Batch norm cannot train on one image: skip a last training batch of one,
        # unless it is the only batch.
        return len(batch[0]) < 2 and len(iterator) > 1

    def _augment(self, x, y):
        flip = self.flip_perm is not None
        if not (flip or self.rotation or self.scale or self.shift):
            return x, y
        half = self.half_
        points = (y.view(len(y), -1, 2) + 1) * half  # normalised -> pixels
        # A coordinate whose partner is missing (x known, y NaN) moves on its own
        # under mirroring, zoom and shift, but a rotation mixes in the partner: its
        # image is not rotated, and the partner is a large finite stand-in, not NaN,
        # which the matrix product would spread to it (NaN * 0 is NaN). The stand-in
        # comes out far beyond any image and is NaN again; all branch-free, no sync.
        missing = torch.isnan(points)
        lone = missing[..., 0] != missing[..., 1]
        points = torch.where(missing & lone[..., None], _STAND_IN, points)
        size = tuple(x.shape[-2:])
        # augment_keypoints, with the rotation dropped where needed.
        matrix, flipped = random_affine(
            len(x), size, flip=flip, rotation=self.rotation, scale=self.scale,
            shift=self.shift, generator=self.generator_, device=x.device,
        )
        if self.rotation:
            zoom = torch.hypot(matrix[:, 1, 0], matrix[:, 1, 1])
            sign = 1 - 2 * flipped.to(matrix.dtype)
            upright = torch.diag_embed(torch.stack([zoom * sign, zoom], dim=1))
            linear = torch.where(lone.any(dim=1)[:, None, None], upright, matrix[:, :, :2])
            matrix = torch.cat([linear, matrix[:, :, 2:]], dim=2)
        x = warp_images(x, matrix)
        points = warp_keypoints(points, matrix, size, flipped, self.flip_perm_)
        points = torch.where(points.abs() > _STAND_IN / 1e10, torch.nan, points)
        if on_cuda(x.device):
            x = x.contiguous(memory_format=torch.channels_last)  # grid_sample returns NCHW
        return x, (points / half - 1).reshape(len(y), -1)

    def train_step_single(self, batch, **fit_params):
        x, y = batch
        self._set_training(True)
        x, y = self._shard(*self._augment(x, y))
        with autocast(self.device):
            y_pred = self.module_(x)
        loss = self.get_loss(y_pred, y, X=x, training=True)
        loss.backward()
        return {"loss": loss.detach(), "y_pred": y_pred}


# -- checks --------------------------------------------------------------------------


def _check_keypoints(y, n_samples, estimator):
    """Targets as float64 (n, K, 2), and the number of flat columns (None for 3-D ``y``).

    Flat targets are x0, y0, x1, y1, ...; an odd count ends with an x whose
    y is not given, which is treated as missing.
    """
    name = type(estimator).__name__
    if y is None:
        raise ValueError(
            f"{name} requires y to be passed, but the target y is None: it learns keypoint "
            "coordinates, (n_samples, n_keypoints, 2) or flat (n_samples, 2 * n_keypoints)."
        )
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must hold numeric keypoint coordinates: {exc}") from exc
    if y.ndim == 0 or len(y) != n_samples:
        got = "a scalar" if y.ndim == 0 else f"{len(y)} entries"
        raise ValueError(
            f"y has {got} but X has {n_samples} images; {name} needs the keypoints of each "
            "image, in the same order."
        )
    if y.ndim == 1:
        raise ValueError(
            f"{name} needs keypoint targets of shape (n_samples, n_keypoints, 2) or flat "
            f"(n_samples, 2 * n_keypoints) as x0, y0, x1, y1, ...; got a 1-D y of shape "
            f"{y.shape}. For a single coordinate per image use y.reshape(-1, 1)."
        )
    if y.ndim not in (2, 3) or (y.ndim == 3 and y.shape[2] != 2):
        raise ValueError(
            f"{name} needs keypoint targets of shape (n_samples, n_keypoints, 2) or flat "
            f"(n_samples, 2 * n_keypoints) as x0, y0, x1, y1, ...; got shape {y.shape}."
        )
    if y.shape[1] == 0:
        raise ValueError(f"y has shape {y.shape}: no keypoints to learn.")
    if np.isinf(y).any():
        raise ValueError(
            "Input y contains infinity; mark a missing keypoint with NaN, not infinity."
        )
    if np.isnan(y).all():
        raise ValueError("Input y contains NaN only: every keypoint is missing.")
    if y.ndim == 3:
        return y, None
    columns = y.shape[1]
    if columns % 2:
        y = np.concatenate([y, np.full((n_samples, 1), np.nan)], axis=1)
    return y.reshape(n_samples, -1, 2), columns


# -- the estimator ---------------------------------------------------------------------


class KeypointRegressor(RegressorMixin, FaceEstimatorMixin, BaseEstimator):
    """Facial keypoint regression with a CNN, missing labels, and optional SDAE pretraining.

    Images of any size are resized (antialiased bilinear) to ``input_size``
    and passed through a convolutional trunk, the encoder stack of
    :class:`~skface.estimators.ConvSDAEFeatures` (``layer_channels``
    blocks of ``convs_per_layer`` 3x3 convolutions with batch norm and ReLU,
    each block halving the size); the feature maps are pooled, dropped out
    and mapped by a linear layer to the coordinates. Keypoints are learnt in
    coordinates relative to the image, so :meth:`predict` gives them in
    pixels of whatever images it is given.

    Missing keypoints (NaN) are left out of the loss: it is the mean squared
    error over the observed coordinates (:func:`skface.nn.losses.masked_mse`),
    so every image with at least one keypoint helps train, and no keypoint
    is pulled toward a fill-in value. On Kaggle's ``training.csv`` all 7,049
    rows are used, not only the 2,140 complete ones.

    Training augments each batch on the device, images and keypoints
    transformed together in one ``grid_sample`` call: left-right flips that
    swap the left and right keypoints, small rotations, zooms and shifts.
    Training uses AdamW with a one-cycle learning rate. On CUDA the trunk
    trains in bfloat16 autocast, channels-last, the head in float32;
    ``predict`` runs in float32 unless inside :func:`skface.bf16_inference`.

    Coordinates are in pixels with the image spanning ``[0, W] x [0, H]``:
    the centre of the top-left pixel is ``(0.5, 0.5)``. This is how
    resizing scales them (``x * new_width / width``, as
    :func:`~skface.datasets.fetch_youtube_faces_keypoints` does) and how a
    mirror maps them (``x -> W - x``). For labels that put pixel centres at
    whole numbers instead (``x`` = column index), add 0.5 to ``y`` before
    fitting and subtract it from predictions: otherwise a mirrored ``x``
    comes out one pixel off, and flipping teaches a bias of half a pixel.

    Parameters
    ----------
    layer_channels : tuple of int, default=(32, 64, 128, 256, 256)
        Channels of the trunk's blocks, bottom up; each halves the height
        and width (96 -> 3 with five). Ignored when ``encoder`` is given.
    convs_per_layer : int, default=2
        3x3 convolutions per block, the last with stride 2. Ignored when
        ``encoder`` is given.
    pooling : {"avg", "flatten"}, default="avg"
        Global average of each channel of the top feature maps, or every
        value of them (``C * h * w`` features, tied to ``input_size``).
    dropout : float, default=0.3
        Dropout on the pooled features, in [0, 1).
    input_size : int, tuple of int (height, width) or None, default=96
        Size the images are resized to; None keeps the size seen in ``fit``.
    color : bool or None, default=None
        True models RGB (grey repeated on three channels), False grey (RGB
        converted with the BT.601 luma weights), None the channels of the
        images seen in ``fit``.
    flip_pairs : "auto", None or sequence of (int, int), default="auto"
        Left/right keypoint pairs that swap when an image is mirrored
        during training. "auto" uses the built-in pairs for 15 keypoints
        (Kaggle's layout, :data:`skface.nn.keypoints.KAGGLE_15_FLIP_PAIRS`)
        and 68 (iBUG 300-W, :data:`~skface.nn.keypoints.IBUG_68_FLIP_PAIRS`),
        and does not flip other layouts: mirroring without knowing which
        point is whose mirror would teach the model to confuse left and
        right. None never flips.
    rotation : float, default=10.0
        Largest random rotation of a training image, in degrees; 0 disables.
    scale : float, default=0.1
        Largest random relative zoom, in [0, 1); 0 disables.
    shift : float, default=0.05
        Largest random shift as a fraction of the image size, in [0, 0.5);
        0 disables.
    pretrain : {None, "sdae"}, default=None
        "sdae" first trains the trunk without labels as a stacked
        convolutional denoising autoencoder (a
        :class:`~skface.estimators.ConvSDAEFeatures` with the same layers,
        fitted on the training images for ``pretrain_epochs`` epochs per
        layer), then fine-tunes it on the keypoints. None starts from a
        random initialisation.
    pretrain_epochs : int, default=5
        Greedy denoising epochs per layer with ``pretrain="sdae"``.
    encoder : ConvSDAEFeatures, FrozenEstimator of one, or None, default=None
        Where the trunk comes from, instead of ``layer_channels``,
        ``convs_per_layer`` and ``pretrain``: a fitted encoder gives its
        trained layers (copied; it is not changed, and it must encode the
        regressor's number of channels), an unfitted one is cloned and
        fitted on the training images at ``input_size`` first. Wrap a
        fitted encoder in :class:`sklearn.frozen.FrozenEstimator` to keep
        its weights through ``clone`` (cross-validation, grid search).
    max_epochs : int, default=80
    lr : float, default=3e-3
        Peak learning rate of the one-cycle schedule.
    weight_decay : float, default=1e-2
        AdamW's decoupled weight decay.
    batch_size : int, default=64
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X`` (one of H, W may be
        -1, as in ``numpy.reshape``). Flat rows without it raise: a
        fetcher's ``.data`` has no shape of its own, so pass its
        ``.images`` or, for LFW, ``image_shape=(62, 47)``.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added to ``net_`` (a copy: the objects passed are not changed; the
        fitted ones are in ``net_.callbacks_``). There is no validation
        split: early stopping watches the training loss,
        ``EarlyStopping(monitor="train_loss")``. Pretraining an encoder
        (``pretrain="sdae"``) does not use them.
    checkpoint : path-like or None, default=None
        A folder to write the training state to after every epoch (an
        encoder pretrained here checkpoints into its ``encoder`` subfolder). A ``fit`` with the same data, parameters and folder resumes
        where an interrupted one stopped (finished stages are loaded, not
        trained again) and gives the same model as an uninterrupted fit on
        the CPU; a folder written by another fit raises. Ctrl-C always
        stops the whole fit and leaves the estimator as it was before it.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, pretraining, shuffling and augmentation;
        equal seeds give equal models on the CPU.
    verbose : "auto" or int, default="auto"
        "auto" shows a progress bar per training stage on an interactive
        terminal or notebook and nothing in logs, pipes or CI (tqdm's own
        rule); 0 shows nothing, 1 always the bars, 2 also skorch's epoch log.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network (``net_.module_.trunk``, ``.head``) and its history.
    encoder_ : ConvSDAEFeatures or None
        The pretrained encoder the trunk was copied from; None without pretraining.
    n_keypoints_ : int
        K, the number of keypoints.
    flip_pairs_ : tuple of (int, int) or None
        The left/right pairs used for flipping; None when not flipping.
    mean_shape_ : ndarray of shape (n_keypoints, 2)
        Mean of each observed keypoint, relative to the image: (x / W, y / H).
    input_size_ : tuple of int (height, width)
    n_channels_ : int
        Size and channels the images are converted to.
    image_shape_ : tuple of int (H, W, C)
        Shape of the images seen in ``fit``.
    n_features_in_ : int
        ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a DataFrame with string column names.
    device_ : str

    See Also
    --------
    skface.metrics.keypoint_rmse : RMSE overall or per keypoint, ignoring missing ones.
    skface.plotting.plot_keypoints : predicted and true keypoints drawn on faces.
    skface.datasets.write_keypoints_submission : a Kaggle submission from predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import KeypointRegressor
    >>> rng = np.random.RandomState(0)
    >>> faces = rng.rand(32, 24, 24).astype(np.float32)
    >>> points = rng.uniform(4, 20, size=(32, 5, 2))
    >>> points[0, 1] = np.nan  # a missing keypoint
    >>> reg = KeypointRegressor((8, 16), convs_per_layer=1, input_size=24, max_epochs=2,
    ...                         random_state=0).fit(faces, points)
    >>> reg.predict(faces).shape
    (32, 5, 2)
    >>> reg.predict(rng.rand(3, 48, 48)).shape  # other sizes: pixels of those images
    (3, 5, 2)
    """

    def __init__(
        self,
        layer_channels=(32, 64, 128, 256, 256),
        *,
        convs_per_layer=2,
        pooling="avg",
        dropout=0.3,
        input_size=96,
        color=None,
        flip_pairs="auto",
        rotation=10.0,
        scale=0.1,
        shift=0.05,
        pretrain=None,
        pretrain_epochs=5,
        encoder=None,
        max_epochs=80,
        lr=3e-3,
        weight_decay=1e-2,
        batch_size=64,
        image_shape=None,
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
    ):
        self.layer_channels = layer_channels
        self.convs_per_layer = convs_per_layer
        self.pooling = pooling
        self.dropout = dropout
        self.input_size = input_size
        self.color = color
        self.flip_pairs = flip_pairs
        self.rotation = rotation
        self.scale = scale
        self.shift = shift
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.encoder = encoder
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.image_shape = image_shape
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        # Targets are (x, y) pairs: never a single column.
        tags.target_tags.single_output = False
        # score is the negative RMSE in pixels, not R^2: "score > 0.5" does not apply.
        tags.regressor_tags.poor_score = True
        return tags

    # -- parameters ----------------------------------------------------------------------

    def _check_params(self):
        if self.encoder is None:
            channels = np.atleast_1d(np.asarray(self.layer_channels, dtype=object))
            if channels.ndim != 1 or len(channels) == 0:
                raise ValueError(
                    f"layer_channels must be a non-empty sequence of positive ints, got "
                    f"{self.layer_channels!r}."
                )
            for c in channels:
                check_number("every entry of layer_channels", c, numbers.Integral, low=1)
            check_number("convs_per_layer", self.convs_per_layer, numbers.Integral, low=1)
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}.")
        if self.color not in (None, True, False):
            raise ValueError(f"color must be None, True or False, got {self.color!r}.")
        if self.pretrain not in (None, "sdae"):
            raise ValueError(f"pretrain must be None or 'sdae', got {self.pretrain!r}.")
        if self.pretrain is not None and self.encoder is not None:
            raise ValueError(
                "Pass either pretrain='sdae' or an encoder, not both: the encoder brings "
                "its own layers and pretraining."
            )
        check_number("dropout", self.dropout, low=0, high=1)
        check_number("rotation", self.rotation, low=0, high=180)
        check_number("scale", self.scale, low=0, high=1)
        check_number("shift", self.shift, low=0, high=0.5)
        check_number("pretrain_epochs", self.pretrain_epochs, numbers.Integral, low=0)
        check_number("max_epochs", self.max_epochs, numbers.Integral, low=0)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("batch_size", self.batch_size, numbers.Integral, low=1)
        return check_size(self.input_size)

    def _check_encoder(self):
        return check_encoder(self.encoder)

    def _resolve_flip_pairs(self, n_keypoints):
        pairs = self.flip_pairs
        if isinstance(pairs, str):
            if pairs != "auto":
                raise ValueError(
                    f"flip_pairs must be 'auto', None or a sequence of (i, j) pairs, got "
                    f"{pairs!r}."
                )
            pairs = default_flip_pairs(n_keypoints)
        if pairs is None:
            return None, None
        try:
            pairs = tuple((int(i), int(j)) for i, j in pairs)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"flip_pairs must be 'auto', None or a sequence of (i, j) index pairs, got "
                f"{self.flip_pairs!r}."
            ) from exc
        return pairs, flip_permutation(pairs, n_keypoints)

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X, y):
        """Train the network on images and their keypoints.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Face images of one size (see :func:`skface._validation.check_images`).
        y : array-like of shape (n, K, 2) or (n, 2K)
            (x, y) of each keypoint in pixels of its image, flat as
            x0, y0, x1, y1, ... (the column order of Kaggle's and the
            YouTube Faces CSVs). NaN where a keypoint is missing; an image
            may have any number missing. A coordinate whose partner is
            missing is learnt too: in training its image is mirrored,
            zoomed and shifted but not rotated (a rotated x needs y). An
            odd number of flat columns ends with an x alone.

        Returns
        -------
        self : KeypointRegressor
        """
        size = self._check_params()
        encoder = self._check_encoder()
        self.device_ = self._check_common_params()
        images, _ = self._validate_images(X, reset=True, raw=True)
        keypoints, self._flat_columns = _check_keypoints(y, len(images), self)
        self.n_keypoints_ = keypoints.shape[1]
        self.flip_pairs_, perm = self._resolve_flip_pairs(self.n_keypoints_)
        height, width, channels = self.image_shape_
        self.input_size_ = size or (height, width)
        self.n_channels_ = channels if self.color is None else (3 if self.color else 1)

        # Relative coordinates: (x / W, y / H) of the image the keypoints belong to.
        relative = keypoints / np.array([width, height], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            mean = np.nanmean(relative, axis=0)
        never = np.isnan(mean).ravel()[: self._flat_columns]
        if never.any():
            _warn_at_caller(
                f"Target columns {np.flatnonzero(never).tolist()} (x0, y0, x1, ...) are never "
                "observed in y: they cannot be learnt and are predicted at the image centre.",
            )
        self.mean_shape_ = np.where(np.isnan(mean), 0.5, mean)

        checkpoints = self._checkpoints(images, relative)
        seed, pretrain_seed, net_seed = self._seeds(3)
        with seeded(seed, self.device_):
            x = self._load(images, self.device_)
            trunk, self.encoder_ = self._trunk(x, encoder, pretrain_seed)
            self.net_ = self._make_net(
                TrunkKeypointHead, desc="KeypointRegressor", net_class=_KeypointNet,
                seed=net_seed, module__trunk=trunk.kwargs if trunk else self._trunk_kwargs(),
                module__pooling=self.pooling,
                module__n_features=self._n_trunk_features(trunk, x),
                module__n_outputs=2 * self.n_keypoints_, module__dropout=self.dropout,
                module__mean_shape=(2 * self.mean_shape_.ravel() - 1).tolist(),
                callbacks=[one_cycle()], criterion=MaskedMSELoss,
                optimizer=torch.optim.AdamW, optimizer__weight_decay=self.weight_decay,
                max_epochs=self.max_epochs, lr=self.lr, batch_size=self.batch_size,
                flip_perm=None if perm is None else [int(i) for i in perm],
                rotation=self.rotation, scale=self.scale, shift=self.shift,
            )
            self.net_.initialize()
            if trunk is None:
                fit_standardize(self.net_.module_.trunk[0], x)  # the pixel standardisation
            else:
                # A copy of the encoder's weights: training never changes the encoder.
                self.net_.module_.trunk.load_state_dict(trunk.state_dict)
            if on_cuda(self.device_):
                self.net_.module_.to(memory_format=torch.channels_last)
            targets = to_tensor((2 * relative - 1).reshape(len(images), -1), self.device_)
            self._train_stage(self.net_, x, targets, checkpoints=checkpoints, stage="train",
                              epochs=self.max_epochs)
        self.net_.module_.eval()
        return self

    def _load(self, images, device):
        """Validated images -> float32 (n, C, H, W) on ``device`` at the model's size and channels.

        A tensor, or for uint8 and memory-mapped input a ``DeviceImages``
        that converts batch by batch.
        """
        return device_images(images, device, self.input_size_, self.n_channels_)

    def _trunk_kwargs(self):
        return dict(
            in_channels=self.n_channels_,
            layer_channels=tuple(int(c) for c in np.atleast_1d(self.layer_channels)),
            n_convs=self.convs_per_layer,
        )

    def _trunk(self, x, encoder, seed):
        """The exported trunk of the encoder (fitted here if needed) and the encoder.

        (None, None) without an encoder or pretraining: the net builds a fresh trunk.
        """
        if encoder is None and self.pretrain is None:
            return None, None
        if encoder is None:
            encoder = ConvSDAEFeatures(
                tuple(int(c) for c in np.atleast_1d(self.layer_channels)),
                convs_per_layer=self.convs_per_layer, pretrain_epochs=self.pretrain_epochs,
                batch_size=self.batch_size,
                # The settings this pretraining was measured with (bench/keypoints.py):
                # raw pixels, masking noise; only the trunk is used, so no feature scaling.
                contrast=None, noise="mask", noise_level=0.3, feature_layers="top",
                test_flip=False, feature_scale=None,
            )
        if not is_fitted(encoder):
            # The encoder sees exactly what the regressor will: resized, converted images.
            encoder = clone(encoder).set_params(
                input_size=None, color=None, image_shape=None, device=self.device_,
                verbose=self.verbose,
                random_state=seed if encoder.random_state is None else encoder.random_state,
            )
            if self.checkpoint is not None and encoder.checkpoint is None:
                encoder.set_params(checkpoint=os.path.join(self.checkpoint, "encoder"))
            if isinstance(x, torch.Tensor):
                encoder.fit(x.permute(0, 2, 3, 1).float().cpu().numpy())
            else:
                # The caller's uint8 or memory-mapped images, which the encoder
                # streams too, resized and converted batch by batch as here.
                encoder.set_params(input_size=x.size,
                                   color=None if x.channels is None else x.channels == 3)
                encoder.fit(x.raw.nhwc())
        elif encoder.n_channels_ != self.n_channels_:
            raise ValueError(
                f"The encoder encodes {encoder.n_channels_}-channel images but the regressor "
                f"models {self.n_channels_}; set color={encoder.n_channels_ == 3} or refit "
                "the encoder."
            )
        return encoder.export_trunk(), encoder

    def _n_trunk_features(self, trunk, x):
        """Number of pooled features, from a shape-only pass on the meta device."""
        kwargs = trunk.kwargs if trunk else self._trunk_kwargs()
        with torch.device("meta"):  # no weights made, no random numbers drawn
            maps = ConvTrunk(**kwargs).eval()(torch.empty(1, *x.shape[1:]))
        return int(maps.shape[1] if self.pooling == "avg" else maps[0].numel())

    # -- inference -----------------------------------------------------------------------

    def _validate_any_size(self, X):
        """Images (n, C, H, W) of any size; flat rows must have the fitted shape."""
        check_is_fitted(self)
        ndim = getattr(X, "ndim", None)
        if ndim is None:
            X = np.asarray(X)
            ndim = X.ndim
        if ndim == 2:
            # A flat row has no shape of its own: it is read in the fitted one.
            images, _ = self._validate_images(X, reset=False, raw=True)
            return images
        # Any size, but warned like predict when the scale is not the fitted one.
        images, _ = self._validate_images(X, reset=False, any_size=True, raw=True)
        return images

    def _relative(self, images):
        """Predicted (n, K, 2) coordinates relative to the image, float64."""
        module = self.net_.module_.eval()

        def forward(x):
            return module(convert_images(x, self.input_size_, self.n_channels_))

        out = self._apply_batched(forward, images, device=self.net_.device, batch_size=256)
        return (out.astype(np.float64).reshape(len(images), -1, 2) + 1) / 2

    def predict(self, X):
        """Keypoints of each face, in pixels of the images given.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of any one size (flat rows: the size seen in ``fit``).

        Returns
        -------
        keypoints : ndarray of shape (n, K, 2) or (n, 2K)
            (x, y) in pixels of ``X``'s images, float64, in the shape of the
            ``y`` seen in ``fit`` (flat: as many columns).
        """
        images = self._validate_any_size(X)
        height, width = images.shape[-2:]
        points = self._relative(images) * np.array([width, height], dtype=np.float64)
        if self._flat_columns is None:
            return points
        return points.reshape(len(points), -1)[:, : self._flat_columns]

    def score(self, X, y, sample_weight=None):
        """Negative root mean squared error of the coordinates, in pixels.

        Missing keypoints (NaN in ``y``) are left out. Higher is better, as
        scikit-learn's model selection expects.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        y : array-like of shape (n, K, 2) or (n, 2K)
            True keypoints in pixels of ``X``'s images, NaN where missing.
        sample_weight : array-like of shape (n,), default=None
            Weight of each image's squared errors.

        Returns
        -------
        score : float
            ``-keypoint_rmse(y, self.predict(X))``.
        """
        return -keypoint_rmse(y, self.predict(X), sample_weight=sample_weight)
