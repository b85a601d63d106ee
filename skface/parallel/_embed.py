"""Embedding and prediction jobs: a fitted model over a Dask array or many image files."""

import glob
import os
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from skface._atomic import atomic_path

__all__ = [
    "MissingExtraError", "check_box", "check_output", "collect_image_files", "embed",
    "embed_files_to_parquet",
]

#: The methods a job may call, and the prefix of their Parquet columns.
METHODS = {"transform": "e", "predict": "y", "predict_proba": "p"}

_INSTALL = 'pip install "skface[distributed]"'


class MissingExtraError(ImportError):
    """A package of the ``distributed`` extra (dask, distributed, dask-ml, pyarrow) is absent."""


def _require(module, what):
    """Import ``module``, or raise :class:`MissingExtraError` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the package {module.split('.')[0]!r}, which is not installed: "
            f"{_INSTALL}"
        ) from exc


# -- the model as tasks see it ----------------------------------------------------------

# Models loaded from files, per process: a worker reads a saved model once and every
# later task of any job reuses it, so tasks carry a path, never the weights.
_CACHE = OrderedDict()
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()  # a worker with several threads runs tasks side by side
_LOADS = 0  # how many times this process read a model file (the tests count them)


def _cache_key(path, device):
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:  # a registered model's name: skface.load resolves it
        return path, device, None
    # The file's identity too: a model saved again under the same name is read again.
    return os.path.abspath(path), device, (st.st_mtime_ns, st.st_size)


def load_cached(path, device="auto"):
    """``skface.load(path, device=device)``, read once per process and then reused.

    Parameters
    ----------
    path : path-like or str
        A saved model file, or a registered model's name.
    device : str, default="auto"
        Where the weights go on this process.

    Returns
    -------
    estimator : skface estimator
        Shared by every caller in this process: do not refit it.
    """
    global _LOADS
    key = _cache_key(path, device)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            from .._persist import load

            model = load(path, device=device)
            _LOADS += 1
            _CACHE[key] = model
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
    return model


class _ModelRef:
    """A fitted model as a task carries it: a saved file's path, or the estimator itself.

    It answers ``transform``, ``predict`` and ``predict_proba`` like the
    estimator, so ``dask_ml.wrappers.ParallelPostFit`` can wrap it: what
    that pickles into each task is then a path, not the weights.
    """

    def __init__(self, model, device, classes=None):
        if isinstance(model, (str, os.PathLike)):
            self.path, self.estimator = os.fspath(model), None
        else:
            self.path, self.estimator = None, model
        self.device = device
        if classes is not None:
            self.classes_ = classes  # ParallelPostFit.predict_proba sizes its chunks by it

    def get(self):
        """The estimator: the one carried, or the file's, loaded once per process."""
        return self.estimator if self.path is None else load_cached(self.path, self.device)

    def run(self, method, X):
        """``method`` of the estimator on ``X``, with torch's threads set for this process."""
        from ._threads import torch_threads

        # A worker's share of the cores: the nanny's OMP_NUM_THREADS=1 would
        # leave a worker with several threads running torch on one.
        with torch_threads():
            return getattr(self.get(), method)(X)

    def transform(self, X):
        return self.run("transform", X)

    def predict(self, X):
        return self.run("predict", X)

    def predict_proba(self, X):
        return self.run("predict_proba", X)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")


def _prepare(model, method, device):
    """(estimator here, ref for the tasks): a path is loaded here too, to read its shapes."""
    _check_method(method)
    if isinstance(model, (str, os.PathLike)):
        local = load_cached(model, device)
    else:
        local = model
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(local)
    if not hasattr(local, method):
        raise ValueError(f"{type(local).__name__} has no {method} method.")
    if not hasattr(local, "image_shape_"):
        raise ValueError(
            f"{type(local).__name__} has no image_shape_: embed applies skface image models."
        )
    return local, _ModelRef(model, device, getattr(local, "classes_", None))


def _output_spec(estimator, method, item_shape, dtype):
    """Shape of one output row (``()`` for labels) and its dtype, from a one-image run."""
    # An all-zero image: cheap, and the scale check never warns about it.
    probe = getattr(estimator, method)(np.zeros((1, *item_shape), dtype=dtype))
    probe = np.asarray(probe)
    return probe.shape[1:], probe.dtype


def _apply(block, ref, method):
    """The method on one block of images (runs on the workers)."""
    if len(block) == 0:  # no model run for an empty chunk
        return None
    return np.asarray(ref.run(method, block))


