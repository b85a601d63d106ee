"""MTCNN face detection: the pretrained weights, torch NMS and the batched three-stage cascade."""

# The cascade follows Zhang et al. (IEEE SPL 2016) as ported by facenet-pytorch
# (models/utils/detect_face.py, Copyright (c) 2019 Timothy Esler, MIT licence:
# https://github.com/timesler/facenet-pytorch), step for step and constant for
# constant, so that its weights give its detections; the code is skface's own:
# crops are resampled from integral images in one gather instead of one
# interpolate call per box, NMS is a blocked exact greedy NMS in torch, and
# images of different sizes share the R-Net and O-Net batches.

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._persist import read_safetensors, write_safetensors

__all__ = ["detect_mtcnn", "fetch_mtcnn_weights", "load_mtcnn_nets"]

# facenet-pytorch's wheel holds the converted weights; it is downloaded once,
# its three state dicts are rewritten as one safetensors file, and it is deleted.
_WHEEL = "facenet_pytorch-2.5.3-py3-none-any.whl"
_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/40/c1/0a15058f478c8f0f29cacb6e35530b97ead780be"
    "99737e62810e71dc477e/facenet_pytorch-2.5.3-py3-none-any.whl"
)
_WHEEL_SHA256 = "b8002c3ee7a3af471c433cbda1fdcab9ae2d46a4aac43435ba08259c45ffc884"
_MEMBER_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
_NETS = ("pnet", "rnet", "onet")
_WEIGHTS_FILE = "mtcnn-facenet_pytorch-2.5.3.safetensors"
_FORMAT = "skface-mtcnn-1"

# Crops per R-Net / O-Net forward: bounds the memory of the crop gathers
# (about 220 kB per 48x48 crop) whatever the number of proposals.
_CROP_BATCH = 512
# Boxes per block of the blocked NMS: bounds its overlap matrices to a few MB.
_NMS_BLOCK = 1024


def _folder(cache_home):
    from ..datasets._home import get_cache_home  # deferred: keeps this module's import light

    return get_cache_home(cache_home) / "models" / "mtcnn"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _networks():
    from ..nn.mtcnn import ONet, PNet, RNet

    return {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}


def _checked(state_dicts, where):
    """The three state dicts, after loading them strictly into the networks."""
    nets = _networks()
    for name in _NETS:
        try:
            nets[name].load_state_dict(state_dicts[name], strict=True)
        except (KeyError, RuntimeError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{where}: the {name} weights do not fit skface's {name.upper()[0]}-Net "
                f"({type(exc).__name__}: {exc})."
            ) from None
    return state_dicts


def _read_wheel(wheel):
    """The state dicts of the wheel's three ``.pt`` members, each checked against its pin."""
    from ..datasets._download import ChecksumError

    state_dicts = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in _NETS:
                member = f"facenet_pytorch/data/{name}.pt"
                try:
                    data = zf.read(member)
                except KeyError:
                    raise ValueError(
                        f"{wheel.name} has no {member}: it is not the facenet-pytorch 2.5.3 "
                        "wheel. It was deleted; fetch the weights again."
                    ) from None
                if _sha256(data) != _MEMBER_SHA256[name]:
                    raise ChecksumError(
                        f"{member} in {wheel.name} does not match its pinned checksum "
                        f"sha256:{_MEMBER_SHA256[name]}; the wheel was deleted and nothing was "
                        "kept. Try again later, or unset SKFACE_MIRROR if it points to a mirror."
                    )
                # weights_only: the tensors are read without running any pickled code.
                state_dicts[name] = torch.load(
                    io.BytesIO(data), map_location="cpu", weights_only=True
                )
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{wheel.name} is not a zip archive ({exc}); it was deleted.") from None
    return _checked(state_dicts, wheel.name)


def _write_weights(state_dicts, path):
    """Write the three state dicts as one safetensors file, atomically."""
    tensors = {
        f"{name}.{key}": value.detach().to("cpu", torch.float32).contiguous()
        for name in _NETS
        for key, value in state_dicts[name].items()
    }
    metadata = {"format": _FORMAT, "source": f"{_WHEEL} sha256:{_WHEEL_SHA256}"}
    write_safetensors(tensors, path, metadata)


