"""CenterLossEmbedder: face embeddings learnt with softmax plus center loss."""

import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._params import check_number
from .._validation import check_targets
from ..backbones import build_backbone
from ..nn.augment import center_crop, random_crop, random_flip
from ..nn.heads import ScaledLinearHead
from ..nn.losses import SoftmaxCenterLoss
from .._device import autocast, on_cuda, seeded
from ._base import FaceEstimatorMixin, FaceNet, one_cycle
from ._stream import channel_stats, device_images

__all__ = ["CenterLossEmbedder"]


class _EmbeddingModule(nn.Module):
    """Standardise, backbone, unit-normalise; ``head`` gives training logits.

    Built from data alone (the backbone's registered name or class and its
    arguments), so that skorch pickles it device-safely and
    :func:`skface.save` can write it as a spec plus a state dict.
    """

    def __init__(self, backbone, in_channels, embedding_dim, n_classes, *, feature_dim,
                 logit_scale, cosine_head, mean, std, backbone_params=None):
        super().__init__()
        self.backbone = build_backbone(
            backbone, in_channels=in_channels, embedding_dim=embedding_dim,
            **(backbone_params or {}),
        )
        self.head = ScaledLinearHead(feature_dim, n_classes, logit_scale, cosine_head)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        features = self.backbone((x - self.mean) / self.std)
        # Normalise in float32 even under autocast; backbones may or may not do it.
        return F.normalize(features.float(), dim=1)