def _apply_block(block, ref, method, out_shape, dtype):
    out = _apply(block, ref, method)
    if out is None:
        return np.empty((0, *out_shape), dtype=dtype)
    return out


def _read_and_apply(ref, paths, method, box, image_shape, n_threads, out_shape, dtype):
    """Decode ``paths`` to the model's fitted shape and apply ``method`` (runs on the workers)."""
    images = decode_images(paths, image_shape, box=box, n_threads=n_threads)
    return _apply_block(images, ref, method, out_shape, dtype)


def decode_images(paths, image_shape, *, box=None, n_threads=4):
    """Decode image files the way the dataset fetchers do, to a model's fitted shape.

    Parameters
    ----------
    paths : sequence of path-like
        Image files.
    image_shape : tuple of int (H, W, C)
        A fitted model's ``image_shape_``: each image is cropped to ``box``,
        resized to (H, W) with PIL's default filter, and made grey (C=1,
        mean of R, G, B) or RGB (C=3), values in [0, 1], as in
        :func:`skface.datasets.fetch_lfw_people`.
    box : tuple of int (left, upper, right, lower), default=None
        Crop rectangle in the source image, before resizing; None keeps it
        whole. LFW models fitted on ``fetch_lfw_people()``'s faces need its
        box, ``(78, 70, 172, 195)``.
    n_threads : int, default=4
        Decoding threads.

    Returns
    -------
    images : ndarray of shape (n, H, W) or (n, H, W, 3), float32

    Raises
    ------
    ValueError
        If ``box`` is empty or inverted, or lies mostly (over half) outside
        an image: what would be embedded is then mostly black padding.
    """
    from skface.datasets._images import read_images

    box = check_box(box)
    paths = [os.fspath(p) for p in paths]
    if box is not None:
        for path in paths:
            check_box_inside(box, path)
    height, width = image_shape[:2]
    channels = image_shape[2] if len(image_shape) > 2 else 1
    return read_images(
        paths, box=box, size=(height, width), color=channels == 3, n_threads=n_threads,
    )


#: Below this share of a crop box inside its image, the crop is refused (mostly padding).
MIN_BOX_INSIDE = 0.5


def check_box(box):
    """A crop box as a tuple of 4 ints, or None; an empty or inverted box raises.

    Parameters
    ----------
    box : sequence of 4 int (left, upper, right, lower) or None

    Returns
    -------
    box : tuple of int or None

    Raises
    ------
    ValueError
        If ``box`` is not 4 whole numbers, or ``right <= left`` or
        ``lower <= upper``.
    """
    if box is None:
        return None
    try:
        values = tuple(box)
        ints = tuple(int(b) for b in values)
        if len(ints) != 4 or ints != values:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"box must be 4 whole numbers of pixels (left, upper, right, lower), got {box!r}."
        ) from None
    left, upper, right, lower = ints
    if right <= left or lower <= upper:
        raise ValueError(
            f"box {ints} is inverted or empty: give (left, upper, right, lower) with left < "
            f"right and upper < lower, in pixels of the source image (fetch_lfw_people's "
            "is 78 70 172 195)."
        )
    return ints