def _read_weights(path):
    """The three state dicts of a safetensors weights file; ``ValueError`` if it is not one."""
    try:
        metadata, tensors = read_safetensors(path)
    except ValueError as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc})") from None
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{path} is not an skface MTCNN weights file (no {_FORMAT!r} header)")
    state_dicts = {name: {} for name in _NETS}
    for key, value in tensors.items():
        name, _, param = key.partition(".")
        if name not in state_dicts:
            raise ValueError(f"{path} holds an unexpected tensor {key!r}")
        state_dicts[name][param] = value
    return _checked(state_dicts, str(path))


def fetch_mtcnn_weights(*, cache_home=None, download_if_missing=True):
    """The pretrained MTCNN weights, downloaded and converted on first use.

    The weights are facenet-pytorch's (MIT licence), converted from the
    original Caffe models of Zhang et al. (2016). The first call downloads
    the facenet-pytorch 2.5.3 wheel from PyPI (pinned by sha256; the
    ``SKFACE_MIRROR`` override applies, as for the datasets), checks its
    three ``.pt`` members against their own sha256 pins, reads them without
    unpickling any code (``torch.load(weights_only=True)``), writes them
    into one safetensors file of the cache, and deletes the wheel. Later
    calls read only that file.

    Parameters
    ----------
    cache_home : path-like, default=None
        See :func:`skface.datasets.get_cache_home`; the weights live in
        ``<cache home>/models/mtcnn/``.
    download_if_missing : bool, default=True
        If False, raise instead of downloading. A wheel put in that folder
        by hand is still converted.

    Returns
    -------
    weights : dict
        ``{"pnet": state_dict, "rnet": state_dict, "onet": state_dict}``,
        each loading strictly into :class:`skface.nn.mtcnn.PNet`,
        :class:`~skface.nn.mtcnn.RNet` and :class:`~skface.nn.mtcnn.ONet`.

    Raises
    ------
    FileNotFoundError
        If the weights are not in the cache and ``download_if_missing`` is
        False; the message says where to get the wheel.
    skface.datasets.ChecksumError
        If the wheel, or one of its members, differs from its pin. Nothing
        of it is kept.
    skface.datasets.DownloadError
        If the wheel cannot be downloaded.
    """
    from ..datasets._download import ChecksumError, download
    from .._warnings import warn_at_caller

    folder = _folder(cache_home)
    path = folder / _WEIGHTS_FILE
    if path.exists():
        try:
            return _read_weights(path)
        except ValueError as exc:
            warn_at_caller(
                f"skface: the MTCNN weights file cannot be used ({exc}); converting the "
                "weights again.",
                RuntimeWarning,
            )
            path.unlink(missing_ok=True)
    wheel = folder / _WHEEL
    if not download_if_missing:
        if not wheel.exists():
            raise FileNotFoundError(
                f"The MTCNN weights are not in {folder} (download_if_missing=False). Call "
                f"fetch_mtcnn_weights() with download_if_missing=True to download them "
                f"(about 2 MB), or put {_WHEEL} ({_WHEEL_URL}, sha256:{_WHEEL_SHA256}) in "
                f"{folder} by hand: it is converted and deleted on the next call."
            )
        if _sha256(wheel.read_bytes()) != _WHEEL_SHA256:
            wheel.unlink()
            raise ChecksumError(
                f"{wheel} does not match its pinned checksum sha256:{_WHEEL_SHA256}; it was "
                f"deleted. Download it again from {_WHEEL_URL}."
            )
    else:
        # A wheel already in the folder is verified, not downloaded again.
        wheel = download(_WHEEL, folder, url=_WHEEL_URL, known_hash=f"sha256:{_WHEEL_SHA256}")
    try:
        state_dicts = _read_wheel(wheel)
        _write_weights(state_dicts, path)
    finally:
        wheel.unlink(missing_ok=True)
    return state_dicts


def load_mtcnn_nets(weights, *, device="cpu"):
    """P-Net, R-Net and O-Net with their weights, in eval mode on ``device``.

    Parameters
    ----------
    weights : dict or path-like
        The dict of :func:`fetch_mtcnn_weights`, or the path of its
        safetensors file.
    device : str or torch.device, default="cpu"

    Returns
    -------
    nets : tuple of torch.nn.Module
        ``(pnet, rnet, onet)``, without gradients.
    """
    if isinstance(weights, (str, os.PathLike)):
        weights = _read_weights(Path(weights))
    nets = _networks()
    for name in _NETS:
        nets[name].load_state_dict(weights[name], strict=True)
        nets[name].eval().requires_grad_(False).to(device)
    return tuple(nets[name] for name in _NETS)


