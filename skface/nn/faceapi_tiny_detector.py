"""face-api's Tiny Face Detector (a separable-conv Tiny YOLO v2) in plain torch, with its TensorFlow.js weights."""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BOX_ANCHORS",
    "MEAN_RGB",
    "TinyFaceDetectorNet",
    "decode_grid",
    "state_dict_from_tfjs",
]

# The package's five box priors (width, height) in grid cells, and the RGB mean (0-255)
# its input is centred on (src/tinyFaceDetector/const.ts).
BOX_ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061),
               (4.266906, 5.178857), (9.041765, 10.66308))
MEAN_RGB = (117.001, 114.697, 97.404)
_CHANNELS = (16, 32, 64, 128, 256, 512)
_LEAK = 0.1
_STRIDE = 32


def _leaky(x):
    return F.leaky_relu(x, _LEAK)


def _max_pool_same(x, stride):
    """TF's 2x2 'same' max-pool: the missing row/column is padded at the bottom/right only."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + 2 - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + 2 - w, 0)
    # -inf: TF's pooling ignores the padded cells.
    x = F.pad(x, (0, pad_w, 0, pad_h), value=float("-inf"))
    return F.max_pool2d(x, 2, stride)


class _SeparableConv(nn.Module):
    """3x3 depthwise then 1x1 pointwise convolution with a bias, padded by 1 on every side."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return _leaky(self.pointwise(self.depthwise(F.pad(x, (1, 1, 1, 1)))))


