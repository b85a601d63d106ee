"""Images as the nets see them: tensors in the standard layout, converted batch by batch."""

import logging
import warnings

import numpy as np
import torch

from .._device import cuda_index, on_cuda
from .._validation import RawImages

__all__ = ["DeviceImages", "channel_stats", "convert_images", "device_images", "fit_standardize",
           "standard_layout", "to_tensor"]

# Rows converted per block when a pass over all the images is made in one go
# (statistics, a whole-set load): at most _BLOCK rows of at most _BLOCK_BYTES as
# float32, so memory is bounded whatever the size of the set or of its images.
_BLOCK = 1024
_BLOCK_BYTES = 32 << 20


_LOG = logging.getLogger("skface.estimators")

# An in-memory set is put on a GPU whole only when it takes at most this share of
# the device's free memory: the rest is for the model, its activations, the
# optimizer's state and the float32 batches made from the set.
_RESIDENT_SHARE = 0.5


def _block_rows(raw):
    return max(1, min(_BLOCK, _BLOCK_BYTES // (4 * int(np.prod(raw.image_shape)))))


def _fits_on_device(nbytes, device):
    """Whether ``nbytes`` of images may stay on CUDA ``device`` whole (see ``_RESIDENT_SHARE``)."""
    free, _ = torch.cuda.mem_get_info(cuda_index(device))
    return nbytes <= _RESIDENT_SHARE * free


class DeviceImages:
    """Float32 ``(n, C, H, W)`` images on a device, converted batch by batch.

    Stands in for the whole-set tensor that float input still becomes:
    indexing it (``images[index]``, as :class:`~skface.estimators._base.
    TensorBatches` does) gathers the rows from the caller's uint8 or
    memory-mapped array, moves them to the device unconverted (uint8: 4x
    less traffic than float32) and converts them there: divided by 255
    (uint8), to NCHW (channels_last on CUDA), then to the model's size and
    channels with :func:`~skface.estimators._stream.convert_images`. The
    values are those of the whole-set path, batch for batch.

    In-memory uint8 images are put on a CUDA device once, unconverted
    (``resident``; on the CPU they are the caller's array itself), when
    they take at most half of its free memory; rows of a memory-mapped
    array, or of one too large for that, are read per batch into a pinned
    host buffer (two, used in turn, so that reading one batch overlaps the
    copy of the last) and copied with ``non_blocking=True``.

    Parameters
    ----------
    raw : RawImages
        Validated images.
    device : str or torch.device
    size : (int, int), default=None
        Output (height, width); None keeps the images' size.
    channels : {1, 3}, default=None
        Output channels; None keeps the images'.
    resident : bool, default=None
        Keep the whole unconverted set on the device. None: for in-memory
        arrays, not for memory-mapped ones, nor on CUDA for arrays larger
        than half the device's free memory.

    Attributes
    ----------
    shape : tuple of int (n, C, H, W)
        Of the converted images.
    device : torch.device
    index_device : torch.device
        Where row indices are best given: the device for a resident set,
        else the host (the rows are gathered there).
    """

    def __init__(self, raw, device, size=None, channels=None, resident=None):
        self.raw = raw
        self.device = torch.device(device)
        n, c, h, w = raw.shape
        self.size = None if size is None or tuple(size) == (h, w) else tuple(int(s) for s in size)
        self.channels = None if channels is None or channels == c else int(channels)
        self.shape = (n, self.channels or c, *(self.size or (h, w)))
        if resident is None:
            resident = not raw.streamed
            if resident and on_cuda(self.device) and not _fits_on_device(raw.nbytes,
                                                                           self.device):
                _LOG.debug("%d bytes of images would take more than %g of the free memory "
                           "of %s: streamed instead", raw.nbytes, _RESIDENT_SHARE, self.device)
                resident = False
        self._data = None
        if resident:
            array = raw.nhwc()  # a view for contiguous arrays
            with warnings.catch_warnings():
                # The caller's read-only array is only ever read.
                warnings.simplefilter("ignore", UserWarning)
                data = torch.from_numpy(np.ascontiguousarray(array))
            self._data = data.to(self.device)
        self._pinned = []  # (buffer, event) pairs, used in turn
        self._turn = 0

    def __len__(self):
        return self.shape[0]

    @property
    def ndim(self):
        return 4

    @property
    def index_device(self):
        return self.device if self._data is not None else torch.device("cpu")

    @property
    def converts(self):
        """Whether the size or channels change (else the rows are the caller's images)."""
        return self.size is not None or self.channels is not None

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy() if self._data is None else index
        if self._data is not None:
            if not isinstance(index, slice):
                # A no-op for an index on the device already (TensorBatches' order).
                index = torch.as_tensor(index, device=self.device)
            return self._convert(self._data[index])
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        return self._convert(self._gather(rows.reshape(-1)))

    def _gather(self, rows):
        """Rows from the caller's array, unconverted, on the device."""
        if not on_cuda(self.device):
            return torch.from_numpy(self.raw.read(rows))
        buffer = self._buffer(len(rows))
        self.raw.read(rows, out=buffer.numpy())
        batch = buffer.to(self.device, non_blocking=True)
        self._pinned[self._turn][1].record()  # the buffer is free again once this has run
        self._turn = (self._turn + 1) % 2
        return batch

    def _buffer(self, n):
        """A pinned host buffer for ``n`` rows, free of pending copies."""
        if len(self._pinned) < 2 or len(self._pinned[self._turn][0]) < n:
            shape = (max(n, 1), *self.raw.image_shape)
            dtype = torch.from_numpy(np.empty(0, self.raw.dtype)).dtype
            buffer = torch.empty(shape, dtype=dtype).pin_memory()
            event = torch.cuda.Event()
            if len(self._pinned) < 2:
                self._pinned.append((buffer, event))
            else:
                self._pinned[self._turn][1].synchronize()
                self._pinned[self._turn] = (buffer, event)
        buffer, event = self._pinned[self._turn]
        event.synchronize()  # the copy of the batch read into it two batches ago
        return buffer[:n]

    def _convert(self, batch):
        """(b, H, W, C) rows in the caller's dtype -> float32 (b, C, H, W) at the model's size."""
        height, width, channels = self.raw.image_shape
        x = batch.reshape(len(batch), height, width, channels).permute(0, 3, 1, 2)
        # NHWC memory is channels_last already (what CUDA nets want); on the CPU
        # plain NCHW, with the strides the whole-set path gives (a grey batch's
        # permuted view would otherwise run channels-last). The layout is changed on
        # the caller's dtype, before the float32 conversion: one float32 batch made.
        x = standard_layout(x).float()
        if self.raw.dtype == np.uint8:
            x.div_(255)  # as check_images divides: the same float32 values
        if self.converts:
            x = convert_images(x, self.size, self.channels)
        return x

    def blocks(self, batch_size=None):
        """The converted images in order, ``batch_size`` (default: a bounded block) at a time."""
        batch_size = batch_size or _block_rows(self.raw)
        for start in range(0, len(self), batch_size):
            yield self[start : start + batch_size]


def device_images(images, device, size=None, channels=None):
    """Validated images as a net trains on them: float32 (n, C, H, W) on ``device``.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W) or RawImages
        From ``_validate_images``.
    device : str or torch.device
    size : (int, int), default=None
    channels : {1, 3}, default=None
        As for :func:`~skface.estimators._stream.convert_images`.

    Returns
    -------
    images : Tensor or DeviceImages
        The whole converted set for float32 arrays (as ever); a
        :class:`DeviceImages` that converts batch by batch for
        :class:`RawImages`.
    """
    if isinstance(images, RawImages):
        return DeviceImages(images, device, size, channels)
    return torch.cat([
        convert_images(to_tensor(images[i : i + _BLOCK], device), size, channels)
        for i in range(0, len(images), _BLOCK)
    ])


def channel_stats(images, prepare=None):
    """Per-channel mean and standard deviation of (n, C, H, W) images, float64 ndarrays.

    One pass in blocks over :class:`RawImages` or :class:`DeviceImages`
    (the per-block moments combined as Chan et al. do, which is as stable
    as two passes); numpy's on a whole array or tensor. ``prepare`` (a
    function of a float tensor block) is applied first: the statistics are
    then those of its output.
    """
    def prepared(block):
        """A block (tensor or ndarray) as the ndarray the statistics are taken of."""
        if prepare is not None:
            tensor = block if isinstance(block, torch.Tensor) else torch.from_numpy(block)
            with torch.no_grad():
                block = prepare(tensor.float())
        if isinstance(block, torch.Tensor):
            block = block.detach().float().cpu().numpy()
        return block

    if isinstance(images, (torch.Tensor, np.ndarray)):
        images = prepared(images)
        return (images.mean(axis=(0, 2, 3), dtype=np.float64),
                images.std(axis=(0, 2, 3), dtype=np.float64))
    if isinstance(images, RawImages):
        step = _block_rows(images)
        blocks = (prepared(images[start : start + step])
                  for start in range(0, len(images), step))
    else:
        blocks = (prepared(x) for x in images.blocks())
    count, mean, m2 = 0, 0.0, 0.0
    for block in blocks:
        n = block.shape[0] * block.shape[2] * block.shape[3]
        block_mean = block.mean(axis=(0, 2, 3), dtype=np.float64)
        # Squares about the float32-rounded mean, accumulated in float64 and
        # corrected to the exact mean: no float64 copy of the block.
        centre = block_mean.astype(np.float32)
        deviations = block - centre[:, None, None]
        np.square(deviations, out=deviations)
        block_m2 = deviations.sum(axis=(0, 2, 3), dtype=np.float64) - n * (block_mean - centre) ** 2
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
    return mean, np.sqrt(m2 / count)


def fit_standardize(module, images):
    """Fit a :class:`~skface.nn.conv_dae.ChannelStandardize` on a tensor or DeviceImages."""
    if isinstance(images, torch.Tensor):
        return module.fit(images)
    mean, std = channel_stats(images, getattr(module, "prepare", None))
    return module.set_stats(mean, std)


def to_tensor(array, device):
    """A float32 tensor on ``device``, in :func:`standard_layout` (channels_last images on CUDA).

    :class:`~skface._validation.RawImages` are converted on the device, in
    blocks (the whole set ends on the device as float32: for small sets;
    training reads them batch by batch, see :mod:`._stream`).
    """
    if isinstance(array, RawImages):
        from ._stream import DeviceImages

        images = DeviceImages(array, device, resident=False)
        return standard_layout(torch.cat(list(images.blocks())))
    if not array.flags.writeable:
        array = array.copy()  # torch warns on read-only buffers (memmaps)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
    return standard_layout(tensor)


def _new_strides(shape, channels_last):
    """The strides torch gives a new tensor of ``shape``: contiguous, or channels_last (4-D)."""
    sizes = [max(int(size), 1) for size in shape]
    if channels_last:
        _, channels, height, width = sizes
        return (height * width * channels, 1, width * channels, channels)
    strides, step = [], 1
    for size in reversed(sizes):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def standard_layout(x):
    """``x`` in the memory layout skface computes in, which depends on its shape and device only.

    4-D images are channels_last on CUDA (what its convolutions want),
    everything else contiguous; either way with exactly the strides of a
    new tensor of that format (a view where the memory already is laid out
    so, else a copy).

    torch calls a tensor contiguous, and channels_last, whatever the strides
    of its length-1 dimensions, and its convolutions choose their memory
    format from the strides: a grey ``(n, 1, H, W)`` batch viewed from an
    ``(n, H, W)`` array has a channel stride of one pixel, ran channels-last
    on the CPU, and so the same pixels given as a contiguous array, a
    strided view or a channels-last array were summed in different orders.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    x : Tensor
        The same values.
    """
    channels_last = x.ndim == 4 and on_cuda(x.device)
    x = x.contiguous(memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)
    strides = _new_strides(x.shape, channels_last)
    # Contiguous in that format already: only length-1 dimensions' strides differ,
    # and they address no other element.
    return x if x.stride() == strides else x.as_strided(x.shape, strides)


# ITU-R BT.601 luma weights, as PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)


def convert_images(x, size=None, channels=None):
    """Images to a model's channels and size, on their device.

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W)
        C is 1 or 3.
    size : (int, int) or None, default=None
        Output (height, width); resized with antialiased bilinear
        interpolation (plain bilinear aliases fine detail when shrinking).
        None keeps the size.
    channels : {1, 3} or None, default=None
        1 converts RGB to grey with the BT.601 luma weights, 3 repeats grey
        on three channels; None keeps the channels.

    Returns
    -------
    images : Tensor of shape (n, channels, *size)
        In :func:`standard_layout`: channels_last on CUDA, contiguous on
        the CPU, whatever the layout of ``x``.
    """
    if channels is not None and x.shape[1] != channels:
        if channels == 1:
            # Python scalars, not a tensor of weights: a tensor built from a list
            # per batch is a host-to-device copy each time.
            x = x[:, 0:1] * _LUMA[0] + x[:, 1:2] * _LUMA[1] + x[:, 2:3] * _LUMA[2]
        else:
            x = x.repeat(1, channels, 1, 1)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(
            x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False
        )
    # interpolate and the luma sum keep (or pick) a memory format of their own.
    return standard_layout(x)
