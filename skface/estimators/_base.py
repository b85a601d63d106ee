"""Shared estimator machinery: devices, seeding, progress bars, skorch nets, validation."""

import copy
import functools
import numbers
import os

import numpy as np
import torch
from sklearn.utils import check_random_state
from skorch import NeuralNet
from skorch.callbacks import Callback, LRScheduler

from .._device import autocast, inference_autocast, resolve_device
from .._validation import ImageInputMixin, RawImages
from ..parallel import _distributed
from ._stream import DeviceImages, to_tensor
from ._checkpoint import (
    CheckpointReader,
    CheckpointWriter,
    StageCheckpoints,
    fingerprint,
    restore,
    sigint_guard,
)

__all__ = ["FaceEstimatorMixin", "FaceNet", "LRSchedule", "TensorBatches", "one_cycle"]


class TensorBatches:
    """skorch iterator over in-memory tensors: one index per batch, no per-sample work.

    ``X`` may also be a :class:`~skface.estimators._stream.DeviceImages`,
    which makes each batch from its rows (a uint8 or memory-mapped set):
    the shuffling order, drawn on the CPU either way, is the same, so a
    streamed fit sees the batches an in-memory one does. The order is
    moved once per epoch to the device the rows are gathered on (the
    data's, or the host for sets read batch by batch), so a batch's index
    is a slice of it there, not a copy per batch.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset
        Holding tensors ``X`` (or a ``DeviceImages``) and ``y`` (or ``y=None``).
    batch_size : int
    shuffle : bool, default=False
    generator : torch.Generator, default=None
        CPU generator for the shuffling order.
    """

    def __init__(self, dataset, batch_size, shuffle=False, generator=None):
        self.X, self.y = dataset.X, dataset.y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        # Tensors are indexed on their device; DeviceImages on theirs (the host
        # for rows read batch by batch, the device for a set resident there).
        device = (self.X.device if isinstance(self.X, torch.Tensor)
                  else getattr(self.X, "index_device", "cpu"))
        # Drawn on the CPU generator (the same order for a seed on any device).
        drawn = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = drawn.to(device)
        order_y = order
        if isinstance(self.y, torch.Tensor) and self.y.device != order.device:
            order_y = drawn.to(self.y.device)
        for start in range(0, n, self.batch_size):
            stop = start + self.batch_size
            yield (self.X[order[start:stop]],
                   None if self.y is None else self.y[order_y[start:stop]])


class _EpochProgress(Callback):
    """A tqdm bar over the epochs of one fit, showing the training loss."""

    def __init__(self, desc, disable=False):
        self.desc = desc
        self.disable = disable

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch",
                         disable=self.disable)

    def on_epoch_end(self, net, **kwargs):
        self.bar_.update(1)
        self.bar_.set_postfix(loss=f"{net.history[-1, 'train_loss']:.4g}")

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.bar_.close()
        self.bar_ = None  # tqdm objects do not pickle


