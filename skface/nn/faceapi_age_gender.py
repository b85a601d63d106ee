"""face-api's age and gender network (a TinyXception trunk and two dense heads) in plain torch."""

# The architecture is read from @vladmandic/face-api 1.7.15 (MIT licence):
# src/xception/TinyXception.ts (the trunk, built with 2 middle blocks by
# src/ageGenderNet/AgeGenderNet.ts) and src/ageGenderNet/AgeGenderNet.ts (the
# pooling and the heads). Its TensorFlow.js weights load through
# :func:`state_dict_from_tfjs`; the module names mirror the tfjs tensor names.

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AgeGenderNet", "FACEAPI_MEAN_RGB", "GENDER_COLUMNS", "state_dict_from_tfjs"]

#: The per-channel mean (RGB, on the 0-255 scale) that TinyXception subtracts
#: before dividing by 255.
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)

#: What each column of the gender output is: face-api's ``predictAgeAndGender``
#: reads column 0 of the softmax as the probability of "male" (UTKFace's
#: gender 0 is also male, 1 female).
GENDER_COLUMNS = ("male", "female")

_INPUT_SIZE = 112


def _same_padding(size, kernel, stride):
    # TF 'same': ceil(size / stride) outputs; the total padding is split with
    # the odd pixel after (bottom/right), unlike torch's symmetric padding.
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x, kernel, stride, value=0.0):
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class _SameConv2d(nn.Conv2d):
    """A ``Conv2d`` with TensorFlow's 'same' padding (explicit, asymmetric at stride 2)."""

    def forward(self, x):
        x = _pad_same(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class _SeparableConv(nn.Module):
    """TF ``separableConv2d`` 'same', stride 1: a 3x3 depthwise filter, a 1x1 pointwise one, a bias."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.depthwise = _SameConv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class _ReductionBlock(nn.Module):
    """Two separable convs, a 3x3 stride-2 'same' max pool, plus a 1x1 stride-2 shortcut; halves H and W."""

    def __init__(self, in_channels, out_channels, activate_input=True):
        super().__init__()
        self.activate_input = activate_input
        self.separable_conv0 = _SeparableConv(in_channels, out_channels)
        self.separable_conv1 = _SeparableConv(out_channels, out_channels)
        self.expansion_conv = _SameConv2d(in_channels, out_channels, 1, stride=2)

    def forward(self, x):
        out = F.relu(x) if self.activate_input else x
        out = self.separable_conv1(F.relu(self.separable_conv0(out)))
        # TF's max pool ignores the 'same' padding: pad with -inf, not 0.
        out = F.max_pool2d(_pad_same(out, 3, 2, value=float("-inf")), 3, 2)
        # The shortcut sees the block's input before its ReLU.
        return out + self.expansion_conv(x)


class _MainBlock(nn.Module):
    """Three ReLU + separable conv steps with an identity shortcut; keeps the shape."""

    def __init__(self, channels):
        super().__init__()
        self.separable_conv0 = _SeparableConv(channels, channels)
        self.separable_conv1 = _SeparableConv(channels, channels)
        self.separable_conv2 = _SeparableConv(channels, channels)

    def forward(self, x):
        out = self.separable_conv0(F.relu(x))
        out = self.separable_conv1(F.relu(out))
        out = self.separable_conv2(F.relu(out))
        return out + x


class AgeGenderNet(nn.Module):
    """face-api's age regression and gender classifier on 112x112 faces.

    A TinyXception trunk (a 3x3 stride-2 conv to 32 channels, reduction
    blocks to 64 and 128, two main blocks, a reduction block to 256, a
    separable conv to 512, each with TF 'same' padding) gives a 512 x 7 x 7
    map; a 7x7 average pool makes it a 512-d vector, and two dense layers give
    the age and the two gender logits.

    Input: float tensor (N, 3, 112, 112), RGB in [0, 1]. The package's own
    normalisation happens inside: ``(255 x - FACEAPI_MEAN_RGB) / 255``.
    Face-api resizes any face to 112x112 (zero-padded to a square, centred,
    then bilinear); this module takes the 112x112 face as it is.

    Output: ``(age, gender_logits)``: ``age`` of shape (N,), in years (the raw
    regression, not clipped), and ``gender_logits`` of shape (N, 2), columns in
    the order of :data:`GENDER_COLUMNS`: 0 = male, 1 = female. Face-api's
    gender probabilities are ``softmax(gender_logits, dim=1)``.
    """

    def __init__(self):
        super().__init__()
        self.entry_flow = nn.ModuleDict({
            "conv_in": _SameConv2d(3, 32, 3, stride=2),
            "reduction_block_0": _ReductionBlock(32, 64, activate_input=False),
            "reduction_block_1": _ReductionBlock(64, 128),
        })
        self.middle_flow = nn.ModuleDict({f"main_block_{i}": _MainBlock(128) for i in range(2)})
        self.exit_flow = nn.ModuleDict({
            "reduction_block": _ReductionBlock(128, 256),
            "separable_conv": _SeparableConv(256, 512),
        })
        self.fc = nn.ModuleDict({"age": nn.Linear(512, 1), "gender": nn.Linear(512, 2)})
        self.register_buffer("mean", torch.tensor(FACEAPI_MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def features(self, x):
        """The 512-d pooled trunk output that both heads read.

        Parameters
        ----------
        x : Tensor of shape (N, 3, 112, 112)
            RGB in [0, 1].

        Returns
        -------
        features : Tensor of shape (N, 512)
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, _INPUT_SIZE, _INPUT_SIZE):
            raise ValueError(f"AgeGenderNet takes (N, 3, {_INPUT_SIZE}, {_INPUT_SIZE}) "
                             f"RGB faces, got shape {tuple(x.shape)}.")
        # Face-api works on the 0-255 scale: subtract its mean there, then / 255.
        out = (x * 255.0 - self.mean) / 255.0
        out = F.relu(self.entry_flow["conv_in"](out))
        out = self.entry_flow["reduction_block_0"](out)
        out = self.entry_flow["reduction_block_1"](out)
        for block in self.middle_flow.values():
            out = block(out)
        out = self.exit_flow["reduction_block"](out)
        out = F.relu(self.exit_flow["separable_conv"](out))
        # TF avgPool 7x7 stride 2 'valid': on the 7x7 map, the mean over it.
        return F.avg_pool2d(out, 7, 2).flatten(1)

    def forward(self, x):
        """Age and gender logits of 112x112 faces (see the class docstring)."""
        pooled = self.features(x)
        return self.fc["age"](pooled).squeeze(1), self.fc["gender"](pooled)


