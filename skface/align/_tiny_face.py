"""The ``tiny_face`` detector backend: face-api's Tiny Face Detector, as the package detects with it."""

import functools

import numpy as np

from ._backends import DetectorBackend

__all__ = ["TinyFaceBackend", "detect_tiny_face", "load_tiny_face_net"]

_WEIGHTS = "tiny_face_detector_model"


class TinyFaceBackend(DetectorBackend):
    """face-api 1.7.15's Tiny Face Detector (MIT licence): boxes and scores, no landmarks.

    Each image is padded to a square (zeros at the bottom or right), resized
    to ``input_size`` (TensorFlow's bilinear resize, as the package), run
    through :class:`skface.nn.faceapi_tiny_detector.TinyFaceDetectorNet`,
    decoded, thresholded and NMS-ed; the boxes are mapped back to the
    image's pixels. The weights come once from the face-api npm tarball
    (``skface.pretrained._faceapi.faceapi_weights``, pinned by sha256).

    The network gives no landmarks (``landmarks = False``), so
    :class:`FaceAligner` aligns on its box. ``FaceDetector``'s
    ``thresholds`` (MTCNN's per-stage probabilities) are ignored: this
    backend's own ``score_threshold`` applies.

    Parameters
    ----------
    input_size : int, default=416
        Side of the network's square input, a multiple of 32 (the package's
        default 416; smaller is faster and misses small faces).
    score_threshold : float, default=0.5
        Boxes scoring at most this are dropped (the package's default).
    iou_threshold : float, default=0.4
        NMS drops a box overlapping a better one by more than this IoU (the
        package's).
    batch_size : int, default=16
        Images per forward pass.
    """

    landmarks = False

    def __init__(self, input_size=416, score_threshold=0.5, iou_threshold=0.4, batch_size=16):
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.batch_size = batch_size

    def detect(self, images, *, min_face_size, thresholds=None, device="cpu"):
        from ..parallel import fit_threads

        # The thread rule of fits (skface.parallel.fit_threads) for the network too.
        with fit_threads():
            return detect_tiny_face(
                images, net=_cached_net(str(device)), device=device, input_size=self.input_size,
                score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                min_face_size=min_face_size, batch_size=self.batch_size)


def load_tiny_face_net(weights=None, *, device="cpu"):
    """The Tiny Face Detector network with face-api's weights, in eval mode.

    Parameters
    ----------
    weights : dict of str to ndarray, default=None
        ``tiny_face_detector_model``'s TensorFlow.js tensors; None fetches
        them (downloaded once, see ``faceapi_weights``).
    device : str or torch.device, default="cpu"

    Returns
    -------
    net : TinyFaceDetectorNet
    """
    from ..nn.faceapi_tiny_detector import TinyFaceDetectorNet, state_dict_from_tfjs

    if weights is None:
        from ..datasets import DownloadError
        from ..pretrained._faceapi import faceapi_weights

        try:
            weights = faceapi_weights(_WEIGHTS)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc} FaceDetector('cascade') (scikit-image's bundled cascade) needs no download."
            ) from exc
    net = TinyFaceDetectorNet()
    net.load_state_dict(state_dict_from_tfjs(weights))
    return net.eval().to(device)


@functools.lru_cache(maxsize=4)
def _cached_net(device):
    """The network on ``device``, read from the cache once per process."""
    return load_tiny_face_net(device=device)


def _js_round(x):
    # JavaScript's Math.round (halves up), which the package sizes the resized image with.
    return int(np.floor(x + 0.5))


def _resize_bilinear(x, size):
    """TensorFlow's bilinear resize of (n, H, W, C) to (n, size, size, C), no half-pixel centres.

    Output pixel i samples input position ``i * H / size`` (align_corners and
    half_pixel_centers both False, the package's call), unlike torch's
    ``interpolate``, which samples ``(i + 0.5) * H / size - 0.5``.
    """
    import torch

    def taps(n_in):
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        lo = pos.floor()
        frac = (pos - lo).to(x.dtype)
        lo = lo.long()
        return lo, (lo + 1).clamp(max=n_in - 1), frac

    r0, r1, fr = taps(x.shape[1])
    c0, c1, fc = taps(x.shape[2])
    fc = fc.view(1, 1, -1, 1)
    upper, lower = x.index_select(1, r0), x.index_select(1, r1)
    left, right = upper.index_select(2, c0), upper.index_select(2, c1)
    top = left + (right - left) * fc
    left, right = lower.index_select(2, c0), lower.index_select(2, c1)
    bottom = left + (right - left) * fc
    return top + (bottom - top) * fr.view(1, -1, 1, 1)