class _EmbedderNet(FaceNet):
    """skorch net for softmax + center loss, with little host work per batch.

    Per batch: augmentation on the device, one forward and backward, the
    optimizer step, the center update and the learning-rate step; no
    ``.item()``: the batch losses reach the history once per epoch
    (``deferred_loss``).
    """

    data_parallel = True

    def __init__(self, *args, crop_size=None, flip=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.crop_size = crop_size
        self.flip = flip

    def _skip_batch(self, batch, iterator):
        # Batch norm cannot train on one image: skip a last batch of one
        # (a different image each epoch, as the order is shuffled).
        return len(batch[0]) < 2

    def _augment(self, x):
        if self.crop_size is not None:
            x = random_crop(x, self.crop_size, generator=self.generator_)
        if self.flip:
            x = random_flip(x, generator=self.generator_)
        return x

    def train_step_single(self, batch, **fit_params):
        x, y = batch
        self._set_training(True)
        x, y = self._shard(self._augment(x), y)
        with autocast(self.device):
            embeddings = self.module_(x)
            logits = self.module_.head(embeddings)
        loss = self.criterion_(embeddings, logits, y)
        loss.backward()
        self._last_batch = (embeddings.detach(), y)
        return {"loss": loss.detach(), "y_pred": logits}

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        embeddings, y = self._last_batch
        self._last_batch = None
        # Wen et al. move the centers after the network's update, at rate alpha.
        # Under data_parallel the sums of eq. 4 cover every rank's share of the batch.
        self.criterion_.center_loss.update_centers(embeddings, y, reduce=self._reduce_sum())
        return step


class CenterLossEmbedder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, FaceEstimatorMixin, BaseEstimator
):
    """Face embeddings trained with softmax over identities plus center loss.

    A backbone network (OpenFace's NN4.Small2 by default) maps each face to
    a unit-length embedding; during training a linear head on the scaled
    embedding classifies the training identities (softmax cross-entropy)
    while the center loss pulls each embedding toward its identity's center
    (Wen et al., 2016). The centers move at rate ``alpha_center`` after each
    step, not by the optimizer. After training only the embedding is used:
    :meth:`transform` returns ``(n, embedding_dim)`` unit vectors, to be
    compared by cosine similarity (:func:`skface.metrics.pair_scores`) or
    fed to another estimator.

    Training uses SGD with Nesterov momentum and a one-cycle learning rate,
    random crops of ``crop_size`` and horizontal flips, with the data held
    as tensors on the device. On CUDA the network trains in bfloat16
    autocast with channels-last memory (inference is float32 unless inside
    :func:`skface.bf16_inference`). Per batch there is no host
    synchronisation: the losses reach ``net_.history`` once per epoch. A
    last batch of a single image is skipped (batch norm needs two).

    Parameters
    ----------
    backbone : str, callable or torch.nn.Module, default="nn4_small2"
        A name from :func:`skface.backbones.list_backbones` (built in:
        "nn4_small2", "small_cnn"; plugins add theirs through the
        ``skface.backbones`` entry-point group), an ``nn.Module`` class or
        factory called as ``backbone(in_channels=..., embedding_dim=...,
        **backbone_params)``, or a module instance (copied at fit).
    backbone_params : dict, default=None
        Extra keyword arguments for the backbone factory, e.g.
        ``{"width": 16}`` for "small_cnn".
    embedding_dim : int, default=128
    lambda_center : float, default=0.1
        Weight of the center loss; 0 trains with softmax alone.
    alpha_center : float, default=0.5
        Center update rate in [0, 1].
    logit_scale : float, default=16.0
        Scale of the unit embedding before the classifier head.
    cosine_head : bool, default=False
        Normalise the head's class weights too (scaled cosine logits).
    crop_size : int or None, default=None
        Train on random ``crop_size`` squares of each image and embed the
        centre square; None uses the whole image. With
        :func:`skface.preprocessing.lfw_crop` (104 px faces) use 96.
    flip : bool, default=True
        Mirror training images left-right at random.
    test_flip : bool, default=True
        Embed each image and its mirror image and average the two (then
        renormalise).
    max_epochs : int, default=20
    lr : float, default=0.1
        Peak learning rate (the constant one with ``lr_schedule="constant"``).
    lr_schedule : {"onecycle", "constant"}, default="onecycle"
    momentum : float, default=0.9
        Nesterov momentum of SGD (plain SGD when 0).
    weight_decay : float, default=5e-3
    batch_size : int, default=256
    warm_start : bool, default=False
        When fitted already, continue from the fitted network: identities
        not seen before get new head rows and centers, known ones keep
        theirs, and the backbone goes on from its weights. The training
        settings (epochs, learning rate, loss weights, augmentation) follow
        the current parameters, ``callbacks`` included; the backbone,
        ``embedding_dim`` and the input standardisation stay those of the
        first fit. The optimizer starts afresh (new head rows need new
        parameters).
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X`` (one of H, W may be
        -1, as in ``numpy.reshape``). Flat rows without it raise: a
        fetcher's ``.data`` has no shape of its own, so pass its
        ``.images`` or, for LFW, ``image_shape=(62, 47)``.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added to ``net_`` (a copy: the objects passed are not changed; the
        fitted ones are in ``net_.callbacks_``). There is no validation
        split: early stopping watches the training loss,
        ``EarlyStopping(monitor="train_loss")``.
    checkpoint : path-like or None, default=None
        A folder to write the training state to after every epoch. A ``fit`` with the same data, parameters and folder resumes
        where an interrupted one stopped (finished stages are loaded, not
        trained again) and gives the same model as an uninterrupted fit on
        the CPU; a folder written by another fit raises. Ctrl-C always
        stops the whole fit and leaves the estimator as it was before it.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available, else CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and augmentation. Equal seeds give
        equal models on the CPU.
    verbose : "auto" or int, default="auto"
        "auto" shows a progress bar per training stage on an interactive
        terminal or notebook and nothing in logs, pipes or CI (tqdm's own
        rule); 0 shows nothing, 1 always the bars, 2 also skorch's epoch log.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted net: ``net_.module_.backbone`` is the backbone,
        ``net_.module_.head`` the training-only classifier head,
        ``net_.criterion_.center_loss`` holds the centers and
        ``net_.history`` the losses.
    classes_ : ndarray of shape (n_classes,)
        Training identities, in head-row order (with ``warm_start``, new
        ones are appended after the old).
    centers_ : ndarray of shape (n_classes, embedding_dim)
        The class centers after training.
    embedding_dim_ : int
        Size of the embeddings ``transform`` returns.
    crop_size_ : int or None
    test_flip_ : bool
        ``crop_size`` and ``test_flip`` at the last ``fit``: ``transform``
        uses these, so ``set_params`` after a fit changes nothing until the
        next one.
    image_shape_ : tuple of int (H, W, C)
        Shape of the images seen in ``fit``.
    n_features_in_ : int
        ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a DataFrame with string column names.
    device_ : str
        Device the model was fitted on.

    See Also
    --------
    skface.metrics.verification_accuracy : the LFW 10-fold protocol.
    skface.preprocessing.lfw_crop : LFW face crops for the backbone.

    References
    ----------
    Y. Wen, K. Zhang, Z. Li and Y. Qiao, "A discriminative feature learning
    approach for deep face recognition", ECCV 2016.
    B. Amos, B. Ludwiczuk and M. Satyanarayanan, "OpenFace: A
    general-purpose face recognition library with mobile applications",
    CMU-CS-16-118, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import CenterLossEmbedder
    >>> rng = np.random.RandomState(0)
    >>> faces, people = rng.rand(40, 16, 16).astype(np.float32), np.repeat(np.arange(4), 10)
    >>> embedder = CenterLossEmbedder(backbone="small_cnn", backbone_params={"width": 4},
    ...                               embedding_dim=8, max_epochs=2, batch_size=16,
    ...                               random_state=0).fit(faces, people)
    >>> embedder.transform(faces).shape
    (40, 8)
    """

    def __init__(
        self,
        backbone="nn4_small2",
        *,
        backbone_params=None,
        embedding_dim=128,
        lambda_center=0.1,
        alpha_center=0.5,
        logit_scale=16.0,
        cosine_head=False,
        crop_size=None,
        flip=True,
        test_flip=True,
        max_epochs=20,
        lr=0.1,
        lr_schedule="onecycle",
        momentum=0.9,
        weight_decay=5e-3,
        batch_size=256,
        warm_start=False,
        image_shape=None,
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
    ):
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.embedding_dim = embedding_dim
        self.lambda_center = lambda_center
        self.alpha_center = alpha_center
        self.logit_scale = logit_scale
        self.cosine_head = cosine_head
        self.crop_size = crop_size
        self.flip = flip
        self.test_flip = test_flip
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.warm_start = warm_start
        self.image_shape = image_shape
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # -- parameters --------------------------------------------------------------

    def _check_params(self):
        check_number("embedding_dim", self.embedding_dim, numbers.Integral, low=1)
        check_number("lambda_center", self.lambda_center, low=0)
        check_number("alpha_center", self.alpha_center, low=0, high=1, high_inclusive=True)
        check_number("logit_scale", self.logit_scale, low=0, low_inclusive=False)
        check_number("max_epochs", self.max_epochs, numbers.Integral, low=0)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_number("momentum", self.momentum, low=0, high=0.999, high_inclusive=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("batch_size", self.batch_size, numbers.Integral, low=1)
        if self.crop_size is not None:
            check_number("crop_size", self.crop_size, numbers.Integral, low=1)
        if self.test_flip not in (True, False):
            raise ValueError(f"test_flip must be True or False, got {self.test_flip!r}.")
        if self.lr_schedule not in ("onecycle", "constant"):
            raise ValueError(
                f"lr_schedule must be 'onecycle' or 'constant', got {self.lr_schedule!r}."
            )
        if isinstance(self.backbone, nn.Module):
            raise TypeError(
                f"backbone must be a registered name or an nn.Module class (or factory), "
                f"not a module instance ({type(self.backbone).__name__}): the network is "
                "built from a class plus backbone_params, so that a fitted model pickles "
                "device-safely and saves as a spec plus weights. Pass "
                f"backbone={type(self.backbone).__name__} and its arguments in "
                "backbone_params, or register it under the 'skface.backbones' entry points."
            )
        params = self.backbone_params or {}
        if not isinstance(params, dict):
            raise ValueError(f"backbone_params must be a dict or None, got {params!r}.")
        return dict(params)

    def _net_settings(self):
        """Settings of ``net_`` that follow the estimator's parameters on every fit."""
        return dict(
            max_epochs=self.max_epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            crop_size=self.crop_size,
            flip=self.flip,
            optimizer__momentum=self.momentum,
            optimizer__nesterov=self.momentum > 0,
            optimizer__weight_decay=self.weight_decay,
        )

    # -- fitting -------------------------------------------------------------------

    def fit(self, X, y):
        """Train the embedding network to tell the identities in ``y`` apart.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Face images (see :func:`skface._validation.check_images`); with
            ``crop_size``, at least ``crop_size`` pixels on each side.
        y : array-like of shape (n,)
            Identity of each image.

        Returns
        -------
        self : CenterLossEmbedder
        """
        backbone_params = self._check_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "it learns embeddings from the identity of each image."
            )
        continuing = self.warm_start and hasattr(self, "net_")
        device = self.device_ if continuing else self._check_common_params()
        images, _ = self._validate_images(X, reset=not continuing, raw=True)
        y = check_targets(y, len(images), estimator=self)
        if y.ndim == 2 and y.shape[1] == 1:
            y = np.ravel(y)
        elif y.ndim != 1:
            raise ValueError(
                f"y has shape {y.shape}, but {type(self).__name__} needs one identity label "
                f"per image: a 1-D y of shape ({len(images)},) (a ({len(images)}, 1) column "
                "is accepted too). Multi-output targets are not supported."
            )
        with warnings.catch_warnings():
            # Face identities often have one or two images each: not a regression target.
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            check_classification_targets(y)
        height, width, channels = self.image_shape_
        if self.crop_size is not None and self.crop_size > min(height, width):
            raise ValueError(
                f"crop_size={self.crop_size} is larger than the {height}x{width} images; "
                "use a smaller crop_size or larger images (e.g. skface.preprocessing.lfw_crop)."
            )
        n_classes = len(np.union1d(y, self.classes_) if continuing else np.unique(y))
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 identities to learn embeddings "
                "from; y holds 1 class."
            )
        # A warm start resumes nothing: each fit call is its own run.
        checkpoints = None if continuing else self._checkpoints(images, y)
        seed, net_seed = self._seeds(2)

        with seeded(seed, device):
            if continuing:
                y_index = self._extend_classes(y)
            else:
                self.device_ = device  # _make_net builds the net on it
                classes, y_index = np.unique(y, return_inverse=True)
                net, dim = self._build_net(images, len(classes), backbone_params, net_seed)
                self.net_, self.classes_, self.embedding_dim_ = net, classes, dim
            x = device_images(images, self.device_)
            targets = torch.as_tensor(y_index, dtype=torch.long, device=self.device_)
            self._train_stage(self.net_, x, targets, checkpoints=checkpoints, stage="train",
                              epochs=self.max_epochs)
        self.centers_ = self.net_.criterion_.center_loss.centers.detach().cpu().numpy().copy()
        # What transform does is fixed by the fit, whatever set_params does later.
        self.crop_size_ = self.crop_size
        self.test_flip_ = bool(self.test_flip)
        return self

    @classmethod
    def from_backbone_weights(cls, state_dict, *, image_shape, mean, std, **params):
        """A fitted embedder of a pretrained backbone, with no training identities yet.

        What :func:`skface.load` gives for a registered recognition model:
        :meth:`transform` embeds with the backbone as it was trained, and a
        ``fit`` with ``warm_start=True`` fine-tunes it on new identities
        (their head rows and centers are added; the backbone goes on from
        the pretrained weights).

        Parameters
        ----------
        state_dict : dict of str to torch.Tensor
            The backbone's weights; loaded strictly.
        image_shape : tuple of int (H, W, C)
            The input the backbone was trained on.
        mean, std : sequence of float, one per channel
            The backbone's own input standardisation, on the [0, 1] scale
            (images are ``(x - mean) / std`` before the backbone).
        **params
            Constructor parameters (``backbone`` included).

        Returns
        -------
        embedder : CenterLossEmbedder
            Fitted: ``classes_`` and ``centers_`` are empty.
        """
        est = cls(**params)
        backbone_params = est._check_params()
        est.device_ = est._check_common_params()
        height, width, channels = image_shape
        # The shape and scale transform() checks come from a probe image, as fit's would.
        est._validate_images(np.zeros((1, height, width, channels), dtype=np.uint8), reset=True)
        images = np.zeros((1, channels, height, width), dtype=np.float32)
        (net_seed,) = est._seeds(1)
        with seeded(net_seed, est.device_):
            net, dim = est._build_net(images, 0, backbone_params, net_seed, stats=(mean, std))
        try:
            net.module_.backbone.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"The weights do not fit backbone {est.backbone!r}: {exc}") from None
        est.net_, est.classes_, est.embedding_dim_ = net, np.array([]), dim
        est.centers_ = net.criterion_.center_loss.centers.detach().cpu().numpy().copy()
        est.crop_size_ = est.crop_size
        est.test_flip_ = bool(est.test_flip)
        return est

    def _schedule(self):
        # Momentum stays as the user set it: cycling it would override momentum=0.
        return [one_cycle(cycle_momentum=False)] if self.lr_schedule == "onecycle" else []

    def _build_net(self, images, n_classes, backbone_params, seed, stats=None):
        """An initialised net for ``n_classes`` identities, and the embedding size.

        ``stats``: the input standardisation ``(mean, std)`` per channel, when
        it is the backbone's own (a pretrained one) rather than the data's.
        """
        channels = images.shape[1]
        backbone = dict(backbone=self.backbone, in_channels=channels,
                        embedding_dim=self.embedding_dim, backbone_params=backbone_params)
        dim = self._probe_dim(backbone, images)
        mean, std = channel_stats(images) if stats is None else map(np.asarray, stats)
        net = self._make_net(
            _EmbeddingModule,
            desc="CenterLossEmbedder",
            net_class=_EmbedderNet,
            callbacks=self._schedule(),
            seed=seed,
            **{f"module__{k}": v for k, v in backbone.items()},
            module__n_classes=n_classes,
            module__feature_dim=dim,
            module__logit_scale=self.logit_scale,
            module__cosine_head=self.cosine_head,
            module__mean=mean.tolist(),
            module__std=np.where(std > 1e-6, std, 1.0).tolist(),
            criterion=SoftmaxCenterLoss,
            criterion__n_classes=n_classes,
            criterion__n_features=dim,
            criterion__lambda_center=self.lambda_center,
            criterion__alpha_center=self.alpha_center,
            optimizer=torch.optim.SGD,
            **self._net_settings(),
        )
        net.initialize()
        if on_cuda(self.device_):
            net.module_.to(memory_format=torch.channels_last)
        return net, dim

    def _probe_dim(self, backbone, images):
        """Output size of the backbone, from one shape-only pass on the meta device."""
        height, width = images.shape[2:]
        size = (height, width) if self.crop_size is None else self.crop_size
        sample = center_crop(torch.from_numpy(images[:2]), size).contiguous()
        # No weights made and no random numbers drawn: the seeded initialisation
        # of the real net is the same with or without the probe. A bad name,
        # factory or parameter raises here, saying what is wrong.
        with torch.device("meta"):
            module = build_backbone(
                backbone["backbone"], in_channels=backbone["in_channels"],
                embedding_dim=backbone["embedding_dim"], **(backbone["backbone_params"] or {}),
            ).eval()
        try:
            out = module(sample.to("meta"))
        except Exception as exc:
            raise ValueError(
                f"The backbone failed on images of shape {tuple(sample.shape[1:])} (C, H, W): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if out.ndim != 2 or out.shape[0] != len(sample):
            raise ValueError(
                f"The backbone must return (n, embedding_dim) features; got shape "
                f"{tuple(out.shape)} for {len(sample)} images."
            )
        return int(out.shape[1])

    def _extend_classes(self, y):
        """Add head rows and centers for unseen identities; head-row index of each label."""
        net = self.net_
        new = np.setdiff1d(np.unique(y), self.classes_)
        if len(new):
            # A pretrained embedder has no identities yet: its classes_ take y's dtype.
            self.classes_ = np.concatenate([self.classes_, new]) if len(self.classes_) else new
            net.module_.head.add_classes(len(new))
            net.criterion_.center_loss.add_classes(len(new))
            # Kept in step so that the net's parameters describe its modules: the
            # spec that skface.save writes and skface.load rebuilds from.
            net.criterion__n_classes = net.module__n_classes = len(self.classes_)
        net.criterion_.lambda_center = self.lambda_center
        net.criterion_.center_loss.alpha = self.alpha_center
        for name, value in self._net_settings().items():
            setattr(net, name, value)
        net.callbacks = self._net_callbacks(self._schedule(), "CenterLossEmbedder")
        net.initialize_callbacks()
        # The head's parameters were replaced: the optimizer must hold the new ones.
        net.initialize_optimizer()
        sorter = np.argsort(self.classes_)
        return sorter[np.searchsorted(self.classes_, y, sorter=sorter)]

    # -- inference -------------------------------------------------------------------

    @property
    def _n_features_out(self):
        return self.embedding_dim_

    def _embed(self, x):
        module = self.net_.module_
        if self.crop_size_ is not None:
            x = center_crop(x, self.crop_size_)
        embeddings = module(x)
        if self.test_flip_:
            embeddings = F.normalize(embeddings + module(x.flip(3)), dim=1)
        return embeddings

    def transform(self, X):
        """Unit-length embeddings of the faces.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the fitted size.

        Returns
        -------
        embeddings : ndarray of shape (n, embedding_dim)
            Rows of unit L2 norm; float64 for float64 input, else float32.
        """
        check_is_fitted(self)
        images, layout = self._validate_images(X, reset=False, raw=True)
        self.net_.module_.eval()
        # A model fitted on CUDA and unpickled on a CPU-only machine runs on the CPU:
        # skorch moved the net there.
        out = self._apply_batched(self._embed, images, device=self.net_.device, batch_size=512)
        return out.astype(layout.dtype, copy=False)
