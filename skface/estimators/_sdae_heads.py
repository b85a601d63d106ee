"""SDAEClassifier and SDAERegressor: a ConvSDAEFeatures encoder fine-tuned with a head."""

import numbers
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d
from torch import nn

from .._params import check_choice, check_number
from .._validation import check_targets
from ..nn.augment import flip_shift
from ..nn.trunk import TrunkHead
from .._device import seeded
from ._base import FaceEstimatorMixin, FaceNet, LRSchedule
from ._stream import convert_images
from ._encoder import is_fitted
from ._sdae import ConvSDAEFeatures, check_encoder, load_images

__all__ = ["SDAEClassifier", "SDAERegressor"]


class _AugmentNet(FaceNet):
    """skorch net that flips and shifts each training batch on the device."""

    data_parallel = True

    def __init__(self, *args, flip=False, max_shift=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip = flip
        self.max_shift = max_shift

    def train_step_single(self, batch, **fit_params):
        x, y = batch
        x = flip_shift(x, flip=self.flip, max_shift=self.max_shift, generator=self.generator_)
        return super().train_step_single(self._shard(x, y), **fit_params)


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
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
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
        self.callbacks = callbacks
        self.checkpoint = checkpoint
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

    def _image_shape_param(self):
        # The shape given to the encoder reads the head's flat rows too.
        if self.image_shape is None and self.encoder is not None:
            encoder = getattr(self.encoder, "estimator", self.encoder)  # a FrozenEstimator's
            return getattr(encoder, "image_shape", None)
        return self.image_shape

    def _fitted_encoder(self, encoder, X, seed):
        """The encoder as given when fitted, else a clone of it fitted on ``X``."""
        if is_fitted(encoder):
            return encoder
        encoder = clone(encoder)
        overrides = {}
        if encoder.random_state is None:
            overrides["random_state"] = seed
        if encoder.image_shape is None and self.image_shape is not None:
            overrides["image_shape"] = self.image_shape
        if encoder.device == "auto":
            overrides["device"] = self.device_
        if self.checkpoint is not None and encoder.checkpoint is None:
            overrides["checkpoint"] = os.path.join(self.checkpoint, "encoder")
        return encoder.set_params(**overrides).fit(X)

    def _train(self, X, images, targets, n_outputs, criterion):
        """Fine-tune a copy of the encoder's trunk with a linear head on ``targets``."""
        encoder = self._check_params()
        checkpoints = self._checkpoints(images, targets)
        encoder_seed, seed, net_seed = self._seeds(3)
        self.encoder_ = self._fitted_encoder(encoder, X, encoder_seed)
        trunk = self.encoder_.export_trunk()
        self.input_size_ = trunk.input_size
        self.n_channels_ = trunk.n_channels
        max_shift = int(round(self.max_shift * min(self.input_size_)))
        with seeded(seed, self.device_):
            x = load_images(images, self.input_size_, self.n_channels_, self.device_)
            self.net_ = self._make_net(
                TrunkHead, desc="fine-tune", net_class=_AugmentNet, seed=net_seed,
                module__trunk=trunk.kwargs, module__layers=trunk.feature_layers,
                module__pooling=trunk.pooling, module__test_flip=trunk.test_flip,
                module__n_features=trunk.n_features, module__n_outputs=n_outputs,
                module__dropout=self.dropout,
                criterion=criterion, max_epochs=self.max_epochs, lr=self.lr,
                batch_size=self.batch_size, optimizer=torch.optim.AdamW,
                optimizer__weight_decay=self.weight_decay,
                callbacks=[("lr_scheduler", LRSchedule(
                    policy="CosineAnnealingLR", T_max=max(self.max_epochs, 1)))],
                flip=self.flip, max_shift=max_shift,
            )
            self.net_.initialize()
            # A copy of the encoder's weights: fine-tuning never changes the encoder.
            self.net_.module_.trunk.load_state_dict(trunk.state_dict)
            self._train_stage(self.net_, x, targets, checkpoints=checkpoints,
                              stage="finetune", epochs=self.max_epochs)
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
        images, _ = self._validate_images(X, reset=False, raw=True)
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
        Shape of one image, to read flat rows of ``X`` (one of H, W may be
        -1, as in ``numpy.reshape``). Flat rows without it raise: a
        fetcher's ``.data`` has no shape of its own, so pass its
        ``.images`` or, for LFW, ``image_shape=(62, 47)``.
    checkpoint : path-like or None, default=None
        A folder to write the training state to after every epoch of
        fine-tuning (an unfitted encoder fitted here checkpoints into its
        ``encoder`` subfolder). A ``fit`` with the same data, parameters and folder resumes
        where an interrupted one stopped (finished stages are loaded, not
        trained again) and gives the same model as an uninterrupted fit on
        the CPU; a folder written by another fit raises. Ctrl-C always
        stops the whole fit and leaves the estimator as it was before it.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the head, shuffling and augmentation (and an unfitted
        encoder without its own seed).
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added to the fine-tuning net (a copy; the objects passed are not
        changed). There is no validation split: early stopping watches the
        training loss, ``EarlyStopping(monitor="train_loss")``.
    verbose : "auto" or int, default="auto"
        "auto" shows a progress bar per training stage on an interactive
        terminal or notebook and nothing in logs, pipes or CI (tqdm's own
        rule); 0 shows nothing, 1 always the bars, 2 also skorch's epoch log.

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
        images, _ = self._validate_images(X, reset=True, raw=True)
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
callbacks, checkpoint, device, random_state, verbose
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
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
    ):
        super().__init__(
            encoder, max_epochs=max_epochs, lr=lr, weight_decay=weight_decay,
            batch_size=batch_size, dropout=dropout, flip=flip, max_shift=max_shift,
            image_shape=image_shape, callbacks=callbacks, checkpoint=checkpoint, device=device,
            random_state=random_state, verbose=verbose,
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
        images, _ = self._validate_images(X, reset=True, raw=True)
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