class TinyFaceDetectorNet(nn.Module):
    """The Tiny Face Detector of face-api: raw Tiny YOLO v2 grid of a square image.

    A 3x3 'valid' convolution (16 channels), then five 3x3 depthwise-separable
    convolutions (32 to 512 channels), each block followed by leaky ReLU
    (slope 0.1) and a 2x2 max-pool (stride 2 five times, then stride 1), and a
    1x1 convolution to 5 anchors x (x, y, w, h, score). Normalisation inside:
    ``(255 * x - MEAN_RGB) / 255``, the package's mean subtraction and scaling
    of its 0-255 input.

    Input
        (n, 3, S, S) float RGB in [0, 1], S a multiple of 32 (the package
        default is 416); the package pads an image to a square (zeros at the
        bottom or right) and resizes it to S before this.
    Output
        (n, S/32, S/32, 25) float: the raw grid in the package's (TensorFlow)
        layout, channel ``5 * anchor + k`` with k = tx, ty, tw, th, score
        logit (see :func:`decode_grid`).
    """

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, _CHANNELS[0], 3)
        self.separable = nn.ModuleList(
            _SeparableConv(a, b) for a, b in zip(_CHANNELS[:-1], _CHANNELS[1:]))
        self.conv8 = nn.Conv2d(_CHANNELS[-1], 5 * len(BOX_ANCHORS), 1)
        self.register_buffer("mean_rgb", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        """The raw grid.

        Parameters
        ----------
        x : torch.Tensor of shape (n, 3, S, S)
            RGB in [0, 1], S a multiple of 32.

        Returns
        -------
        grid : torch.Tensor of shape (n, S/32, S/32, 25)
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[2] % _STRIDE:
            raise ValueError(f"TinyFaceDetectorNet takes (n, 3, S, S) images with S a multiple of "
                             f"32, got shape {tuple(x.shape)}.")
        x = (x * 255 - self.mean_rgb.to(x.dtype)) / 255
        x = _max_pool_same(_leaky(self.conv0(x)), 2)
        for i, layer in enumerate(self.separable):
            # Four halvings after conv1-conv4 (with conv0's, S/32); conv5's pool keeps its size.
            x = _max_pool_same(layer(x), 2 if i < len(self.separable) - 1 else 1)
        return self.conv8(x).permute(0, 2, 3, 1)


def decode_grid(grid, anchors=BOX_ANCHORS):
    """Boxes and scores of the raw grid, relative to the network's square input.

    Parameters
    ----------
    grid : torch.Tensor of shape (n, C, C, 5 * A)
        :class:`TinyFaceDetectorNet`'s output.
    anchors : sequence of A (width, height) pairs, in grid cells

    Returns
    -------
    boxes : torch.Tensor of shape (n, C, C, A, 4)
        x0, y0, x1, y1 as fractions of the input side: the centre is
        ``(cell + sigmoid(t)) / C``, the size ``exp(t) * anchor / C``.
    scores : torch.Tensor of shape (n, C, C, A)
        ``sigmoid`` of the score logit.
    """
    n, rows, cols, _ = grid.shape
    anchors = torch.as_tensor(anchors, dtype=grid.dtype, device=grid.device)
    t = grid.reshape(n, rows, cols, len(anchors), 5)
    col = torch.arange(cols, dtype=grid.dtype, device=grid.device).view(1, 1, cols, 1)
    row = torch.arange(rows, dtype=grid.dtype, device=grid.device).view(1, rows, 1, 1)
    cx = (col + torch.sigmoid(t[..., 0])) / cols
    cy = (row + torch.sigmoid(t[..., 1])) / rows
    w = torch.exp(t[..., 2]) * anchors[:, 0] / cols
    h = torch.exp(t[..., 3]) * anchors[:, 1] / rows
    x0, y0 = cx - w / 2, cy - h / 2
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=-1), torch.sigmoid(t[..., 4])


def _tfjs_names():
    """TensorFlow.js name -> (state-dict name, how to permute the TF layout)."""
    names = {"conv0/filters": ("conv0.weight", (3, 2, 0, 1)), "conv0/bias": ("conv0.bias", None)}
    for i in range(len(_CHANNELS) - 1):
        # TF depthwise (kh, kw, in, 1) -> torch grouped (in, 1, kh, kw).
        names[f"conv{i + 1}/depthwise_filter"] = (f"separable.{i}.depthwise.weight", (2, 3, 0, 1))
        names[f"conv{i + 1}/pointwise_filter"] = (f"separable.{i}.pointwise.weight", (3, 2, 0, 1))
        names[f"conv{i + 1}/bias"] = (f"separable.{i}.pointwise.bias", None)
    names["conv8/filters"] = ("conv8.weight", (3, 2, 0, 1))
    names["conv8/bias"] = ("conv8.bias", None)
    return names


def state_dict_from_tfjs(weights):
    """A :class:`TinyFaceDetectorNet` state dict from the package's TensorFlow.js tensors.

    Parameters
    ----------
    weights : dict of str to ndarray
        ``tiny_face_detector_model``'s tensors by their tfjs names, in TF
        layouts (``skface.pretrained._faceapi.faceapi_weights``).

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        float32, for ``TinyFaceDetectorNet().load_state_dict``.

    Raises
    ------
    ValueError
        If a tensor is missing, unexpected or of the wrong shape.
    """
    names = _tfjs_names()
    missing = sorted(set(names) - set(weights))
    extra = sorted(set(weights) - set(names))
    if missing or extra:
        raise ValueError(
            "These are not tiny_face_detector_model's weights: "
            + "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "") if part) + ".")
    expected = {k: v.shape for k, v in TinyFaceDetectorNet().state_dict().items()}
    state = {}
    for tf_name, (name, perm) in names.items():
        tensor = torch.as_tensor(weights[tf_name], dtype=torch.float32)
        if perm is not None:
            if tensor.ndim != 4:
                raise ValueError(f"tiny_face_detector_model tensor {tf_name!r} has shape "
                                 f"{tuple(tensor.shape)}; a 4-d TF filter was expected.")
            tensor = tensor.permute(*perm)
        if tensor.shape != expected[name]:
            raise ValueError(f"tiny_face_detector_model tensor {tf_name!r} has shape "
                             f"{tuple(weights[tf_name].shape)}, which does not fit {name} "
                             f"{tuple(expected[name])}.")
        state[name] = tensor.contiguous()
    return state
