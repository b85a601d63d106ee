"""face-api's face recognition ResNet (dlib's ResNet-29: 150x150 RGB in, 128-d descriptors out)."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FaceRecognitionResNet", "state_dict_from_tfjs", "FACEAPI_MEAN_RGB"]

# The per-channel mean face-api subtracts from the 0-255 pixels before dividing by 255.
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)

# (name, in channels, out channels, downsamples) of every residual block, in order.
_BLOCKS = (
    ("conv32_1", 32, 32, False),
    ("conv32_2", 32, 32, False),
    ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True),
    ("conv64_1", 64, 64, False),
    ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True),
    ("conv128_1", 128, 128, False),
    ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True),
    ("conv256_1", 256, 256, False),
    ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)


class _ScaledConv(nn.Module):
    """Convolution with bias, then dlib's per-channel affine "scale" layer (its frozen batch norm).

    A 3x3 convolution at stride 1 is TF 'same' (symmetric padding 1); a
    downsampling one is TF 'valid' at stride 2, which is torch's floor
    arithmetic with no padding.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    stride : {1, 2}
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        padding = kernel_size // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.scale_weight = nn.Parameter(torch.ones(out_channels))
        self.scale_bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x):
        out = self.conv(x)
        return out * self.scale_weight[:, None, None] + self.scale_bias[:, None, None]


class _Residual(nn.Module):
    """Two 3x3 scaled convolutions with an identity (or pooled, zero-padded) shortcut.

    The downsampling form follows dlib as face-api runs it: the first
    convolution is 'valid' at stride 2, the shortcut a 2x2 average pool
    ('valid'), its missing channels zeros appended after the pooled ones;
    where the convolved map comes out one row and column smaller than the
    pooled one (an even input size), it is zero-padded at the bottom and
    right to match.

    Parameters
    ----------
    in_channels, out_channels : int
    down : bool
    """

    def __init__(self, in_channels, out_channels, down):
        super().__init__()
        self.down = down
        self.conv1 = _ScaledConv(in_channels, out_channels, 3, 2 if down else 1)
        self.conv2 = _ScaledConv(out_channels, out_channels, 3, 1)

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            shortcut = F.avg_pool2d(x, 2, 2)
            if shortcut.shape[-2:] != out.shape[-2:]:
                # face-api appends exactly one zero row and one zero column here.
                out = F.pad(out, (0, 1, 0, 1))
            extra = out.shape[1] - shortcut.shape[1]
            if extra:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, extra))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class FaceRecognitionResNet(nn.Module):
    """dlib's face recognition ResNet-29, laid out as face-api runs it.

    A 7x7 stride-2 'valid' scaled convolution (32 channels), a 3x3 stride-2
    'valid' max pool, 14 residual blocks (3 at 32 channels, 4 at 64, 3 at
    128, 4 at 256; the first of each size and the last downsample), a
    global average pool and a bias-free 256 -> 128 linear map. A 150x150
    input goes 72, 35, 17, 8, 4 then 2 pixels wide.

    Parameters
    ----------
    in_channels : int, default=3
        Must be 3 (RGB).
    embedding_dim : int, default=128
        Must be 128, the descriptor size of the pretrained weights.

    Notes
    -----
    The input is ``(n, 3, 150, 150)`` float RGB scaled to [0, 1] with
    ``FACEAPI_MEAN_RGB / 255`` already subtracted per channel: face-api's
    own preprocessing ``(x - mean) / 255`` on 0-255 pixels. The output is
    ``(n, 128)``, unnormalised (face-api compares descriptors by Euclidean
    distance, threshold about 0.6). Load face-api's weights with
    ``model.load_state_dict(state_dict_from_tfjs(weights))``.
    """

    def __init__(self, in_channels=3, embedding_dim=128):
        super().__init__()
        if in_channels != 3:
            raise ValueError(
                f"FaceRecognitionResNet takes RGB images (in_channels=3); got in_channels={in_channels}."
            )
        if embedding_dim != 128:
            raise ValueError(
                "FaceRecognitionResNet gives the pretrained network's 128-d descriptors "
                f"(embedding_dim=128); got embedding_dim={embedding_dim}."
            )
        self.conv32_down = _ScaledConv(3, 32, 7, 2)
        self.blocks = nn.ModuleDict(
            {name: _Residual(cin, cout, down) for name, cin, cout, down in _BLOCKS}
        )
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, x):
        """Descriptors of a batch of preprocessed faces.

        Parameters
        ----------
        x : Tensor of shape (n, 3, 150, 150)

        Returns
        -------
        descriptors : Tensor of shape (n, 128)
        """
        out = F.relu(self.conv32_down(x))
        out = F.max_pool2d(out, 3, 2)
        for block in self.blocks.values():
            out = block(out)
        return self.fc(out.mean(dim=(2, 3)))


