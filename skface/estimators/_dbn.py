"""DBNReconstructor: a deep belief network pretrained by CD and fine-tuned as an autoencoder."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from .._params import check_number
from .._validation import restore_layout
from ..nn.rbm import RBM, cd_step, sample_stack, unroll
from .._device import autocast, seeded
from ._base import FaceEstimatorMixin, FaceNet
from ._stream import to_tensor

__all__ = ["DBNReconstructor"]


class _RBMNet(FaceNet):
    """skorch net whose training step is one contrastive-divergence update of an RBM.

    The logged ``train_loss`` is the one-step reconstruction error.
    """

    def __init__(self, *args, cd_k=1, persistent=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.cd_k = cd_k
        self.persistent = persistent

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.chain_ = None

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.chain_ = None

    def train_step(self, batch, **fit_params):
        v, _ = batch
        self.module_.train()
        chain = None
        if self.persistent:
            # Chains start at the first batch's data, then run on their own.
            chain = v.clone() if self.chain_ is None else self.chain_
        with autocast(self.device):
            error, chain = cd_step(
                self.module_, v, self.optimizer_, k=self.cd_k, chain=chain,
                generator=self.generator_,
            )
        if self.persistent:
            self.chain_ = chain
        return {"loss": error, "y_pred": None}


class _DeepAutoencoder(nn.Module):
    """Unrolled RBM stack: standardise, encode to the code layer, decode, unstandardise."""

    def __init__(self, layer_sizes, visible="gaussian", code="gaussian"):
        super().__init__()
        rbms = [RBM(**spec) for spec in _layer_specs(layer_sizes, visible, code)]
        self.encoder, self.decoder = unroll(rbms)
        self.register_buffer("mean", torch.zeros(layer_sizes[0]))
        self.register_buffer("scale", torch.ones(layer_sizes[0]))

    def encode(self, x):
        return self.encoder((x - self.mean) / self.scale)

    def decode(self, code):
        return self.decoder(code) * self.scale + self.mean

    def forward(self, x):
        return self.decode(self.encode(x))


def _layer_specs(layer_sizes, visible, code):
    """RBM keyword arguments for ``layer_sizes`` (visible size first), bottom up."""
    n_layers = len(layer_sizes) - 1
    return [
        dict(
            n_visible=layer_sizes[i],
            n_hidden=layer_sizes[i + 1],
            visible=visible if i == 0 else "bernoulli",
            hidden=code if i == n_layers - 1 else "bernoulli",
        )
        for i in range(n_layers)
    ]


def _default_lr(spec):
    gaussian = "gaussian" in (spec["visible"], spec["hidden"])
    return 0.003 if gaussian else 0.05




class DBNReconstructor(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, FaceEstimatorMixin, BaseEstimator
):
    """Deep belief network that encodes and reconstructs face images.

    A stack of RBMs is trained greedily, bottom up, by contrastive
    divergence (CD-k or persistent CD): the first has Gaussian visible
    units on standardised pixels (or Bernoulli units on [0, 1] pixels), the
    rest are Bernoulli, and the top one has linear code units by default.
    The stack is then unrolled into a deep autoencoder and fine-tuned by
    backpropagation (AdamW) on the squared reconstruction error (Hinton &
    Salakhutdinov, Science 2006). Each stage is a skorch fit.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(1000, 500, 250, 64)
        Units of each hidden layer, bottom up; the last is the code.
    visible_units : {"gaussian", "bernoulli"}, default="gaussian"
        Gaussian units model standardised pixels (each pixel scaled to zero
        mean and unit variance on the training set); Bernoulli units model
        pixel values in [0, 1] as probabilities.
    code_units : {"linear", "sigmoid"}, default="linear"
        Units of the top (code) layer: linear units with Gaussian noise, or
        Bernoulli units.
    pretrain_epochs : int, default=20
        CD epochs per RBM; 0 skips pretraining, leaving the small random
        initial weights (a "random start").
    pretrain_lr : float, sequence of float or None, default=None
        CD learning rate, one for all RBMs or one per RBM. None uses 0.003
        for RBMs with Gaussian (or linear) units and 0.05 for Bernoulli
        RBMs: Gaussian units need much smaller rates.
    momentum : float, default=0.9
        Momentum of the CD updates.
    weight_decay : float, default=2e-4
        L2 penalty on the RBM weights (not the biases) during pretraining.
    cd_k : int, default=1
        Gibbs steps in each CD update.
    persistent : bool, default=False
        Persistent CD: negative-phase chains continue across updates.
    finetune_epochs : int, default=50
        Epochs of backpropagation through the unrolled autoencoder; 0 keeps
        the pretrained weights.
    finetune_lr : float, default=1e-3
        AdamW learning rate for fine-tuning.
    finetune_weight_decay : float, default=0.2
        Decoupled weight decay (AdamW) during fine-tuning, on all parameters.
        It narrows the gap between training and held-out error: without it
        the deep autoencoder overfits the training faces.
    batch_size : int, default=100
        Mini-batch size of both stages.
    image_shape : tuple of int (H, W) or (H, W, C), default=None
        Shape of one image, to read flat rows of ``X``; 3-D and 4-D ``X``
        carry their own shape.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Added to every stage's net, each RBM's and the fine-tuning net
        ``net_`` (each gets its own copy: the objects passed are not
        changed). There is no validation split: early stopping watches the
        training loss, ``EarlyStopping(monitor="train_loss")``, and stops
        the stage it runs in.
    checkpoint : path-like or None, default=None
        A folder to write the training state to after every epoch of every
        stage. A ``fit`` with the same data, parameters and folder resumes
        where an interrupted one stopped (finished stages are loaded, not
        trained again) and gives the same model as an uninterrupted fit on
        the CPU; a folder written by another fit raises. Ctrl-C always
        stops the whole fit and leaves the estimator as it was before it.
    device : str, default="auto"
        Torch device; "auto" is CUDA when available, else CPU. On CUDA
        training's matmuls run in bfloat16 autocast (the CD statistics in
        float32); inference in float32 unless inside
        :func:`skface.bf16_inference`.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and sampling. Equal seeds give
        equal models on the CPU.
    verbose : "auto" or int, default="auto"
        "auto" shows a progress bar per training stage on an interactive
        terminal or notebook and nothing in logs, pipes or CI (tqdm's own
        rule); 0 shows nothing, 1 always the bars, 2 also skorch's epoch log.

    Attributes
    ----------
    net_ : FaceNet (skorch.NeuralNet)
        The fine-tuned autoencoder; ``net_.history`` holds its losses and
        ``net_.module_`` the torch module (``encode``, ``decode``).
    rbm_nets_ : list of FaceNet
        The pretraining nets, bottom first; ``rbm_nets_[i].module_`` is an
        :class:`skface.nn.RBM` and ``rbm_nets_[i].history`` its CD epochs.
    n_components_ : int
        Size of the code.
    image_shape_ : tuple of int (H, W, C)
        Shape of the images seen in ``fit``.
    image_layout_ : skface._validation.ImageLayout
        Layout of ``fit``'s input, which ``inverse_transform`` and ``sample``
        give their images back in.
    n_features_in_ : int
        ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a DataFrame with string column names.
    device_ : str
        Device the model was fitted on.

    See Also
    --------
    sklearn.neural_network.BernoulliRBM : a single Bernoulli RBM in NumPy.
    sklearn.decomposition.PCA : the linear baseline for reconstruction.

    References
    ----------
    G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of
    data with neural networks", Science 313(5786), 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from skface.estimators import DBNReconstructor
    >>> faces = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
    >>> dbn = DBNReconstructor(hidden_layer_sizes=(32, 4), pretrain_epochs=2,
    ...                        finetune_epochs=2, random_state=0).fit(faces)
    >>> dbn.transform(faces).shape
    (40, 4)
    >>> dbn.inverse_transform(dbn.transform(faces)).shape
    (40, 8, 8)
    """

    # Fully connected: a flat row of any length is all it needs.
    _spatial_input = False

    def __init__(
        self,
        hidden_layer_sizes=(1000, 500, 250, 64),
        *,
        visible_units="gaussian",
        code_units="linear",
        pretrain_epochs=20,
        pretrain_lr=None,
        momentum=0.9,
        weight_decay=2e-4,
        cd_k=1,
        persistent=False,
        finetune_epochs=50,
        finetune_lr=1e-3,
        finetune_weight_decay=0.2,
        batch_size=100,
        image_shape=None,
        callbacks=None,
        checkpoint=None,
        device="auto",
        random_state=None,
        verbose="auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.visible_units = visible_units
        self.code_units = code_units
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.cd_k = cd_k
        self.persistent = persistent
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.finetune_weight_decay = finetune_weight_decay
        self.batch_size = batch_size
        self.image_shape = image_shape
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------

    def _check_params(self):
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes, dtype=object))
        if sizes.ndim != 1 or len(sizes) == 0:
            raise ValueError(
                f"hidden_layer_sizes must be a non-empty sequence of positive ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        for size in sizes:
            check_number("every hidden layer size", size, numbers.Integral, low=1)
        for name, options in (
            ("visible_units", ("gaussian", "bernoulli")),
            ("code_units", ("linear", "sigmoid")),
        ):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {options}, got {getattr(self, name)!r}.")
        for name in ("pretrain_epochs", "finetune_epochs"):
            check_number(name, getattr(self, name), numbers.Integral, low=0)
        for name in ("cd_k", "batch_size"):
            check_number(name, getattr(self, name), numbers.Integral, low=1)
        check_number("finetune_lr", self.finetune_lr, low=0, low_inclusive=False)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("finetune_weight_decay", self.finetune_weight_decay, low=0)
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if self.pretrain_lr is None:
            return [int(s) for s in sizes], None
        lrs = np.atleast_1d(np.asarray(self.pretrain_lr, dtype=float)).tolist()
        if len(lrs) == 1:
            lrs = lrs * len(sizes)
        if len(lrs) != len(sizes):
            raise ValueError(
                f"pretrain_lr must be one number or one per hidden layer ({len(sizes)}), "
                f"got {self.pretrain_lr!r}."
            )
        for lr in lrs:
            check_number("pretrain_lr", lr, low=0, low_inclusive=False)
        return [int(s) for s in sizes], lrs

    # -- fitting -------------------------------------------------------------------

    def fit(self, X, y=None):
        """Pretrain the RBM stack by CD, then fine-tune the unrolled autoencoder.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images (see :func:`skface._validation.check_images`).
        y : None
            Ignored.

        Returns
        -------
        self : DBNReconstructor
        """
        sizes, lrs = self._check_params()
        self.device_ = self._check_common_params()
        images, _ = self._validate_images(X, reset=True)
        data = _flatten(images)
        if self.visible_units == "bernoulli" and (data.min() < 0 or data.max() > 1):
            raise ValueError(
                "visible_units='bernoulli' needs pixel values in [0, 1]; got values in "
                f"[{data.min():.3g}, {data.max():.3g}]. Scale the images or use "
                "visible_units='gaussian'."
            )
        mean = np.zeros(data.shape[1], np.float32)
        scale = np.ones(data.shape[1], np.float32)
        if self.visible_units == "gaussian":
            mean = data.mean(axis=0)
            std = data.std(axis=0)
            # Constant pixels stay as they are rather than blowing up.
            scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)

        code = "gaussian" if self.code_units == "linear" else "bernoulli"
        layer_sizes = [data.shape[1]] + sizes
        checkpoints = self._checkpoints(data)
        seed, *net_seeds = self._seeds(len(sizes) + 2)
        with seeded(seed, self.device_):
            x = to_tensor(data, self.device_)
            v = (x - to_tensor(mean, self.device_)) / to_tensor(scale, self.device_)
            self.rbm_nets_ = []
            specs = _layer_specs(layer_sizes, self.visible_units, code)
            if lrs is None:
                lrs = [_default_lr(spec) for spec in specs]
            for i, (spec, lr) in enumerate(zip(specs, lrs)):
                net = self._make_net(
                    RBM,
                    desc=f"RBM {i + 1}/{len(sizes)}",
                    net_class=_RBMNet,
                    seed=net_seeds[i],
                    **{f"module__{key}": value for key, value in spec.items()},
                    max_epochs=self.pretrain_epochs,
                    lr=lr,
                    batch_size=self.batch_size,
                    optimizer=torch.optim.SGD,
                    optimizer__momentum=self.momentum,
                    optimizer__param_groups=[("weight", {"weight_decay": self.weight_decay})],
                    cd_k=self.cd_k,
                    persistent=self.persistent,
                )
                net.initialize()
                self._train_stage(net, v, None, checkpoints=checkpoints, stage=f"rbm{i}",
                                  epochs=self.pretrain_epochs)
                with torch.no_grad():
                    v = torch.cat([net.module_(batch) for batch in v.split(4096)])
                self.rbm_nets_.append(net)

            self.net_ = self._make_net(
                _DeepAutoencoder,
                desc="fine-tune",
                seed=net_seeds[-1],
                module__layer_sizes=layer_sizes,
                module__visible=self.visible_units,
                module__code=code,
                max_epochs=self.finetune_epochs,
                lr=self.finetune_lr,
                batch_size=self.batch_size,
                optimizer=torch.optim.AdamW,
                optimizer__weight_decay=self.finetune_weight_decay,
            )
            self.net_.initialize()
            self._load_pretrained(mean, scale)
            self._train_stage(self.net_, x, x, checkpoints=checkpoints, stage="finetune",
                              epochs=self.finetune_epochs)
        self.n_components_ = sizes[-1]
        return self

    def _load_pretrained(self, mean, scale):
        module = self.net_.module_
        encoder, decoder = unroll([net.module_ for net in self.rbm_nets_])
        with torch.no_grad():
            module.encoder.load_state_dict(encoder.state_dict())
            module.decoder.load_state_dict(decoder.state_dict())
            module.mean.copy_(torch.from_numpy(mean))
            module.scale.copy_(torch.from_numpy(scale))

    # -- inference -------------------------------------------------------------------

    @property
    def _n_features_out(self):
        return self.n_components_

    def _device(self):
        # A model fitted on CUDA and loaded on a CPU-only machine runs on the CPU:
        # skorch moves the net there when unpickling.
        return self.net_.device

    def transform(self, X):
        """Top-layer codes of the images.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the fitted size.

        Returns
        -------
        codes : ndarray of shape (n, n_components)
            float64 for float64 input, else float32.
        """
        images, layout = self._validate_images(X, reset=False)
        module = self.net_.module_
        codes = self._apply_batched(module.encode, _flatten(images), device=self._device())
        return codes.astype(layout.dtype, copy=False)

    def inverse_transform(self, X):
        """Images decoded from codes, in the layout of the images seen in ``fit``.

        Parameters
        ----------
        X : array-like of shape (n, n_components)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        images : ndarray of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            In the layout of ``fit``'s input; values on the scale of
            ``check_images`` (uint8 input comes back in [0, 1]).
        """
        check_is_fitted(self)
        codes = check_array(X, dtype=(np.float64, np.float32))
        if codes.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {codes.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_components_} features as input: inverse_transform takes codes "
                "from transform, not images."
            )
        flat = self._apply_batched(self.net_.module_.decode, codes, device=self._device())
        layout = self._fit_layout(codes.dtype)
        return restore_layout(_unflatten(flat, self.image_shape_), layout)

    def reconstruct(self, X):
        """Encode and decode images: ``inverse_transform(transform(X))`` in ``X``'s layout.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)

        Returns
        -------
        reconstructions : ndarray of the same shape as ``X``
        """
        images, layout = self._validate_images(X, reset=False)
        flat = self._apply_batched(self.net_.module_, _flatten(images), device=self._device())
        return restore_layout(_unflatten(flat, self.image_shape_), layout)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error (higher is better).

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``-mean((X - reconstruct(X)) ** 2)`` over all pixels, with uint8
            images scaled to [0, 1].
        """
        images, _ = self._validate_images(X, reset=False)
        data = _flatten(images)
        recon = self._apply_batched(self.net_.module_, data, device=self._device())
        return -float(np.mean((data.astype(np.float64) - recon) ** 2))

    def sample(self, n_samples=1, *, n_steps=100, random_state=None):
        """Draw images from the pretrained DBN by Gibbs sampling in its top RBM.

        The chains start from random binary states of the top RBM's visible
        layer; after ``n_steps`` steps a mean-field pass down the lower RBMs
        gives the images. Sampling uses the generative (pretrained) weights,
        not the fine-tuned autoencoder.

        Parameters
        ----------
        n_samples : int, default=1
            Number of images.
        n_steps : int, default=100
            Gibbs steps.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains.

        Returns
        -------
        images : ndarray of shape (n_samples, H, W), (n_samples, H, W, C) or (n_samples, H*W*C)
            float32, in the layout of ``fit``'s input.
        """
        check_is_fitted(self)
        check_number("n_samples", n_samples, numbers.Integral, low=1)
        check_number("n_steps", n_steps, numbers.Integral, low=0)
        rbms = [net.module_ for net in self.rbm_nets_]
        device = rbms[0].weight.device
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            v = sample_stack(rbms, n_samples, n_steps=n_steps, generator=generator)
            module = self.net_.module_
            v = (v * module.scale.to(device) + module.mean.to(device)).float().cpu().numpy()
        return restore_layout(_unflatten(v, self.image_shape_), self._fit_layout(np.float32))

    @property
    def components_(self):
        """First-layer encoder filters, shape ``(hidden_layer_sizes[0], n_features_in_)``.

        Rows are in the flat channels-last order of the images, ready for
        :func:`skface.plotting.plot_filters`.
        """
        check_is_fitted(self)
        return self.net_.module_.encoder[0].weight.detach().float().cpu().numpy()

    def _fit_layout(self, dtype):
        return self.image_layout_._replace(dtype=np.dtype(dtype))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _flatten(images):
    """(n, C, H, W) -> (n, H*W*C) in the caller's channels-last order."""
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1)).reshape(len(images), -1)


def _unflatten(flat, image_shape):
    """(n, H*W*C) channels-last rows -> (n, C, H, W)."""
    height, width, channels = image_shape
    return flat.reshape(len(flat), height, width, channels).transpose(0, 3, 1, 2)