def check_box_inside(box, path):
    """Raise if ``box`` lies mostly outside the image file ``path`` (read from its header).

    A file that cannot be opened is left to the decoder, which names the damage.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception:  # the decoder reports it, with the file's name
        return
    left, upper, right, lower = box
    inside = max(0, min(right, width) - max(left, 0)) * max(0, min(lower, height) - max(upper, 0))
    share = inside / ((right - left) * (lower - upper))
    if share < MIN_BOX_INSIDE:
        raise ValueError(
            f"box {tuple(box)} lies mostly outside {path} ({width}x{height} pixels): "
            f"{share:.1%} of it is image, the rest would be embedded as black padding. Give "
            f"a box inside the image (left, upper, right, lower within 0..{width} and "
            f"0..{height})."
        )


# -- Dask arrays ------------------------------------------------------------------------


def embed(model, images, *, batch_size=None, method="transform", box=None, device="auto"):
    """Apply a fitted model to many images, chunk by chunk, as a lazy Dask array.

    Parameters
    ----------
    model : skface estimator or path-like or str
        A fitted estimator (pickled to the workers once per job: skface
        estimators unpickle on any device), or a saved model file or a
        registered model's name, which each worker process loads with
        ``skface.load(model, device=device)`` once and keeps: tasks carry
        only the path, which must be readable on the workers.
    images : dask.array.Array or sequence of path-like
        A Dask array of shape (n, H, W), (n, H, W, C) or (n, H*W*C) in the
        model's fitted shape, or image files, decoded on the workers to the
        model's fitted ``image_shape_`` (see :func:`decode_images`).
    batch_size : int, default=None
        Images per task. None keeps a Dask array's chunks along axis 0 and
        reads files 1024 at a time.
    method : {"transform", "predict", "predict_proba"}, default="transform"
        What to compute.
    box : tuple of int (left, upper, right, lower), default=None
        Crop rectangle applied to image files before resizing (see
        :func:`decode_images`); arrays must be cropped already (an error).
    device : str, default="auto"
        Device a saved model is loaded on, on each worker.

    Returns
    -------
    outputs : dask.array.Array of shape (n, n_outputs) or (n,)
        Chunked like the images along axis 0, in their order; nothing runs
        until it is computed (on the active Dask scheduler or client).

    Notes
    -----
    ``predict`` (labels) and ``predict_proba`` of an array go through
    ``dask_ml.wrappers.ParallelPostFit`` on the images as flat rows; it
    assumes 2-D inputs and keeps the input's chunks for ``transform``, so
    embeddings (fewer columns than pixels), 3-D and 4-D images and file
    lists use ``map_blocks``/``from_delayed`` with the right output chunks.
    """
    da = _require("dask.array", "skface.parallel.embed")
    local, ref = _prepare(model, method, device)
    image_shape = tuple(local.image_shape_)
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    if isinstance(images, da.Array):
        if box is not None:
            raise ValueError(
                "box crops image files as they are decoded; crop an array before embedding "
                "it (e.g. images[:, upper:lower, left:right])."
            )
        return _embed_array(da, local, ref, images, batch_size, method)
    if isinstance(images, (str, os.PathLike)) or hasattr(images, "shape"):
        raise TypeError(
            "images must be a Dask array or a list of image files; for a NumPy array call "
            f"the model's {method} directly, or wrap it with dask.array.from_array."
        )
    return _embed_files_lazy(da, local, ref, list(images), batch_size or 1024, method,
                             check_box(box), image_shape)


def _embed_array(da, local, ref, images, batch_size, method):
    import dask

    if images.ndim not in (2, 3, 4):
        raise ValueError(
            f"images must be (n, H, W), (n, H, W, C) or (n, H*W*C); got shape {images.shape}."
        )
    # Tasks split the images, never one image: one chunk spans axes 1 and up.
    chunks = {0: batch_size or images.chunks[0]}
    chunks.update({axis: -1 for axis in range(1, images.ndim)})
    images = images.rechunk(chunks)
    out_shape, dtype = _output_spec(local, method, images.shape[1:], images.dtype)
    if method == "predict_proba" or (method == "predict" and out_shape == ()):
        ParallelPostFit = _require("dask_ml.wrappers", "skface.parallel.embed").ParallelPostFit

        # ParallelPostFit reads 2-D rows: flat images are what the model reads too.
        flat = images.reshape(images.shape[0], -1) if images.ndim > 2 else images
        meta = np.empty((0, *out_shape), dtype=dtype)
        wrapped = ParallelPostFit(ref, predict_meta=meta, predict_proba_meta=meta)
        return getattr(wrapped, method)(flat)
    # One graph key holds the model, which each worker fetches once per job.
    model_key = dask.delayed(ref, pure=False, traverse=False)
    out_axes = 1 + len(out_shape)
    return da.map_blocks(
        _apply_block, images, model_key, method, out_shape, dtype,
        drop_axis=list(range(out_axes, images.ndim)) or None,
        new_axis=list(range(images.ndim, out_axes)) or None,
        chunks=(images.chunks[0], *((s,) for s in out_shape)),
        dtype=dtype, meta=np.empty((0,) * out_axes, dtype=dtype),
    )


def _chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def _embed_files_lazy(da, local, ref, files, chunk_size, method, box, image_shape):
    import dask

    if not files:
        raise ValueError("No image files to embed.")
    out_shape, dtype = _output_spec(local, method, image_shape, np.float32)
    model_key = dask.delayed(ref, pure=False, traverse=False)
    read = dask.delayed(_read_and_apply, pure=True)
    parts = [
        da.from_delayed(
            read(model_key, chunk, method, box, image_shape, 1, out_shape, dtype),
            shape=(len(chunk), *out_shape), dtype=dtype,
        )
        for chunk in _chunks([os.fspath(f) for f in files], chunk_size)
    ]
    return da.concatenate(parts, axis=0)


# -- Parquet tables ---------------------------------------------------------------------


def output_columns(method, out_shape):
    """Parquet column names of one output row: ``e0..`` (transform), ``p0..``, ``y0..``.

    Parameters
    ----------
    method : {"transform", "predict", "predict_proba"}
    out_shape : tuple of int
        Shape of one output row; ``()`` (labels) gives ``["prediction"]``.

    Returns
    -------
    names : list of str
    """
    if out_shape == ():
        return ["prediction"]
    return [f"{METHODS[method]}{i}" for i in range(int(np.prod(out_shape)))]


def _table(pa, names, files, values):
    values = np.asarray(values)
    columns = {"file": pa.array(files, type=pa.string())}
    if values.ndim == 1:
        columns[names[0]] = pa.array(values.tolist() if values.dtype.kind == "U" else values)
    else:
        values = values.reshape(len(values), -1)
        for j, name in enumerate(names):
            columns[name] = pa.array(np.ascontiguousarray(values[:, j]))
    return pa.table(columns)


def check_output(out, what="embeddings table"):
    """Fail at once if ``out`` cannot be written, before any work depends on it.

    Parameters
    ----------
    out : path-like
        The file to write. A symbolic link is checked (and later written)
        at its target.
    what : str
        Named in messages.

    Raises
    ------
    IsADirectoryError
        If ``out`` is a folder.
    FileNotFoundError
        If its folder does not exist (it is not created: a typo would
        otherwise make one).
    PermissionError
        If its folder cannot be written to.
    """
    path = Path(os.path.realpath(out))
    name = os.fspath(out)
    if path.is_dir():
        raise IsADirectoryError(
            f"Cannot write the {what} {name}: it is a folder; name a file in it "
            f"(e.g. {os.path.join(name, 'embeddings.parquet')})."
        )
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot write the {what} {name}: its folder {folder} "
            f"{'is a file' if folder.exists() else 'does not exist'}; create the folder or "
            "pass another path."
        )
    try:  # the one reliable test of a folder's write permission (ACLs, read-only mounts)
        fd, probe = tempfile.mkstemp(prefix=".skface-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise type(exc)(
            f"Cannot write the {what} {name}: {folder} is not writable "
            f"({exc.strerror or exc}); pass a path in a folder you can write to."
        ) from exc


class _NotWritten(Exception):
    """Carries an error of the work done between writes (decoding, a worker's task) out of
    :func:`atomic_path`, which reports every OSError inside it as a failed write."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def embed_files_to_parquet(
    model, files, out, *, client=None, chunk_size=1024, method="transform", box=None,
    device="auto", progress=True, n_threads=4,
):
    """Apply a fitted model to image files and write a Parquet table, in input order.

    Parameters
    ----------
    model : skface estimator or path-like or str
        A fitted estimator, or a saved model file or registered name that
        each worker loads once (see :func:`embed`).
    files : sequence of path-like
        Image files, decoded to the model's fitted ``image_shape_`` (see
        :func:`decode_images`).
    out : path-like
        Parquet file to write; checked before any work, written beside it
        first and renamed when complete, so a failed job (or a full disk)
        leaves no partial table and an earlier file at ``out`` unchanged. A
        symbolic link is kept: its target is replaced.
    client : distributed.Client, default=None
        Runs one task per chunk on its workers. None runs every chunk in
        this process, without Dask.
    chunk_size : int, default=1024
        Images per task (and per Parquet row group).
    method : {"transform", "predict", "predict_proba"}, default="transform"
        What to compute.
    box : tuple of int (left, upper, right, lower), default=None
        Crop rectangle applied before resizing.
    device : str, default="auto"
        Device the model is loaded on (on each worker for a path).
    progress : bool, default=True
        A progress bar (tqdm) while chunks complete, on a terminal only.
    n_threads : int, default=4
        Decoding threads in this process when ``client`` is None; each
        worker decodes with one (its cores run the other tasks).

    Returns
    -------
    out : str
        The table's path. Columns: ``file`` (as given), then one float
        column per output dimension (``e0..`` for transform, ``p0..`` for
        predict_proba, ``y0..`` for multi-output predict) or one
        ``prediction`` column of labels.

    Raises
    ------
    OSError
        If the table cannot be written (a full disk): a one-line
        ``WriteError`` naming ``out``; the previous file there is unchanged.
    ValueError
        For a bad ``box`` (see :func:`decode_images`), before any work.
    """
    pa = _require("pyarrow", "embed_files_to_parquet")
    pq = _require("pyarrow.parquet", "embed_files_to_parquet")
    from tqdm.auto import tqdm

    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}.")
    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("No image files to embed.")
    out = os.fspath(out)
    check_output(out)
    box = check_box(box)
    if box is not None:
        check_box_inside(box, files[0])  # a wrong box fails now, not after a chunk's work
    local, ref = _prepare(model, method, device)
    image_shape = tuple(local.image_shape_)
    out_shape, dtype = _output_spec(local, method, image_shape, np.float32)
    names = output_columns(method, out_shape)
    chunks = _chunks(files, int(chunk_size))
    bar = tqdm(total=len(files), unit="img", desc="embedding", disable=None if progress else True)
    futures = []
    try:
        with atomic_path(out, what="embeddings table") as partial:
            writer = None
            try:
                def write(i, values):
                    nonlocal writer
                    table = _table(pa, names, chunks[i], values)
                    if writer is None:
                        writer = pq.ParquetWriter(partial, table.schema)
                    writer.write_table(table)

                if client is None:
                    here = _ModelRef(local, device)
                    for i, chunk in enumerate(chunks):
                        write(i, _computed(_read_and_apply, here, chunk, method, box,
                                           image_shape, n_threads, out_shape, dtype))
                        bar.update(len(chunk))
                else:
                    as_completed = _require("distributed", "embed_files_to_parquet").as_completed
                    # An estimator goes to the cluster once, not with every task; a path is tiny.
                    task_ref = ref if ref.path is not None else client.scatter(ref,
                                                                               broadcast=False)
                    job = uuid.uuid4().hex[:8]
                    futures = [
                        client.submit(_read_and_apply, task_ref, chunk, method, box,
                                      image_shape, 1, out_shape, dtype,
                                      key=f"skface-embed-{job}-{i}", pure=False)
                        for i, chunk in enumerate(chunks)
                    ]
                    index = {f.key: i for i, f in enumerate(futures)}
                    done, next_i = {}, 0
                    for future in as_completed(futures):
                        i = index[future.key]
                        done[i] = _computed(future.result)
                        future.release()
                        bar.update(len(chunks[i]))
                        # Chunks finish in any order; rows go out in the order of `files`.
                        while next_i in done:
                            write(next_i, done.pop(next_i))
                            next_i += 1
                done_writer, writer = writer, None
                done_writer.close()
            finally:
                if writer is not None:
                    writer.close()
    except BaseException as exc:
        if futures and client is not None:
            client.cancel(futures)
        if isinstance(exc, _NotWritten):
            raise exc.error from exc.error.__cause__
        raise
    finally:
        bar.close()
    return out