def _tfjs_names():
    """``{torch state_dict key: (tfjs name, kind)}`` of every parameter, kind in filters/vector/fc."""
    names = {}

    def scaled_conv(torch_prefix, tf_prefix):
        names[f"{torch_prefix}.conv.weight"] = (f"{tf_prefix}/conv/filters", "filters")
        names[f"{torch_prefix}.conv.bias"] = (f"{tf_prefix}/conv/bias", "vector")
        names[f"{torch_prefix}.scale_weight"] = (f"{tf_prefix}/scale/weights", "vector")
        names[f"{torch_prefix}.scale_bias"] = (f"{tf_prefix}/scale/biases", "vector")

    scaled_conv("conv32_down", "conv32_down")
    for name, *_ in _BLOCKS:
        scaled_conv(f"blocks.{name}.conv1", f"{name}/conv1")
        scaled_conv(f"blocks.{name}.conv2", f"{name}/conv2")
    names["fc.weight"] = ("fc", "fc")
    return names


def state_dict_from_tfjs(weights):
    """A :class:`FaceRecognitionResNet` state_dict from face-api's TensorFlow.js weights.

    Parameters
    ----------
    weights : mapping of str to array-like
        face-api's tensors by their tfjs names, in TF layouts (as
        ``skface.pretrained._tfjs.read_weights`` or ``faceapi_weights``
        give them): filters ``(kh, kw, in, out)``, vectors ``(out,)``,
        ``fc`` ``(256, 128)``.

    Returns
    -------
    state_dict : dict of str to Tensor
        Float32, torch layouts: filters ``(out, in, kh, kw)``, ``fc.weight``
        ``(128, 256)``.

    Raises
    ------
    ValueError
        Naming the first missing, unexpected or misshapen tensor.
    """
    reference = FaceRecognitionResNet().state_dict()
    names = _tfjs_names()
    expected = {tf_name for tf_name, _ in names.values()}
    extra = sorted(set(weights) - expected)
    if extra:
        raise ValueError(
            f"unexpected tensor {extra[0]!r} in the face recognition weights "
            f"({len(extra)} unexpected in all); is this another face-api network?"
        )
    state = {}
    for key, (tf_name, kind) in names.items():
        if tf_name not in weights:
            raise ValueError(f"the face recognition weights lack the tensor {tf_name!r}.")
        value = torch.as_tensor(weights[tf_name], dtype=torch.float32)
        target = tuple(reference[key].shape)
        if kind == "filters":
            # TF (kh, kw, in, out) -> torch (out, in, kh, kw).
            layout = (target[2], target[3], target[1], target[0])
            value = value.permute(3, 2, 0, 1) if tuple(value.shape) == layout else None
        elif kind == "fc":
            # TF's matMul(x, fc) with fc (in, out); torch's Linear keeps (out, in).
            layout = (target[1], target[0])
            value = value.t() if tuple(value.shape) == layout else None
        else:
            layout = target
            value = value if tuple(value.shape) == layout else None
        if value is None:
            raise ValueError(
                f"tensor {tf_name!r} has shape {tuple(torch.as_tensor(weights[tf_name]).shape)}; "
                f"expected {layout}."
            )
        state[key] = value.contiguous()
    return state
