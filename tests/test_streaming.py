"""Training from uint8 and memory-mapped image sets, batch by batch."""

import hashlib
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

from skface._validation import RawImages, _check_images, check_images
from skface.estimators import (
    CenterLossEmbedder,
    ConvSDAEFeatures,
    KeypointRegressor,
    SDAEClassifier,
)
from skface.estimators._base import TensorBatches
from skface.estimators._checkpoint import fingerprint
from skface.estimators._stream import DeviceImages, channel_stats, device_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_N, _SIZE = 48, 16


def _uint8_faces(n=_N, size=_SIZE, channels=3, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, size, size, channels)).astype(np.uint8)


@pytest.fixture
def faces(tmp_path):
    """uint8 images in memory, the same saved as .npy and opened memory-mapped, labels."""
    images = _uint8_faces()
    np.save(tmp_path / "faces.npy", images)
    mapped = np.load(tmp_path / "faces.npy", mmap_mode="r")
    return images, mapped, np.arange(_N) % 4


def _file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(estimator):
    return {k: v.clone() for k, v in estimator.net_.module_.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _raw(X, **kwargs):
    images, layout, scale = _check_images(
        X, image_shape=kwargs.pop("image_shape", None), fitted_shape=None, spatial=True,
        estimator=None, raw=True,
    )
    return images, layout, scale


# -- RawImages -------------------------------------------------------------------------


def test_rawimages_uint8_in_memory_keeps_the_callers_array():
    X = _uint8_faces()
    images, layout, scale = _raw(X)
    assert isinstance(images, RawImages)
    assert np.shares_memory(images.array, X)
    assert images.shape == (_N, 3, _SIZE, _SIZE) and images.dtype == np.uint8
    assert scale.kind == "uint8" and scale.high is None and scale.largest() == X.max()
    assert layout.dtype == np.float32


@pytest.mark.parametrize("view", ["whole", "tail", "flat", "offset"])
def test_rawimages_memmap_rows_match_check_images(tmp_path, view):
    X = _uint8_faces()
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    source, shape = {
        "whole": (mapped, None),
        "tail": (mapped[5:], None),
        "flat": (mapped.reshape(_N, -1), (_SIZE, _SIZE, 3)),
        # A memmap opened at the .npy header's offset, not the file start.
        "offset": (np.memmap(tmp_path / "x.npy", np.uint8, "r", offset=mapped.offset,
                             shape=X.shape), None),
    }[view]
    expected, _ = check_images(np.asarray(source), image_shape=shape)
    images, _, _ = _raw(source, image_shape=shape)
    assert images.streamed and images._file is not None  # read from the file
    index = np.array([7, 1, 2, 3, 40, 0, 7])
    np.testing.assert_array_equal(images[index], expected[index])
    np.testing.assert_array_equal(images[3:20], expected[3:20])
    np.testing.assert_array_equal(np.asarray(images), expected)


def test_rawimages_truncated_file_raises(tmp_path):
    X = _uint8_faces()
    path = tmp_path / "x.raw"
    X.tofile(path)
    mapped = np.memmap(path, np.uint8, "r", shape=X.shape)
    images, _, _ = _raw(mapped)
    with open(path, "r+b") as f:
        f.truncate(X[0].nbytes * 10)
    with pytest.raises(OSError, match="shorter than the memory-mapped array"):
        images.read([20])


def test_rawimages_float_memmap_with_nan_raises(tmp_path):
    X = _uint8_faces().astype(np.float32)
    X[3, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match="NaN or infinity in 1 of 48"):
        _raw(np.load(tmp_path / "x.npy", mmap_mode="r"))


def test_rawimages_float_memmap_scale_read_in_blocks(tmp_path, monkeypatch):
    X = _uint8_faces().astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr("skface._validation._BLOCK_BYTES", X[0].nbytes * 5)
    images, _, scale = _raw(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert isinstance(images, RawImages)
    assert (scale.kind, scale.high) == ("0-255", float(X.max()))


def test_check_images_uint8_still_converted_without_raw():
    images, _ = check_images(_uint8_faces(4))
    assert isinstance(images, np.ndarray) and images.dtype == np.float32


# -- batches ---------------------------------------------------------------------------


def test_tensorbatches_deviceimages_same_batches_as_tensor(faces):
    X, mapped, _ = faces
    raw, _, _ = _raw(mapped)
    whole = torch.from_numpy(check_images(X)[0])
    dataset = type("D", (), {})()
    for source in (whole, DeviceImages(raw, "cpu")):
        dataset.X, dataset.y = source, None
        batches = TensorBatches(dataset, 10, shuffle=True,
                                generator=torch.Generator().manual_seed(3))
        got = [x for x, _ in batches]
        if source is whole:
            expected = got
    for a, b in zip(expected, got):
        assert torch.equal(a, b)


def test_channel_stats_blocks_match_whole_array(faces, monkeypatch):
    X, mapped, _ = faces
    monkeypatch.setattr("skface.estimators._stream._BLOCK", 7)  # several uneven blocks
    raw, _, _ = _raw(mapped)
    whole = check_images(X)[0]
    for source in (raw, DeviceImages(raw, "cpu", size=(12, 12))):
        mean, std = channel_stats(source)
        expected = np.asarray(torch.cat(list(DeviceImages(raw, "cpu", size=(12, 12))
                                             .blocks())) if source is not raw else whole)
        np.testing.assert_allclose(mean, expected.mean(axis=(0, 2, 3), dtype=np.float64),
                                   rtol=1e-12)
        # Squares taken in float32 (summed in float64): within float32's precision,
        # at which the statistics are kept.
        np.testing.assert_allclose(std, expected.std(axis=(0, 2, 3), dtype=np.float64),
                                   rtol=6e-8)


def test_fingerprint_memmap_equals_in_memory(faces):
    X, mapped, _ = faces
    est = ConvSDAEFeatures()
    assert fingerprint(est, _raw(X)[0]) == fingerprint(est, _raw(mapped)[0])
    assert fingerprint(est, _raw(X)[0]) != fingerprint(est, _raw(X[::-1])[0])


# -- estimators ------------------------------------------------------------------------


def _sdae(**params):
    return ConvSDAEFeatures(**{**dict(layer_channels=(4, 8), pretrain_epochs=1,
                                      finetune_epochs=1, batch_size=16, random_state=0),
                               **params})


_ESTIMATORS = {
    "sdae_resized": (lambda: _sdae(input_size=12), None, "transform"),
    "sdae_grey": (lambda: _sdae(color=False), None, "reconstruct"),
    "sdae_classifier": (lambda: SDAEClassifier(_sdae(), max_epochs=2, batch_size=16,
                                               random_state=0), "labels", "predict_proba"),
    "keypoints": (lambda: KeypointRegressor(layer_channels=(4, 8), convs_per_layer=1,
                                            input_size=12, max_epochs=2, batch_size=16,
                                            flip_pairs=None, random_state=0),
                  "points", "predict"),
    "keypoints_pretrained": (lambda: KeypointRegressor(
        layer_channels=(4, 8), convs_per_layer=1, pretrain="sdae", pretrain_epochs=1,
        max_epochs=1, batch_size=16, flip_pairs=None, random_state=0), "points", "predict"),
    "keypoints_pretrained_resized": (lambda: KeypointRegressor(
        layer_channels=(4, 8), convs_per_layer=1, pretrain="sdae", pretrain_epochs=1,
        input_size=12, color=False, max_epochs=1, batch_size=16, flip_pairs=None,
        random_state=0), "points", "predict"),
    "embedder": (lambda: CenterLossEmbedder(backbone="small_cnn",
                                            backbone_params={"width": 4}, embedding_dim=8,
                                            max_epochs=2, batch_size=16, random_state=0),
                 "labels", "transform"),
}


def _targets(kind, labels):
    if kind == "labels":
        return labels
    if kind == "points":
        return np.random.RandomState(1).uniform(3, _SIZE - 3, (len(labels), 3, 2))
    return None


def _fit(make, X, y):
    return make().fit(X) if y is None else make().fit(X, y)


@pytest.mark.parametrize("name", sorted(_ESTIMATORS))
def test_estimator_memmap_fit_identical_to_in_memory(faces, tmp_path, name):
    """Same seed, same batches, same conversion: the same weights, bit for bit."""
    X, mapped, labels = faces
    make, kind, method = _ESTIMATORS[name]
    y = _targets(kind, labels)
    before = _file_hash(tmp_path / "faces.npy")
    in_memory, streamed = _fit(make, X, y), _fit(make, mapped, y)
    _assert_same_state(_state(in_memory), _state(streamed))
    np.testing.assert_array_equal(getattr(in_memory, method)(X),
                                  getattr(streamed, method)(mapped))
    assert _file_hash(tmp_path / "faces.npy") == before


@pytest.mark.parametrize("name", ["sdae_classifier", "keypoints",
                                  "keypoints_pretrained_resized", "embedder"])
def test_estimator_uint8_fit_matches_float_fit(faces, name):
    """uint8 trains as its float32 division by 255 did; the batch statistics are
    summed in float64 blocks instead of over the whole float32 tensor, so
    they may differ in the last bits."""
    X, _, labels = faces
    make, kind, method = _ESTIMATORS[name]
    y = _targets(kind, labels)
    floats = X.astype(np.float32) / 255
    a, b = _fit(make, X, y), _fit(make, floats, y)
    np.testing.assert_allclose(getattr(a, method)(X), getattr(b, method)(floats),
                               rtol=1e-4, atol=1e-5)


def test_sdae_memmap_fit_reads_batches_not_whole_set(faces, monkeypatch):
    _, mapped, _ = faces
    reads = []
    read = RawImages.read

    def spy(self, index, out=None):
        rows = read(self, index, out)
        reads.append(len(rows))
        return rows

    def whole(self, dtype=None, copy=None):
        raise AssertionError("the whole set was converted")

    monkeypatch.setattr(RawImages, "read", spy)
    monkeypatch.setattr(RawImages, "__array__", whole)
    monkeypatch.setattr("skface._validation._BLOCK_BYTES", mapped[0].nbytes * 20)
    monkeypatch.setattr("skface.estimators._stream._BLOCK", 20)
    sdae = _sdae(batch_size=8).fit(mapped)
    assert reads and max(reads) <= 20  # training batches and statistics blocks
    del reads[:]
    sdae.transform(mapped)
    assert reads  # in batches, never through __array__


def test_uint8_fit_allocates_no_float_copy_of_the_set(monkeypatch):
    """check_images used to make a float32 copy (4x the uint8 set) before training."""
    X = _uint8_faces(n=800, size=32)
    float_bytes = X.size * 4
    monkeypatch.setattr("skface.estimators._stream._BLOCK", 50)  # statistics blocks
    _sdae(layer_channels=(4,), finetune_epochs=0, batch_size=64).fit(X[:16])  # warm-up
    tracemalloc.start()
    try:
        _sdae(layer_channels=(4,), finetune_epochs=0, batch_size=64).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < float_bytes / 4, (peak, float_bytes)


def test_memmap_is_not_written_or_copied(tmp_path, monkeypatch):
    X = _uint8_faces(n=800, size=32)
    monkeypatch.setattr("skface.estimators._stream._BLOCK", 20)  # statistics blocks
    np.save(tmp_path / "x.npy", X)
    before = _file_hash(tmp_path / "x.npy")
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    tracemalloc.start()
    try:
        sdae = _sdae(layer_channels=(4,), finetune_epochs=0, batch_size=64).fit(mapped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Below the uint8 set itself: neither the set nor its float32 conversion.
    assert peak < X.nbytes / 2, (peak, X.nbytes)
    sdae.transform(mapped)
    assert _file_hash(tmp_path / "x.npy") == before


def test_uint8_memmap_predict_scale_warning_still_works(faces):
    X, mapped, _ = faces
    fitted_on_pixels = _sdae(finetune_epochs=0).fit(X.astype(np.float32))
    with pytest.warns(UserWarning, match="uint8 pixels"):
        fitted_on_pixels.transform(mapped)
    fitted_on_uint8 = _sdae(finetune_epochs=0).fit(mapped)
    assert fitted_on_uint8.input_scale_ == "uint8"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted_on_uint8.transform(X.astype(np.float32) / 255)
    with pytest.warns(UserWarning, match="0-255 pixels"):
        fitted_on_uint8.transform(X.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-zero batch is not warned about
        fitted_on_pixels.transform(np.zeros_like(X))


def test_device_images_float_array_is_whole_tensor():
    images = check_images(_uint8_faces(4))[0]
    x = device_images(images, "cpu", size=(8, 8), channels=1)
    assert isinstance(x, torch.Tensor) and x.shape == (4, 1, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deviceimages_cuda_pinned_batches_match_resident(faces):
    """Rows read into the pinned buffers (two in turn) give the resident batches."""
    X, mapped, _ = faces
    streamed = DeviceImages(_raw(mapped)[0], "cuda", size=(12, 12))
    resident = DeviceImages(_raw(X)[0], "cuda", size=(12, 12))
    assert streamed._data is None and resident._data is not None
    order = torch.randperm(_N, generator=torch.Generator().manual_seed(0))
    for start in range(0, _N, 10):  # more batches than buffers, the last one shorter
        index = order[start : start + 10]
        a, b = streamed[index], resident[index]
        assert a.is_cuda and a.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b)
    expected = torch.from_numpy(check_images(X)[0])
    assert torch.equal(DeviceImages(_raw(mapped)[0], "cuda")[order[:7]].cpu(),
                       expected[order[:7]])


# -- GPU readiness: the resident set's memory check, the order on the device (issue 23) --


@pytest.fixture
def free_memory(monkeypatch):
    """A mocked ``torch.cuda.mem_get_info``: set ``free[0]``; ``asked`` lists the indices."""
    state = {"free": [1 << 30], "asked": []}

    def mem_get_info(index):
        state["asked"].append(index)
        return state["free"][0], 80 << 30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    return state


def test_fits_on_device_at_most_half_the_works_devices_free_memory(free_memory):
    from skface.estimators._stream import _fits_on_device

    free_memory["free"][0] = 1000
    assert _fits_on_device(500, "cuda:1") and not _fits_on_device(501, "cuda:1")
    assert _fits_on_device(500, "cuda")  # the current device (a local rank's own)
    assert free_memory["asked"] == [1, 1, 2]


def test_deviceimages_cuda_set_too_large_for_free_memory_streams(free_memory):
    # No CUDA here: the set must not even be moved (which would raise) when it does
    # not fit; it is read batch by batch instead, its index on the host.
    raw = _raw(_uint8_faces())[0]
    free_memory["free"][0] = 2 * raw.nbytes - 1
    images = DeviceImages(raw, "cuda:0")
    assert images._data is None and images.index_device == torch.device("cpu")
    assert free_memory["asked"] == [0]


def test_deviceimages_memmap_or_cpu_asks_no_cuda_memory(faces, free_memory):
    _, mapped, _ = faces
    assert DeviceImages(_raw(mapped)[0], "cuda:0")._data is None
    assert DeviceImages(_raw(_uint8_faces())[0], "cpu").index_device == torch.device("cpu")
    assert free_memory["asked"] == []


class _IndexDeviceRows:
    """Rows indexed on a device of their own (meta: no CUDA here), recording each index."""

    index_device = torch.device("meta")

    def __init__(self, n):
        self.n, self.indices = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.indices.append(index)
        return index


def test_tensorbatches_order_moved_once_per_epoch_same_order_as_cpu():
    rows, y = _IndexDeviceRows(23), torch.arange(23) * 10
    dataset = type("D", (), {"X": rows, "y": y})()
    batches = list(TensorBatches(dataset, 5, shuffle=True,
                                 generator=torch.Generator().manual_seed(4)))
    assert all(index.device.type == "meta" for index in rows.indices)
    # Slices of one order moved there once, not one copy per batch.
    assert len({id(index._base) for index in rows.indices}) == 1
    expected = torch.randperm(23, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(torch.cat([b for _, b in batches]), expected * 10)
    assert [len(b) for _, b in batches] == [5, 5, 5, 5, 3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tensorbatches_resident_cuda_indices_on_device(faces):
    X, _, _ = faces
    images = DeviceImages(_raw(X)[0], "cuda")
    assert images.index_device.type == "cuda"
    dataset = type("D", (), {"X": images, "y": torch.arange(_N)})()
    batches = list(TensorBatches(dataset, 10, shuffle=True,
                                 generator=torch.Generator().manual_seed(3)))
    order = torch.randperm(_N, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([b for _, b in batches]), order)
    expected = torch.from_numpy(check_images(X)[0])[order[:10]]
    assert torch.equal(batches[0][0].cpu(), expected)