def _computed(func, *args):
    """``func(*args)``, its failure wrapped so that it is not reported as a failed write."""
    try:
        return func(*args)
    except Exception as exc:
        raise _NotWritten(exc) from exc


# -- files from the command line ----------------------------------------------------


def collect_image_files(specs):
    """Image files from files, folders (recursed) and glob patterns, in a stable order.

    Parameters
    ----------
    specs : sequence of str
        A file is taken as it is; a folder gives its image files
        (:func:`skface.datasets._images.is_image_name`), subfolders
        included, in sorted order; a pattern (``*``, ``?``, ``[``, and
        ``**`` for any depth) gives its sorted matches, folders recursed.

    Returns
    -------
    files : list of str

    Raises
    ------
    FileNotFoundError
        If a file does not exist or a pattern matches nothing, naming it.
    ValueError
        If no image files are found at all.
    """
    from skface.datasets._images import is_image_name

    def walk(folder):
        found = []
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, n) for n in sorted(names) if is_image_name(n))
        return found

    files = []
    for spec in specs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            files.extend(walk(spec))
        elif os.path.isfile(spec):
            files.append(spec)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no files match the pattern {spec}")
            for match in matches:
                if os.path.isdir(match):
                    files.extend(walk(match))
                elif is_image_name(os.path.basename(match)):
                    files.append(match)
        else:
            raise FileNotFoundError(f"image file not found: {spec}")
    if not files:
        raise ValueError(f"no image files found in {' '.join(map(str, specs))}")
    return files