def _square_input(image, size, device):
    """One (H, W, 3) uint8 image as the network's (3, size, size) input in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(image).to(device=device, dtype=torch.float32)
    h, w = x.shape[:2]
    side = max(h, w)
    # The package pads the short side with zeros at the bottom or right, then resizes.
    x = F.pad(x, (0, 0, 0, side - w, 0, side - h))[None]
    if side != size:
        x = _resize_bilinear(x, size)
    return x[0].permute(2, 0, 1) / 255


def _check_image(image, i):
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"images[{i}] has dtype {arr.dtype} and shape {arr.shape}; the "
                         "tiny_face detector needs (H, W, 3) uint8 RGB images.")
    return np.ascontiguousarray(arr) if arr.flags.writeable else arr.copy()


def detect_tiny_face(images, *, net, device="cpu", input_size=416, score_threshold=0.5,
                     iou_threshold=0.4, min_face_size=0, batch_size=16):
    """Faces by the Tiny Face Detector, as face-api's ``TinyFaceDetector.detect``.

    Parameters
    ----------
    images : list of ndarray of shape (H_i, W_i, 3), uint8
    net : TinyFaceDetectorNet
        See :func:`load_tiny_face_net`.
    device : str or torch.device, default="cpu"
    input_size : int, default=416
        A multiple of 32.
    score_threshold : float, default=0.5
        Boxes with ``sigmoid(score) <= score_threshold`` are dropped.
    iou_threshold : float, default=0.4
        NMS threshold (IoU).
    min_face_size : float, default=0
        Boxes whose longer side is shorter than this (pixels) are dropped,
        after NMS. The package has no such filter.
    batch_size : int, default=16

    Returns
    -------
    detections : list of tuple (boxes, scores, None)
        One per image, by descending score: ``boxes`` float32 (k, 4) x0, y0,
        x1, y1 in the image's pixels (not clipped to the image, as the
        package's), ``scores`` float32 (k,); no landmarks.
    """
    import torch

    from ..nn.faceapi_tiny_detector import decode_grid
    from ._mtcnn import _batched_nms

    if isinstance(input_size, bool) or int(input_size) != input_size or input_size <= 0 \
            or input_size % 32:
        raise ValueError(f"input_size must be a positive multiple of 32, got {input_size!r}.")
    if not 0 < score_threshold < 1:
        raise ValueError(f"score_threshold must lie strictly between 0 and 1, got "
                         f"{score_threshold!r}.")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold!r}.")
    arrays = [_check_image(img, i) for i, img in enumerate(images)]
    size = int(input_size)
    device = torch.device(device)
    results = []
    with torch.inference_mode():
        for start in range(0, len(arrays), int(batch_size)):
            chunk = arrays[start:start + int(batch_size)]
            x = torch.stack([_square_input(a, size, device) for a in chunk])
            boxes, scores = decode_grid(net(x).float())
            # The package decodes relative to the resized image inside the square:
            # its width round(W * S / L) of S, L = max(H, W).
            scale = []
            for a in chunk:
                h, w = a.shape[:2]
                side = max(h, w)
                rw, rh = _js_round(w * size / side), _js_round(h * size / side)
                scale.append([size / rw * w, size / rh * h] * 2)
            scale = torch.tensor(scale, dtype=boxes.dtype, device=device)
            boxes = boxes * scale.view(-1, 1, 1, 1, 4)
            n = len(chunk)
            boxes, scores = boxes.reshape(n, -1, 4), scores.reshape(n, -1)
            image_idx = torch.arange(n, device=device)[:, None].expand_as(scores)
            hit = scores > score_threshold
            boxes, scores, image_idx = boxes[hit], scores[hit], image_idx[hit]
            keep = _batched_nms(boxes, scores, image_idx, iou_threshold)
            boxes, scores, image_idx = boxes[keep], scores[keep], image_idx[keep]
            sides = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            big = sides >= min_face_size
            boxes, scores, image_idx = (boxes[big].cpu().numpy(), scores[big].cpu().numpy(),
                                        image_idx[big].cpu().numpy())
            for i in range(n):
                mine = image_idx == i
                results.append((boxes[mine].astype(np.float32), scores[mine].astype(np.float32),
                                None))
    return results
