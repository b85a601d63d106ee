"""face-api's 68-point landmark network (FaceLandmark68Net), loading its TensorFlow.js weights."""

# The architecture is that of the face-api package (@vladmandic/face-api
# 1.7.15, MIT licence; after Vincent Muehler's face-api.js), read from its
# TypeScript sources (faceFeatureExtractor/, faceLandmarkNet/, faceProcessor/)
# and written here in plain torch: four dense blocks of separable
# convolutions, an average pool and one dense layer giving 68 (x, y) points.

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FaceLandmark68Net", "state_dict_from_tfjs"]

INPUT_SIZE = 112
# The package subtracts this mean (RGB, in [0, 255]) and divides by 255.
_MEAN_RGB = (122.782, 117.001, 104.298)
_BLOCK_CHANNELS = (32, 64, 128, 256)
N_POINTS = 68


def _same_pad(x, kernel, stride):
    """``x`` padded as TensorFlow's 'same' does: any odd extra row or column goes bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _SeparableConv(nn.Module):
    """TF's separableConv2d with 'same' padding: a 3x3 depthwise filter, then a biased 1x1 mix."""

    def __init__(self, channels_in, channels_out, stride):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, stride=stride,
                                   groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(_same_pad(x, 3, self.stride)))


class _PlainConv(nn.Module):
    """A biased 3x3 convolution with TF's 'same' padding (the first layer, on RGB)."""

    def __init__(self, channels_in, channels_out, stride):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels_in, channels_out, 3, stride=stride)

    def forward(self, x):
        return self.conv(_same_pad(x, 3, self.stride))


class _DenseBlock(nn.Module):
    """Four convolutions, each fed the ReLU of the sum of all earlier outputs; halves H and W.

    ``conv0`` (stride 2) is a plain convolution in the first block, a
    separable one in the others; ``conv1``-``conv3`` are separable.
    """

    def __init__(self, channels_in, channels_out, first):
        super().__init__()
        self.conv0 = (_PlainConv if first else _SeparableConv)(channels_in, channels_out, 2)
        self.conv1 = _SeparableConv(channels_out, channels_out, 1)
        self.conv2 = _SeparableConv(channels_out, channels_out, 1)
        self.conv3 = _SeparableConv(channels_out, channels_out, 1)

    def forward(self, x):
        # Each later conv sees the ReLU of the sum so far (conv1 sees conv0's output,
        # which is already ReLU'd); the block returns the ReLU of the sum of all four.
        total = torch.relu(self.conv0(x))
        for conv in (self.conv1, self.conv2, self.conv3):
            total = total + conv(torch.relu(total))
        return torch.relu(total)


class FaceLandmark68Net(nn.Module):
    """face-api's 68-point face landmark network (iBUG 300-W point order).

    Input: float tensor (N, 3, 112, 112), RGB in [0, 1]: a face crop
    (face-api feeds the detector's box, zero-padded to a square, centred,
    then resized). The package's normalisation is done here: each channel
    minus its mean (122.782, 117.001, 104.298) / 255, i.e.
    ``(255 * x - mean) / 255``, with no division by a standard deviation.

    Output: float tensor (N, 68, 2), the points (x, y) as fractions of the
    input's width and height, in skface's convention: the crop spans
    [0, 1] edge to edge, so the centre of the top-left pixel is at
    (0.5 / 112, 0.5 / 112); multiply by the crop's side in pixels for
    pixel coordinates with pixel centres on half-integers (as face-api
    itself does, multiplying by the canvas size). Values may fall slightly
    outside [0, 1] for points outside the crop.

    Layers (all padding TensorFlow's 'same', bottom/right first at stride 2):
    four dense blocks (32, 64, 128, 256 channels; 112 -> 56 -> 28 -> 14 -> 7),
    a 7x7 average pool, and a dense layer 256 -> 136 (x0, y0, x1, y1, ...).
    Weights: :func:`state_dict_from_tfjs` of the package's
    ``face_landmark_68_model``.
    """

    def __init__(self):
        super().__init__()
        channels_in = 3
        for k, channels in enumerate(_BLOCK_CHANNELS):
            setattr(self, f"dense{k}", _DenseBlock(channels_in, channels, first=k == 0))
            channels_in = channels
        self.fc = nn.Linear(channels_in, 2 * N_POINTS)
        self.register_buffer("mean", torch.tensor(_MEAN_RGB).view(1, 3, 1, 1) / 255,
                             persistent=False)

    def forward(self, x):
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"FaceLandmark68Net takes (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) RGB "
                             f"in [0, 1]; got shape {tuple(x.shape)}.")
        x = x - self.mean.to(x.dtype)
        for k in range(len(_BLOCK_CHANNELS)):
            x = getattr(self, f"dense{k}")(x)
        x = F.avg_pool2d(x, 7, stride=2)  # 'valid' on 7x7: one value per channel
        return self.fc(x.flatten(1)).view(-1, N_POINTS, 2)


