"""Data-parallel training: one fit spread over torch.distributed processes (gloo or NCCL)."""

import contextlib
import contextvars
import datetime
import gc
import os
import weakref
from dataclasses import dataclass

# What torchrun and `accelerate launch` set in each process they start.
_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

_CURRENT = contextvars.ContextVar("skface_data_parallel", default=None)


@dataclass(frozen=True)
class ProcessGroup:
    """The data-parallel group a fit trains in.

    Attributes
    ----------
    rank : int
        This process's index, in ``[0, world_size)``; rank 0 prints and
        writes checkpoints.
    world_size : int
        Number of processes.
    backend : str
        "gloo" or "nccl".
    """

    rank: int
    world_size: int
    backend: str

    # -- batches -----------------------------------------------------------------

    def bounds(self, n):
        """``(start, stop)`` of this rank's contiguous share of a global batch of ``n``.

        The shares differ by at most one image: the first ``n % world_size``
        ranks get one more.
        """
        q, extra = divmod(n, self.world_size)
        start = self.rank * q + min(self.rank, extra)
        return start, start + q + (self.rank < extra)

    def smallest_share(self, n):
        """Size of the smallest share of a global batch of ``n`` (the last rank's)."""
        return n // self.world_size

    # -- collectives -----------------------------------------------------------------

    def _device(self, tensor):
        # NCCL moves CUDA tensors only; gloo takes either.
        import torch

        return tensor.device if self.backend != "nccl" else torch.device("cuda")

    def all_reduce_sum(self, tensor):
        """Sum ``tensor`` over the ranks, in place; returns it."""
        import torch.distributed as dist

        if self.backend == "nccl" and tensor.device.type != "cuda":
            moved = tensor.cuda()
            dist.all_reduce(moved)
            return tensor.copy_(moved)
        dist.all_reduce(tensor)
        return tensor

    def barrier(self):
        """Wait until every rank reaches this point."""
        import torch.distributed as dist

        dist.barrier()

    def broadcast_int(self, value):
        """Rank 0's ``value`` (an int), on every rank."""
        import torch

        box = torch.tensor([int(value)], dtype=torch.int64)
        self._broadcast(box)
        return int(box.item())

    def _broadcast(self, tensor):
        import torch.distributed as dist

        if self.backend == "nccl" and tensor.device.type != "cuda":
            moved = tensor.cuda()
            dist.broadcast(moved, src=0)
            tensor.copy_(moved)
        else:
            dist.broadcast(tensor, src=0)

    def _all_gather(self, tensor):
        import torch
        import torch.distributed as dist

        tensor = tensor.to(self._device(tensor))
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(out, tensor)
        return torch.stack(out).cpu()

    def broadcast_state(self, *modules):
        """Copy rank 0's parameters and buffers into the same modules on every rank."""
        for module in modules:
            for tensor in module.state_dict().values():
                self._broadcast(tensor)  # state_dict tensors share storage with the module

    def all_reduce_gradients(self, named_parameters, weight):
        """Replace each gradient by the sum over ranks of ``weight`` times it.

        With ``weight`` = this rank's share of the global batch (``n_r / N``)
        and a loss that is a mean over the share, the result is the gradient
        of the mean loss over the whole global batch, as one process would
        compute it. One flat all-reduce per dtype: gloo and NCCL are far
        faster on one large buffer than on many small ones.
        """
        import torch

        by_dtype = {}
        for _, param in named_parameters:
            if param.grad is not None:
                by_dtype.setdefault(param.grad.dtype, []).append(param.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            flat.mul_(weight)
            self.all_reduce_sum(flat)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def check_same_data(self, X, y):
        """Raise on every rank when the ranks were given different training data."""
        import torch

        def checksums(t):
            # Row sums, plain and weighted by the row's index (which an order
            # change alters), a chunk at a time: no float64 copy of all the data.
            plain = weighted = 0.0
            if t is None:
                return [plain, weighted]
            for start in range(0, len(t), 4096):
                rows = t[start : start + 4096].detach().reshape(min(4096, len(t) - start), -1)
                rows = torch.nansum(rows.double(), dim=1)
                index = torch.arange(start, start + len(rows), dtype=torch.float64,
                                     device=rows.device)
                plain += float(rows.sum())
                weighted += float((rows * index).sum())
            return [plain, weighted]

        mine = torch.tensor([float(len(X)), *checksums(X), *checksums(y)], dtype=torch.float64)
        every = self._all_gather(mine)
        if not torch.equal(every, mine.expand_as(every)):
            counts = ", ".join(f"rank {r}: {int(n)} images" for r, n in enumerate(every[:, 0]))
            raise ValueError(
                f"The training data differ between the {self.world_size} data-parallel "
                f"processes ({counts}; checksums differ). Every process must call fit with "
                "the same X and y, in the same order: each one trains on its share of every "
                "batch. Load the data the same way in every process (no per-rank split)."
            )

    def sync_end_of_fit(self, net):
        """Average batch-norm statistics over the ranks, then check the ranks agree.

        Parameters and the other buffers (the center loss's centers) are
        kept identical by the all-reduced updates; batch-norm running
        statistics are each rank's own (they see only its share), so they
        are averaged. A rank that still differs raises: its model would not
        be the one the others hold.
        """
        import torch

        modules = [m for m in (getattr(net, "module_", None), getattr(net, "criterion_", None))
                   if isinstance(m, torch.nn.Module)]
        checks = []
        for module in modules:
            for name, tensor in module.state_dict().items():
                if name.endswith(("running_mean", "running_var")):
                    self.all_reduce_sum(tensor).div_(self.world_size)
                if tensor.is_floating_point():
                    checks.append(tensor.detach().double().sum().reshape(1).cpu())
        if not checks:
            return
        mine = torch.cat(checks)
        every = self._all_gather(mine)
        differ = [r for r in range(self.world_size) if not torch.equal(every[r], mine)]
        if differ:
            raise RuntimeError(
                f"After data-parallel training the model on rank {self.rank} differs from "
                f"that on rank(s) {differ}. Something changed the weights on one process "
                "only (a callback, or a net without data-parallel support): report it, "
                "with the estimator and callbacks used."
            )


# -- the steps of a skface.estimators FaceNet with data_parallel = True ---------------


def start_fit(net, X, y):
    """Checks and broadcasts before a data-parallel fit: same data, rank 0's weights."""
    from torch import nn

    net._dp.check_same_data(X, y)
    # The same seed gives the same initial weights; rank 0's are copied anyway,
    # since a fit with random_state=None draws different ones in each process.
    net._dp.broadcast_state(*(m for m in (net.module_, net.criterion_)
                              if isinstance(m, nn.Module)))


def skip_global_batch(net, batch, iterator):
    """Whether every rank leaves a global batch out: decided from its size alone.

    The same answer on every rank, without a collective: a batch smaller
    than the number of ranks, or whose smallest share the net would skip
    (batch norm on one image), is left out on all of them.
    """
    n = len(batch[0])
    smallest = net._dp.smallest_share(n)
    if smallest == 0:
        return True
    return net._skip_batch(tuple(None if t is None else t[:smallest] for t in batch), iterator)


def train_step(net, batch, **fit_params):
    """skorch's ``train_step`` with the gradients summed over the ranks before the step.

    The all-reduce comes before ``on_grad_computed``, so callbacks such as
    gradient clipping see the gradient of the global batch.
    """
    from skorch.utils import TeeGenerator

    accumulator = net.get_train_step_accumulator()

    def step_fn():
        net._zero_grad_optimizer()
        step = net.train_step_single(batch, **fit_params)
        accumulator.store_step(step)
        net._dp.all_reduce_gradients(net.get_all_learnable_params(), net._share)
        net.notify("on_grad_computed",
                   named_parameters=TeeGenerator(net.get_all_learnable_params()),
                   batch=batch, training=True)
        return step["loss"]

    net._step_optimizer(step_fn)
    return accumulator.get_step()


def current():
    """The data-parallel group fits train in here, or None (also for a group of one)."""
    group = _CURRENT.get()
    if group is None or group.world_size < 2:
        return None
    return group


def is_main_process():
    """False on the ranks other than 0 of an active :func:`data_parallel` block."""
    group = current()
    return group is None or group.rank == 0


def warn_if_launched_alone():
    """Warn when a launcher started several processes but the fit is outside data_parallel.

    Each of them would train the whole model on all the data: the same
    work ``WORLD_SIZE`` times, and no faster.
    """
    world = os.environ.get("WORLD_SIZE", "").strip()
    if _CURRENT.get() is not None or not world.isdigit() or int(world) < 2:
        return
    from .._warnings import warn_at_caller

    warn_at_caller(
        f"This process is one of {world} started by a launcher ($WORLD_SIZE={world}), but "
        "the fit is not inside skface.parallel.data_parallel(): every process trains the "
        "whole model on all the data. Put the fit inside `with data_parallel():` to split "
        "each batch between the processes.",
        RuntimeWarning,
    )


def _require_launch_env():
    missing = [var for var in _LAUNCH_VARS if not os.environ.get(var)]
    if missing:
        raise RuntimeError(
            f"data_parallel() found no process group and no launcher environment (missing "
            f"{', '.join('$' + v for v in missing)}). Start the script with a launcher, "
            "e.g. `torchrun --nproc-per-node 2 train.py` or `accelerate launch train.py`, "
            "or call torch.distributed.init_process_group() before the block."
        )


@contextlib.contextmanager
def data_parallel(backend=None, *, timeout=None):
    """Train the fits inside the block data-parallel over the launched processes.

    Each process (started by ``torchrun``, ``accelerate launch`` or your own
    ``torch.distributed.init_process_group``) runs the same script and fits
    the same estimator on the same ``X, y``. Inside the block, the
    gradient-trained estimators (:class:`~skface.estimators.SDAEClassifier`,
    :class:`~skface.estimators.SDAERegressor`,
    :class:`~skface.estimators.KeypointRegressor`,
    :class:`~skface.estimators.CenterLossEmbedder`) split every training
    batch between the processes and sum their gradients before each step:
    ``batch_size`` stays the *global* batch, each of ``N`` processes
    computing about ``batch_size / N`` of it. After ``fit`` every process
    holds the same fitted model. Outside the block (or with one process)
    nothing changes.

    Parameters
    ----------
    backend : {"gloo", "nccl"} or None, default=None
        Used only when the block starts the process group: None is "nccl"
        when CUDA is available, else "gloo". A group started before the
        block is used as it is.
    timeout : float or None, default=None
        Seconds a collective waits for the other processes before failing
        (a process that crashed leaves the others waiting); None is
        torch's default (10 minutes for NCCL, 30 for gloo).

    Yields
    ------
    group : ProcessGroup
        ``rank``, ``world_size`` and ``backend``.

    Raises
    ------
    RuntimeError
        When no group is running and the launcher's environment
        (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) is
        missing.

    Notes
    -----
    On CUDA each process uses the GPU ``$LOCAL_RANK`` (set with
    ``torch.cuda.set_device``), so ``device="auto"`` or ``"cuda"`` picks
    its own GPU. A group started by the block is destroyed when it ends;
    ``torch.distributed.nn`` is imported before the group starts, so that
    no torch module keeps the group (and gloo's threads) alive after it, and
    a ``RuntimeWarning`` says when something still does (see the scaling
    guide's known issue on ranks aborting at exit).

    Examples
    --------
    Run with ``torchrun --nproc-per-node 2 train.py``::

        from skface.parallel import data_parallel

        with data_parallel() as group:
            clf = SDAEClassifier(encoder, batch_size=256, random_state=0).fit(X, y)
        if group.rank == 0:
            clf.save("model.skface")
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("This torch build has no torch.distributed; data_parallel needs it.")
    started = False
    if not dist.is_initialized():
        _require_launch_env()
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {backend!r}.")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        kwargs = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
        _import_group_pinning_modules()
        dist.init_process_group(backend=backend, **kwargs)
        started = True
        # Weak: only to check after the block that nothing else holds the group.
        world = weakref.ref(dist.group.WORLD)
    group = ProcessGroup(dist.get_rank(), dist.get_world_size(), dist.get_backend())
    token = _CURRENT.set(group)
    try:
        yield group
    finally:
        _CURRENT.reset(token)
        if started:
            dist.destroy_process_group()
            _check_group_freed(world)


def _import_group_pinning_modules():
    """Import, while no group exists, the torch modules that pin the group imported later.

    ``torch.distributed.nn.functional`` binds ``group.WORLD``, the default
    group *at import time*, as the default argument of its ten collectives.
    Imported while a group exists (torch's optimizers import
    ``torch._dynamo``, which imports it through ``torch.distributed.fsdp``,
    when the first one is built: at the first fit in the block), it keeps
    that group alive after ``destroy_process_group()``: gloo's threads then
    still run at exit, and the process can abort with "terminate called
    without an active exception". Imported before the group, the defaults
    are None (the default group at call time). See the data-parallel
    known issues in the scaling guide.
    """
    import torch.distributed.nn  # noqa: F401


def _check_group_freed(world):
    """Warn when the group the block started outlives its ``destroy_process_group()``."""
    if world() is None:
        return
    gc.collect()  # a reference cycle (a traceback kept by a caught error) may hold it
    if world() is None:
        return
    from .._warnings import warn_at_caller

    warn_at_caller(
        "data_parallel() destroyed its process group, but something still holds a "
        "reference to it: its communication threads keep running, and the process may "
        "abort at exit ('terminate called without an active exception') after its work "
        "is done. A module imported inside the block may hold it (as "
        "torch.distributed.nn does when imported while a group exists): import that "
        "module before the block.",
        RuntimeWarning, internal=(contextlib.__file__,),
    )