class FaceNet(NeuralNet):
    """skorch ``NeuralNet`` with seeded shuffling and sampling, and bf16 autocast on CUDA.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`skorch.NeuralNet`.
    seed : int, default=None
        Seeds the shuffling order and ``generator_``, the random source that
        training steps draw from (on the net's device), at the start of each
        fit. None draws a seed from torch's global RNG.

    Attributes
    ----------
    deferred_loss : bool, class attribute, default=True
        True keeps the batch losses on the device and writes them to
        ``history`` in one transfer at the end of each epoch, instead of
        skorch's ``loss.item()`` (a host synchronisation) per batch.
        Callbacks see ``train_loss`` per epoch as usual; per-batch entries
        are filled in at epoch end. Batches for which :meth:`_skip_batch`
        is true are then left out of training.
    data_parallel : bool, class attribute, default=False
        True for nets whose training step calls :meth:`_shard` on each
        (augmented) batch: inside :func:`skface.parallel.data_parallel`
        they train on their share of every batch and all-reduce the
        gradients. Others train on all the data in every process.
    """

    deferred_loss = True
    data_parallel = False

    def __init__(self, *args, seed=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()))
        self._dp = _distributed.current() if self.data_parallel else None
        if self._dp is not None:
            _distributed.start_fit(self, X, y)
            # Every rank must shuffle and augment alike: rank 0's seed wins (with
            # random_state=None each process drew its own).
            seed = self._dp.broadcast_int(seed)
        self.shuffle_generator_ = torch.Generator().manual_seed(seed)
        self.generator_ = torch.Generator(device=self.device).manual_seed(seed + 1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if getattr(self, "_dp", None) is not None:
            self._dp.sync_end_of_fit(self)
        # Generators hold device state: drop them so a net fitted on CUDA pickles
        # into something a CPU-only machine can load.
        self.shuffle_generator_ = self.generator_ = None

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        try:
            fitted = super().partial_fit(X, y, classes=classes, **fit_params)
            if getattr(self, "_dp", None) is not None:
                # Rank 0 has written its last checkpoint before any rank goes on
                # (a next fit may resume from it).
                self._dp.barrier()
            return fitted
        finally:
            # Kept through on_train_end, for the callbacks (checkpoints on rank 0).
            self._dp = None
            self.__dict__.pop("_share", None)

    def _shard(self, *tensors):
        """This process's share of a global training batch (all of it outside data_parallel).

        Training steps call it after augmenting the whole batch, so every
        rank draws the same random numbers as one process would, and the
        shares together are exactly the batch one process trains on.
        """
        dp = getattr(self, "_dp", None)
        if dp is None:
            return tensors
        n = len(tensors[0])
        start, stop = dp.bounds(n)
        self._share = (stop - start) / n
        return tuple(None if t is None else t[start:stop] for t in tensors)

    def _reduce_sum(self):
        """A callable summing a tensor in place over the ranks, or None outside data_parallel."""
        dp = getattr(self, "_dp", None)
        return None if dp is None else dp.all_reduce_sum

    def train_step(self, batch, **fit_params):
        if getattr(self, "_dp", None) is None:
            return super().train_step(batch, **fit_params)
        return _distributed.train_step(self, batch, **fit_params)

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if training and isinstance(iterator, TensorBatches) and iterator.generator is None:
            iterator.generator = getattr(self, "shuffle_generator_", None)
        return iterator

    def infer(self, x, **fit_params):
        # With gradients it is a training step (bf16 autocast on CUDA); without,
        # skorch's evaluation (net_.forward, net_.predict): float32 unless inside
        # skface.bf16_inference(), as the estimators' own inference.
        training = torch.is_grad_enabled()
        with autocast(self.device) if training else inference_autocast(self.device):
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if isinstance(y_pred, torch.Tensor):
            y_pred = y_pred.float()  # the loss in float32 even under autocast
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def _skip_batch(self, batch, iterator):
        """Whether a training epoch with ``deferred_loss`` leaves ``batch`` out.

        A hook for nets that cannot train on some batches (batch norm on one
        image); the default keeps every batch.
        """
        return False

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        dp = getattr(self, "_dp", None) if training else None
        if not self.deferred_loss and dp is None:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        # skorch's loop with the per-batch ``loss.item()`` (a device sync) moved
        # to one transfer per epoch.
        if iterator is None:
            return
        losses = []
        for batch in iterator:
            if training and (self._skip_batch(batch, iterator) if dp is None
                             else _distributed.skip_global_batch(self, batch, iterator)):
                continue
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            loss = step["loss"].detach().float().reshape(())
            # Weighted by the share: summed over the ranks, the global batch's mean loss.
            losses.append(loss if dp is None else loss * self._share)
            self.history.record_batch(prefix + "_batch_size", len(batch[0]))
            self.notify("on_batch_end", batch=batch, training=training, **step)
        if losses:
            values = torch.stack(losses)
            if dp is not None:
                dp.all_reduce_sum(values)  # one collective per epoch, not per batch
            values = values.cpu().tolist()
            rows = [row for row in self.history[-1]["batches"] if prefix + "_batch_size" in row]
            for row, value in zip(rows[-len(values):], values):
                row[prefix + "_loss"] = value
        self.history.record(prefix + "_batch_count", len(losses))


class LRSchedule(LRScheduler):
    """skorch's ``LRScheduler`` that lets go of its torch scheduler when a fit ends.

    The torch scheduler holds the optimizer, and through it the weights:
    kept after the fit, it would be pickled outside skorch's device-safe
    path (``net.__getstate__``), so a CUDA-fitted model would not load on a
    CPU-only machine.

    Parameters
    ----------
    policy : str or class
        As for :class:`skorch.callbacks.LRScheduler`. OneCycleLR takes its
        peak rate from the net's ``lr`` and its total steps from the fit
        (``max_epochs`` times the batches per epoch), so one callback fits
        any data size.
    **kwargs
        As for :class:`skorch.callbacks.LRScheduler`.
    """

    def _one_cycle(self):
        return self.policy is torch.optim.lr_scheduler.OneCycleLR

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self._one_cycle() and X is not None:
            self.max_lr = net.lr
            self.total_steps = max(net.max_epochs * -(-len(X) // net.batch_size), 1)
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_batch_end(self, net, training, **kwargs):
        scheduler = getattr(self, "lr_scheduler_", None)
        # Past the planned steps (batches skipped as too small for batch norm
        # are not counted, so this is a guard) OneCycleLR would raise.
        if (self._one_cycle() and scheduler is not None
                and scheduler.last_epoch >= scheduler.total_steps):
            return
        super().on_batch_end(net, training, **kwargs)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.lr_scheduler_ = None


def one_cycle(cycle_momentum=True):
    """A named one-cycle schedule callback, stepped after every training batch.

    The rate rises to the net's ``lr`` and anneals over all the steps of one
    fit, as :class:`torch.optim.lr_scheduler.OneCycleLR` does;
    ``cycle_momentum`` cycles the optimizer's momentum (or Adam's
    ``beta1``) inversely to the rate.
    """
    return ("lr_scheduler", LRSchedule(
        policy=torch.optim.lr_scheduler.OneCycleLR, step_every="batch", cycle_momentum=cycle_momentum,
        max_lr=1.0, total_steps=1,  # both set from the net and the data at train begin
        last_epoch=-1,  # each fit (a warm start too) runs one whole cycle
    ))


def _check_user_callbacks(callbacks):
    """A deep copy of a user's callbacks (fitting never changes theirs), checked.

    skface nets train without a validation split, so a callback that watches
    a validation score would fail deep inside skorch with a ``KeyError``.
    """
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise ValueError(
            f"callbacks must be a list of skorch callbacks or (name, callback) pairs, got "
            f"{type(callbacks).__name__}."
        )
    callbacks = copy.deepcopy(list(callbacks))
    for item in callbacks:
        callback = item[1] if isinstance(item, tuple) else item
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("valid"):
            raise ValueError(
                f"{type(callback).__name__}(monitor={monitor!r}) watches a validation "
                "score, but skface estimators train without a validation split. Monitor "
                "the training loss instead, e.g. EarlyStopping(monitor='train_loss') or "
                "Checkpoint(monitor='train_loss_best')."
            )
    return callbacks


def _transactional(fit):
    """``fit`` that leaves the estimator as it was when it raises or is interrupted.

    It also runs under :func:`skface.parallel.fit_threads`: inside a worker
    process torch takes that worker's share of the cores.

    A fit stopped by Ctrl-C (or any error) must not leave a half-trained
    model that looks fitted: the attributes are put back as they were
    before the call (unfitted, or the previous fit). A warm start trains
    ``net_`` in place, so that one is copied first.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        from ..parallel import fit_threads

        before = dict(self.__dict__)
        if getattr(self, "warm_start", False) and "net_" in before:
            before["net_"] = copy.deepcopy(before["net_"])
        try:
            # In a Dask or joblib worker, torch uses the worker's share of the
            # cores (skface.parallel.worker_threads), not every core each.
            with fit_threads():
                return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return wrapper


class FaceEstimatorMixin(ImageInputMixin):
    """Machinery shared by skface estimators.

    Expects the parameters ``device``, ``random_state``, ``verbose`` and
    ``image_shape``; provides input validation against the fitted image
    shape (from :class:`~skface._validation.ImageInputMixin`), device
    resolution, seeding, skorch net building and batched inference. Every
    ``fit`` a subclass defines is wrapped so that an interrupted or failed
    fit leaves the estimator as it was.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__:
            cls.fit = _transactional(cls.__dict__["fit"])

    def _check_common_params(self):
        """Validate ``device``, ``verbose``, ``random_state``; return the device."""
        if self.verbose != "auto" and (
            not isinstance(self.verbose, numbers.Integral) or self.verbose < 0
        ):
            raise ValueError(f"verbose must be 'auto' or a non-negative int, got {self.verbose!r}.")
        return resolve_device(self.device)

    def _seeds(self, n):
        """``n`` seeds from ``random_state``: identical for identical states."""
        rng = check_random_state(self.random_state)
        return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n)]

    # -- persistence -------------------------------------------------------------

    def save(self, path):
        """Write the estimator to one file, without pickle; :func:`skface.load` reads it.

        Parameters
        ----------
        path : path-like
            Destination file (``.skface`` is customary).

        Returns
        -------
        path : pathlib.Path

        See Also
        --------
        skface.save : the same, as a function.
        """
        from .._persist import save

        return save(self, path)

    # -- skorch ----------------------------------------------------------------

    @staticmethod
    def _set_progress(net, desc):
        """Name the stage a multi-stage net trains next on its progress bar."""
        for _, callback in getattr(net, "callbacks_", ()):
            if isinstance(callback, _EpochProgress):
                callback.desc = desc

    def _make_net(self, module, *, desc, net_class=FaceNet, callbacks=(), **kwargs):
        """A skorch net on ``device_`` that iterates over in-memory tensors.

        ``module`` is a module class, built by skorch from the ``module__``
        keyword arguments: a net whose module is a class pickles its weights
        only through skorch's device-safe path, and its spec (class plus
        arguments) is what :func:`skface.save` writes. ``callbacks`` are the
        estimator's own; the user's ``callbacks`` parameter is added to them
        (a copy: fitting never changes the caller's callback objects).
        """
        if not isinstance(module, type):
            raise TypeError(
                f"_make_net takes a module class plus module__ arguments, got an instance "
                f"of {type(module).__name__}."
            )
        kwargs.setdefault("criterion", torch.nn.MSELoss)
        return net_class(
            module,
            iterator_train=TensorBatches,
            iterator_train__shuffle=True,
            iterator_valid=TensorBatches,
            train_split=None,
            callbacks=self._net_callbacks(callbacks, desc),
            device=self.device_,
            # skorch's per-epoch table only at verbose >= 2; bars at 1.
            verbose=int(self.verbose != "auto" and self.verbose >= 2
                        and _distributed.is_main_process()),
            **kwargs,
        )

    def _net_callbacks(self, own, desc):
        """A net's callbacks: the estimator's own, a copy of the user's, the progress bar.

        With a ``checkpoint`` folder, a reader comes first (it puts a resumed
        stage's state back before the others act on it) and a writer last
        (it saves what every other callback recorded for the epoch).
        """
        callbacks = list(own or ()) + _check_user_callbacks(getattr(self, "callbacks", None))
        if self.verbose and _distributed.is_main_process():
            # "auto": tqdm's disable=None, bars on a terminal or notebook only.
            disable = None if self.verbose == "auto" else False
            callbacks.append(("progress", _EpochProgress(desc, disable=disable)))
        if getattr(self, "checkpoint", None) is not None:
            callbacks = [("checkpoint_reader", CheckpointReader()), *callbacks,
                         ("checkpoint_writer", CheckpointWriter())]
        return callbacks

    # -- training stages ---------------------------------------------------------

    def _checkpoints(self, *arrays):
        """The fit's checkpoint folder (None without ``checkpoint``), checked against it.

        ``arrays`` are the training data: a folder written by a fit of other
        data or parameters raises rather than being resumed from.
        """
        if getattr(self, "checkpoint", None) is None:
            return None
        if not isinstance(self.checkpoint, (str, os.PathLike)):
            raise ValueError(
                f"checkpoint must be None or a folder path, got {self.checkpoint!r}."
            )
        return StageCheckpoints(self.checkpoint, fingerprint(self, *arrays))

    def _train_stage(self, net, X, y, *, checkpoints, stage, epochs):
        """Train an initialised net for ``epochs`` epochs: one stage of a fit.

        Ctrl-C stops the stage and raises ``KeyboardInterrupt`` (skorch alone
        would swallow it and let the fit go on); early stopping by a
        callback still ends just the stage. With ``checkpoints`` the state
        is written every so often and when the stage ends
        (:class:`._checkpoint.CheckpointWriter`; not after a failed write), and
        a stage found there resumes where it stopped, from whatever device
        wrote it (a finished one is loaded, not trained again).
        """
        if checkpoints is not None:
            state = checkpoints.load(stage, net.device)
            callbacks = dict(net.callbacks_)
            callbacks["checkpoint_writer"].start(checkpoints, stage)
            if state is not None and state["done"]:
                restore(net, state)
                callbacks["checkpoint_writer"].start(None, stage)
                return
            if state is not None:
                epochs -= state["epochs"]
                if epochs > 0:
                    callbacks["checkpoint_reader"].state = state
                else:  # every epoch ran; only the end of the stage was missed
                    restore(net, state)
        if net.data_parallel:
            _distributed.warn_if_launched_alone()
        try:
            if epochs > 0:
                from ..parallel import fit_threads

                # Each stage enters the thread rule (skface.parallel.fit_threads): the
                # fit's own count, or under the adaptive policy one decided afresh.
                with sigint_guard(net), fit_threads():
                    net.partial_fit(X, y, epochs=epochs)
                if net.interrupted_:
                    raise KeyboardInterrupt
        finally:
            net.interrupted_ = False
            if checkpoints is not None:
                dict(net.callbacks_)["checkpoint_writer"].start(None, stage)

    @staticmethod
    @torch.no_grad()
    def _apply_batched(fn, X, *, device, batch_size=1024):
        """``fn`` over batches of ``X`` on ``device``; float32 ndarray out.

        ``X`` is an ndarray, a tensor, or :class:`~skface._validation.RawImages`
        (read and converted batch by batch: a memory-mapped set is never
        loaded whole).
        """
        out = list(FaceEstimatorMixin._iter_batched(fn, X, device=device,
                                                    batch_size=batch_size))
        return torch.cat(out).numpy()

    @staticmethod
    @torch.no_grad()
    def _iter_batched(fn, X, *, device, batch_size=1024):
        """``fn`` over batches of ``X`` (as :meth:`_apply_batched`), one float32 CPU tensor each.

        Under the thread rule of fits (:func:`skface.parallel.fit_threads`):
        the same thread count as a fit, so the same features whatever the load.
        In float32, on CUDA too, unless inside :func:`skface.bf16_inference`.
        """
        from ..parallel import fit_threads

        if isinstance(X, RawImages):
            X = DeviceImages(X, device, resident=False)
        for start in range(0, len(X), batch_size):
            batch = X[start : start + batch_size]
            if isinstance(batch, np.ndarray):
                batch = to_tensor(batch, device)
            with fit_threads(), inference_autocast(device):
                result = fn(batch.to(device)).float().cpu()
            yield result