# ---------------------------------------------------------------------------
# Non-maximum suppression


def _overlap(a, b, *, min_mode, inclusive):
    """Overlap matrix (len(a), len(b)): IoU, or intersection over the smaller area."""
    one = 1.0 if inclusive else 0.0
    iw = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0]))
    ih = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1]))
    inter = (iw + one).clamp(min=0) * (ih + one).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    if min_mode:
        return inter / torch.minimum(area_a[:, None], area_b[None, :])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _batched_nms(boxes, scores, groups, threshold, *, min_mode=False, inclusive=False):
    """Greedy non-maximum suppression within each group, exactly as the sequential loop.

    A box is dropped when it overlaps a kept box of the same group and
    higher score by more than ``threshold``.

    Parameters
    ----------
    boxes : torch.Tensor of shape (n, 4)
        x0, y0, x1, y1.
    scores : torch.Tensor of shape (n,)
    groups : torch.Tensor of shape (n,)
        Integer group of each box (its image); groups never suppress each other.
    threshold : float
    min_mode : bool, default=False
        Overlap is the intersection over the smaller area (MTCNN's "Min")
        instead of the IoU.
    inclusive : bool, default=False
        Pixel-inclusive sizes (``x1 - x0 + 1``), as MTCNN's original NMS.

    Returns
    -------
    keep : torch.Tensor of shape (k,), int64
        Indices of the kept boxes, by descending score.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, groups = boxes[order], groups[order]
    kept = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    # Block by block in score order: the boxes kept in earlier blocks are final,
    # so a block first drops what they suppress, then settles its own greedy
    # order by a fixed-point iteration ("cluster NMS", Zheng et al. 2021): the
    # sequential recursion kept[j] = alive[j] and no kept i < j overlaps j has a
    # unique solution, reached in as many rounds as the longest suppression chain.
    for start in range(0, n, _NMS_BLOCK):
        stop = min(start + _NMS_BLOCK, n)
        blk, blk_groups = boxes[start:stop], groups[start:stop]
        alive = torch.ones(stop - start, dtype=torch.bool, device=boxes.device)
        if start:
            prev = kept[:start].nonzero().squeeze(1)
            if prev.numel():
                hit = _overlap(boxes[prev], blk, min_mode=min_mode, inclusive=inclusive) > threshold
                hit &= groups[prev][:, None] == blk_groups[None, :]
                alive = ~hit.any(dim=0)
        over = _overlap(blk, blk, min_mode=min_mode, inclusive=inclusive) > threshold
        over &= blk_groups[:, None] == blk_groups[None, :]
        over = torch.triu(over, diagonal=1)  # only a higher score suppresses
        keep = alive
        while True:
            new = alive & ~(over & keep[:, None]).any(dim=0)
            if torch.equal(new, keep):
                break
            keep = new
        kept[start:stop] = keep
    return order[kept]


# ---------------------------------------------------------------------------
# Boxes


def _square(boxes):
    """Boxes (n, >=4) grown to squares of side max(w, h) about their centres (MTCNN's rerec)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x0 = boxes[:, 0] + (w - side) * 0.5
    y0 = boxes[:, 1] + (h - side) * 0.5
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def _regress(boxes, reg):
    """Apply R-/O-Net's box corrections (fractions of the pixel-inclusive size)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes[:, :4] + reg * torch.stack([w, h, w, h], dim=1)


def _crop_windows(boxes, sizes):
    """Integer crop windows (rows r0:r1, cols c0:c1) of boxes, and whether any pixel is inside.

    As the original MTCNN's ``pad``: truncate to whole pixels, 1-based
    ``[y - 1:ey, x - 1:ex]``; the window keeps the box's whole extent, and
    the parts outside the image are read as zeros (``_Integrals.crops``).
    facenet-pytorch crops only the part inside the image and resizes it
    to the square input, which stretches every face whose box crosses
    the border: on tight face chips (a dataset's released crops), where
    MTCNN's box is larger than the image, that moved its five points by
    a fifth of the eye distance. ``sizes`` (n, 2) holds each box's image
    (height, width); ``inside`` is False where the window misses it.
    """
    b = boxes.trunc().long()
    c0, r0, c1, r1 = b[:, 0] - 1, b[:, 1] - 1, b[:, 2], b[:, 3]
    inside = ((torch.minimum(r1, sizes[:, 0]) > r0.clamp(min=0))
              & (torch.minimum(c1, sizes[:, 1]) > c0.clamp(min=0)))
    return r0, r1, c0, c1, inside


class _Integrals:
    """Integral images of a chunk's images, flattened into one buffer for joint gathers."""

    def __init__(self, images):
        parts, offsets, sizes, total = [], [], [], 0
        # Integer sums are exact, so area averages match interpolate(mode="area");
        # int32 holds a channel's total up to 8.4 megapixels, at half int64's memory.
        largest = max(img.shape[0] * img.shape[1] for img in images)
        dtype = torch.int32 if 255 * largest < 2**31 else torch.int64
        for img in images:  # (H, W, 3) uint8 on the device
            h, w = img.shape[:2]
            ii = torch.zeros((h + 1, w + 1, 3), dtype=dtype, device=img.device)
            ii[1:, 1:] = img.to(dtype).cumsum(0, dtype=dtype).cumsum(1, dtype=dtype)
            parts.append(ii.reshape(-1))
            offsets.append(total)
            sizes.append((h, w))
            total += ii.numel()
        device = images[0].device
        self.flat = torch.cat(parts)
        self.offsets = torch.tensor(offsets, dtype=torch.long, device=device)
        self.sizes = torch.tensor(sizes, dtype=torch.long, device=device)

    def crops(self, image_idx, r0, r1, c0, c1, size):
        """Area-resampled crops (n, 3, size, size), float, as ``interpolate(mode="area")``.

        A window may reach past its image: the pixels outside count as
        zeros (each bin's sum is over the pixels inside it, divided by the
        bin's whole area), as if the image were zero-padded first.
        """
        j = torch.arange(size, device=self.flat.device)
        h, w = (r1 - r0)[:, None], (c1 - c0)[:, None]
        # adaptive_avg_pool2d's bins: [floor(j * n / s), ceil((j + 1) * n / s)).
        ys0 = r0[:, None] + torch.div(j * h, size, rounding_mode="floor")
        ys1 = r0[:, None] + torch.div((j + 1) * h + size - 1, size, rounding_mode="floor")
        xs0 = c0[:, None] + torch.div(j * w, size, rounding_mode="floor")
        xs1 = c0[:, None] + torch.div((j + 1) * w + size - 1, size, rounding_mode="floor")
        count = (ys1 - ys0)[:, :, None] * (xs1 - xs0)[:, None, :]
        # Clamped to the integral image (0..h, 0..w): a bin's part outside sums to zero.
        heights, widths = self.sizes[image_idx, 0][:, None], self.sizes[image_idx, 1][:, None]
        ys0, ys1 = (torch.minimum(ys.clamp(min=0), heights) for ys in (ys0, ys1))
        xs0, xs1 = (torch.minimum(xs.clamp(min=0), widths) for xs in (xs0, xs1))
        base = self.offsets[image_idx][:, None, None]
        stride = (widths + 1)[:, :, None]
        chan = torch.arange(3, device=self.flat.device)

        def at(rows, cols):
            idx = (rows[:, :, None] * stride + cols[:, None, :]) * 3 + base
            return self.flat[idx[..., None] + chan]

        total = at(ys1, xs1) - at(ys0, xs1) - at(ys1, xs0) + at(ys0, xs0)
        crops = total.to(torch.float32) / count[..., None].to(torch.float32)
        return crops.permute(0, 3, 1, 2)


def _normalise(x):
    return (x - 127.5) * 0.0078125


# ---------------------------------------------------------------------------
# The cascade


def _pyramid(h, w, min_face_size, factor):
    """Scales at which a face of ``min_face_size`` pixels becomes P-Net's 12 pixels, and below."""
    scale = 12.0 / min_face_size
    side = min(h, w) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def _proposals(batch, image_idx, pnet, min_face_size, factor, threshold):
    """P-Net's candidate windows over the pyramid of a batch of same-size images.

    Returns boxes (n, 4), scores (n,), regressions (n, 4) and image indices
    (n,), after NMS at 0.5 within each scale and image.
    """
    h, w = batch.shape[2:]
    out = []
    for scale in _pyramid(h, w, min_face_size, factor):
        x = F.interpolate(batch, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        prob, reg = pnet(_normalise(x))
        mask = prob >= threshold
        where = mask.nonzero()  # (n, 3): image, row, col
        # The window of output cell (row, col) spans 12 pixels from twice its
        # coordinates at this scale, in 1-based pixels as the original.
        cell = where[:, [2, 1]].to(reg.dtype)
        q0 = ((2 * cell + 1) / scale).floor()
        q1 = ((2 * cell + 12) / scale).floor()
        scores = prob[mask]
        regs = reg.permute(0, 2, 3, 1)[mask]
        idx = image_idx[where[:, 0]]
        boxes = torch.cat([q0, q1], dim=1)
        keep = _batched_nms(boxes, scores, idx, 0.5)
        out.append((boxes[keep], scores[keep], regs[keep], idx[keep]))
    return out


def _run_crops(net, integrals, boxes, image_idx, size):
    """Run ``net`` on the area-resampled crops of ``boxes``, ``_CROP_BATCH`` at a time."""
    r0, r1, c0, c1, _ = _crop_windows(boxes, integrals.sizes[image_idx])
    outs = []
    for start in range(0, boxes.shape[0], _CROP_BATCH):
        sl = slice(start, start + _CROP_BATCH)
        crops = integrals.crops(image_idx[sl], r0[sl], r1[sl], c0[sl], c1[sl], size)
        outs.append(net(_normalise(crops)))
    return [torch.cat(parts) for parts in zip(*outs)]


def _valid(boxes, integrals, image_idx):
    """Boxes whose crop window holds at least one pixel of their image."""
    return _crop_windows(boxes, integrals.sizes[image_idx])[4]


def _detect_chunk(images, nets, min_face_size, thresholds, factor):
    pnet, rnet, onet = nets
    device = images[0].device
    n_images = len(images)
    integrals = _Integrals(images)

    # Stage 1: P-Net over each size's pyramid, images of one size batched.
    by_size = {}
    for i, img in enumerate(images):
        by_size.setdefault(tuple(img.shape[:2]), []).append(i)
    found = []
    for members in by_size.values():
        batch = torch.stack([images[i] for i in members]).permute(0, 3, 1, 2).float()
        idx = torch.tensor(members, dtype=torch.long, device=device)
        found += _proposals(batch, idx, pnet, min_face_size, factor, thresholds[0])
    empty = torch.empty(0, 4, device=device)
    boxes = torch.cat([f[0] for f in found]) if found else empty
    scores = torch.cat([f[1] for f in found]) if found else empty[:, 0]
    regs = torch.cat([f[2] for f in found]) if found else empty
    image_idx = torch.cat([f[3] for f in found]) if found else empty[:, 0].long()

    keep = _batched_nms(boxes, scores, image_idx, 0.7)
    boxes, regs, image_idx = boxes[keep], regs[keep], image_idx[keep]
    # P-Net's corrections are fractions of the exclusive size (x1 - x0).
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    boxes = _square(boxes + regs * wh)

    # Stage 2: R-Net on 24x24 crops of every image's proposals together.
    ok = _valid(boxes, integrals, image_idx)
    boxes, image_idx = boxes[ok], image_idx[ok]
    if boxes.shape[0]:
        scores, regs = _run_crops(rnet, integrals, boxes, image_idx, 24)
        ok = scores > thresholds[1]
        boxes, scores, regs, image_idx = boxes[ok], scores[ok], regs[ok], image_idx[ok]
        keep = _batched_nms(boxes, scores, image_idx, 0.7)
        boxes = _square(_regress(boxes[keep], regs[keep]))
        image_idx = image_idx[keep]

    # Stage 3: O-Net on 48x48 crops: final scores, boxes and landmarks.
    points = torch.empty(0, 5, 2, device=device)
    scores = torch.empty(0, device=device)
    ok = _valid(boxes, integrals, image_idx)
    boxes, image_idx = boxes[ok], image_idx[ok]
    if boxes.shape[0]:
        scores, regs, marks = _run_crops(onet, integrals, boxes, image_idx, 48)
        ok = scores > thresholds[2]
        boxes, scores, regs, marks, image_idx = (
            boxes[ok], scores[ok], regs[ok], marks[ok], image_idx[ok]
        )
        # Landmarks are fractions of the (pre-correction) crop, in 1-based pixels.
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        xs = w * marks[:, :5] + boxes[:, :1] - 1
        ys = h * marks[:, 5:] + boxes[:, 1:2] - 1
        points = torch.stack([xs, ys], dim=2)
        boxes = _regress(boxes, regs)
        keep = _batched_nms(boxes, scores, image_idx, 0.7, min_mode=True, inclusive=True)
        boxes, scores, points, image_idx = boxes[keep], scores[keep], points[keep], image_idx[keep]

    boxes, scores, points = (t.float().cpu().numpy() for t in (boxes, scores, points))
    image_idx = image_idx.cpu().numpy()
    results = []
    for i in range(n_images):
        sel = np.flatnonzero(image_idx == i)
        sel = sel[np.argsort(-scores[sel], kind="stable")]
        results.append((boxes[sel], scores[sel], points[sel]))
    return results


def _as_rgb(image, i):
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"images[{i}] has dtype {arr.dtype}; detect_mtcnn needs uint8 RGB pixels 0-255 "
            "(convert with skimage.util.img_as_ubyte)."
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"images[{i}] has shape {arr.shape}; detect_mtcnn needs (H, W, 3) RGB or (H, W) "
            "grey images (drop an alpha channel first)."
        )
    arr = np.ascontiguousarray(arr)
    # torch.from_numpy warns on read-only arrays (np.asarray of a PIL image is one);
    # the cascade never writes to its input, but a copy keeps that warning from users.
    return arr if arr.flags.writeable else arr.copy()


def detect_mtcnn(
    images,
    *,
    weights,
    device="cpu",
    min_face_size=20,
    thresholds=(0.6, 0.7, 0.7),
    factor=0.709,
    batch_size=16,
):
    """Detect faces and five landmarks with the MTCNN cascade.

    The three stages of Zhang et al. (2016), as facenet-pytorch runs them:
    an image pyramid scanned by P-Net, NMS, R-Net on 24x24 crops of the
    squared proposals, O-Net on 48x48 crops for the final score, box and
    landmarks. Images of the same size go through P-Net together; the R-Net
    and O-Net crops of all images of a batch share their forward passes.

    Parameters
    ----------
    images : list of ndarray
        uint8 RGB images of shape (H, W, 3), sizes may differ; grey
        images (H, W) are repeated over the three channels. A 4-D array
        (n, H, W, 3) is taken as a list of n images.
    weights : dict, path-like or tuple of torch.nn.Module
        The dict of :func:`fetch_mtcnn_weights`, the path of its
        safetensors file, or the ``(pnet, rnet, onet)`` of
        :func:`load_mtcnn_nets` (to skip rebuilding them per call).
    device : str or torch.device, default="cpu"
        Where the networks and images are run (``"cuda"`` for a GPU).
    min_face_size : float, default=20
        Smallest face side looked for, in pixels.
    thresholds : tuple of 3 float, default=(0.6, 0.7, 0.7)
        Face-probability thresholds of P-Net, R-Net and O-Net.
    factor : float, default=0.709
        Scale ratio between pyramid levels (about 1 / sqrt(2)).
    batch_size : int, default=16
        Images processed together: P-Net runs on the same-size images of a
        batch at once, R-Net and O-Net on all their crops (512 at a time).
        Lower it for large images on a small GPU.

    Returns
    -------
    detections : list of tuple
        One ``(boxes, scores, landmarks)`` per image, by descending score:
        ``boxes`` float32 (k, 4), x0, y0, x1, y1 in pixels; ``scores``
        float32 (k,), O-Net's face probability; ``landmarks`` float32
        (k, 5, 2), (x, y) of the left eye, right eye, nose, left mouth
        corner and right mouth corner, left and right as seen in the image
        (the "left eye" is the one with the smaller x, the subject's right
        eye in a frontal face).
    """
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype != object:
        raise TypeError("images must be a list of images; wrap a single image as [image].")
    arrays = [_as_rgb(img, i) for i, img in enumerate(images)]
    if len(thresholds) != 3:
        raise ValueError(f"thresholds must hold 3 values (P-, R-, O-Net), got {thresholds!r}.")
    if not 0 < factor < 1:
        raise ValueError(f"factor must lie strictly between 0 and 1, got {factor!r}.")
    if not min_face_size > 0:
        raise ValueError(f"min_face_size must be positive, got {min_face_size!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    device = torch.device(device)
    if isinstance(weights, (tuple, list)) and len(weights) == 3:
        nets = tuple(net.eval().to(device) for net in weights)
    else:
        nets = load_mtcnn_nets(weights, device=device)
    results = []
    with torch.inference_mode():
        for start in range(0, len(arrays), int(batch_size)):
            chunk = [
                torch.from_numpy(a).to(device) for a in arrays[start:start + int(batch_size)]
            ]
            results += _detect_chunk(chunk, nets, min_face_size, thresholds, factor)
    return results