def _tfjs_layout(model):
    # For each torch state_dict key: its tfjs name and the axes that turn the
    # TF array into the torch one.
    layout = {}
    for key in model.state_dict():
        *path, leaf = key.split(".")
        if path[-1] in ("depthwise", "pointwise"):
            kind, path = path[-1], path[:-1]
        else:
            kind = "fc" if path[0] == "fc" else "conv"
        prefix = "/".join(path)
        if leaf == "bias":
            layout[key] = (f"{prefix}/bias", (0,))
        elif kind == "depthwise":  # (kh, kw, in, 1) -> (in, 1, kh, kw)
            layout[key] = (f"{prefix}/depthwise_filter", (2, 3, 0, 1))
        elif kind == "pointwise":  # (1, 1, in, out) -> (out, in, 1, 1)
            layout[key] = (f"{prefix}/pointwise_filter", (3, 2, 0, 1))
        elif kind == "fc":  # (in, out) -> (out, in)
            layout[key] = (f"{prefix}/weights", (1, 0))
        else:  # (kh, kw, in, out) -> (out, in, kh, kw)
            layout[key] = (f"{prefix}/filters", (3, 2, 0, 1))
    return layout


def state_dict_from_tfjs(weights):
    """The :class:`AgeGenderNet` state_dict of face-api's ``age_gender_model`` tensors.

    Parameters
    ----------
    weights : dict of str to ndarray
        The tfjs tensors by name, in TensorFlow layouts, as
        ``skface.pretrained._tfjs.read_weights`` gives them: conv filters
        (kh, kw, in, out), depthwise filters (kh, kw, in, 1), pointwise
        filters (1, 1, in, out), dense weights (in, out).

    Returns
    -------
    state_dict : dict of str to Tensor
        float32 tensors in torch layouts, for ``AgeGenderNet().load_state_dict``.

    Raises
    ------
    ValueError
        Naming the first tfjs tensor that is missing, unexpected or of the
        wrong shape.
    """
    model = AgeGenderNet()
    expected = model.state_dict()
    layout = _tfjs_layout(model)
    names = {name for name, _ in layout.values()}
    extra = sorted(set(weights) - names)
    if extra:
        raise ValueError(f"age_gender_model: unexpected tensor {extra[0]!r} "
                         f"({len(extra)} unexpected in all).")
    missing = sorted(names - set(weights))
    if missing:
        raise ValueError(f"age_gender_model: tensor {missing[0]!r} is missing "
                         f"({len(missing)} missing in all).")
    state = {}
    for key, (name, axes) in layout.items():
        array = np.asarray(weights[name], dtype=np.float32)
        torch_shape = tuple(expected[key].shape)
        tf_shape = [0] * len(axes)
        for i, axis in enumerate(axes):
            tf_shape[axis] = torch_shape[i]
        if array.shape != tuple(tf_shape):
            raise ValueError(f"age_gender_model: tensor {name!r} has shape {array.shape}, "
                             f"expected {tuple(tf_shape)}.")
        state[key] = torch.from_numpy(np.ascontiguousarray(array.transpose(axes)))
    return state