def _conv_layout(w):
    return w.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)


def _depthwise_layout(w):
    return w.transpose(2, 3, 0, 1)  # (kh, kw, channels, 1) -> (channels, 1, kh, kw)


def _fc_layout(w):
    return w.T  # (in, out) -> (out, in)


def _as_is(w):
    return w


def _tfjs_names():
    """Each TF.js tensor name to (torch key, function from its TF layout to torch's)."""
    names = {}
    for k in range(len(_BLOCK_CHANNELS)):
        for j in range(4):
            tf, pt = f"dense{k}/conv{j}", f"dense{k}.conv{j}"
            if k == 0 and j == 0:
                names[f"{tf}/filters"] = (f"{pt}.conv.weight", _conv_layout)
                names[f"{tf}/bias"] = (f"{pt}.conv.bias", _as_is)
            else:
                names[f"{tf}/depthwise_filter"] = (f"{pt}.depthwise.weight", _depthwise_layout)
                names[f"{tf}/pointwise_filter"] = (f"{pt}.pointwise.weight", _conv_layout)
                names[f"{tf}/bias"] = (f"{pt}.pointwise.bias", _as_is)
    names["fc/weights"] = ("fc.weight", _fc_layout)
    names["fc/bias"] = ("fc.bias", _as_is)
    return names


def state_dict_from_tfjs(weights):
    """A :class:`FaceLandmark68Net` state dict from the package's TF.js weights.

    Parameters
    ----------
    weights : dict of str to ndarray
        ``face_landmark_68_model``'s tensors by their TF.js names, float32
        in TensorFlow layouts (as :func:`skface.pretrained._faceapi.faceapi_weights`
        returns them): 49 tensors, ``dense0/conv0/filters`` (3, 3, 3, 32)
        to ``fc/weights`` (256, 136) and ``fc/bias`` (136,).

    Returns
    -------
    state_dict : dict of str to Tensor
        For ``FaceLandmark68Net().load_state_dict``.

    Raises
    ------
    ValueError
        If a tensor is missing, unexpected, or not of the expected shape;
        the message names it.
    """
    names = _tfjs_names()
    missing = sorted(set(names) - set(weights))
    extra = sorted(set(weights) - set(names))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise ValueError(f"Not face-api's face_landmark_68_model weights: {'; '.join(parts)}.")
    expected = FaceLandmark68Net().state_dict()
    state = {}
    for name, (key, to_torch) in names.items():
        value = np.asarray(weights[name], dtype=np.float32)
        want = _tf_shape(name, tuple(expected[key].shape))
        if value.shape != want:
            raise ValueError(f"face_landmark_68_model tensor {name} has shape {value.shape}; "
                             f"expected {want}.")
        state[key] = torch.from_numpy(np.ascontiguousarray(to_torch(value)))
    return state


def _tf_shape(name, torch_shape):
    """The TF.js shape that converts to ``torch_shape`` (for error messages)."""
    if name.endswith("depthwise_filter"):
        c, _, kh, kw = torch_shape
        return kh, kw, c, 1
    if name.endswith(("filters", "pointwise_filter")):
        out, in_, kh, kw = torch_shape
        return kh, kw, in_, out
    if name == "fc/weights":
        return tuple(reversed(torch_shape))
    return tuple(torch_shape)
