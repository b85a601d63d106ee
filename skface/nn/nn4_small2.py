"""OpenFace's NN4.Small2 face-embedding network (96x96 RGB in, 128-d unit vectors out)."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NN4Small2", "Inception", "L2Pool2d"]


def _conv_bn(in_channels, out_channels, kernel_size, stride=1):
    """Convolution (with bias, as in OpenFace's Torch model), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class L2Pool2d(nn.Module):
    """L2 pooling: the square root of the sum of squares over each window.

    Parameters
    ----------
    kernel_size : int, default=3
    stride : int, default=1
    padding : int, default=1
        Zero padding, which adds nothing to the sums.
    """

    def __init__(self, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        window = self.kernel_size**2
        mean_sq = F.avg_pool2d(
            x * x, self.kernel_size, self.stride, self.padding, count_include_pad=True
        )
        # The clamp keeps the gradient of sqrt finite where a window is all zeros
        # (common after ReLU).
        return (mean_sq * window).clamp_min(1e-12).sqrt()


class Inception(nn.Module):
    """GoogLeNet-style Inception block as OpenFace's ``nn.Inception`` builds it.

    Branches, concatenated along channels in this order: for each kernel
    size, a 1x1 reduction then the kxk convolution; the pooling branch
    (optionally followed by a 1x1 projection); an optional plain 1x1 branch.
    Every convolution is followed by batch norm and ReLU.

    Parameters
    ----------
    in_channels : int
    kernel_sizes : sequence of int
        E.g. ``(3, 5)``.
    out_channels : sequence of int
        Output channels of each kxk convolution.
    reduce_channels : sequence of int
        1x1 reduction before each kxk convolution.
    pool : {"max", "l2"}
        Pooling of the pooling branch (3x3).
    pool_proj : int or None
        1x1 projection after pooling; None passes the pooled input through.
    one_by_one : int or None
        Channels of the plain 1x1 branch; None for no such branch.
    stride : int, default=1
        Stride of the kxk convolutions and the pooling; 2 halves the size.

    Notes
    -----
    With stride 1 the pooling is 3x3, stride 1, padding 1, so every branch
    keeps the input size (GoogLeNet and FaceNet). OpenFace's Torch model
    pools with stride 2 (max) or 3 (L2) there and lets ``DepthConcat``
    zero-pad the small pooled maps back to size, an artefact of its Torch
    port; the parameter count is the same either way.
    """

    def __init__(
        self,
        in_channels,
        kernel_sizes,
        out_channels,
        reduce_channels,
        *,
        pool,
        pool_proj=None,
        one_by_one=None,
        stride=1,
    ):
        super().__init__()
        branches = []
        for k, out, red in zip(kernel_sizes, out_channels, reduce_channels):
            branches.append(nn.Sequential(_conv_bn(in_channels, red, 1), _conv_bn(red, out, k, stride)))
        if pool == "max":
            pooling = nn.MaxPool2d(3, stride, padding=1)
        elif pool == "l2":
            pooling = L2Pool2d(3, stride, padding=1)
        else:
            raise ValueError(f"pool must be 'max' or 'l2', got {pool!r}.")
        pool_branch = [pooling]
        if pool_proj is not None:
            pool_branch.append(_conv_bn(in_channels, pool_proj, 1))
        branches.append(nn.Sequential(*pool_branch))
        if one_by_one is not None:
            branches.append(_conv_bn(in_channels, one_by_one, 1))
        self.branches = nn.ModuleList(branches)
        self.out_channels = (
            sum(out_channels)
            + (in_channels if pool_proj is None else pool_proj)
            + (one_by_one or 0)
        )

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class NN4Small2(nn.Module):
    """OpenFace NN4.Small2: FaceNet's NN4 without 4b-4d and with smaller 5a/5b.

    Stem (7x7/2 conv, max pool, LRN, 1x1 and 3x3 convs, LRN, max pool), then
    Inception blocks 3a, 3b, 3c, 4a, 4e, 5a, 5b, global average pooling, a
    linear layer to ``embedding_dim`` and L2 normalisation (Amos et al.,
    2016; ``models/openface/nn4.small2.def.lua``). With 3 input channels and
    ``embedding_dim=128`` it has 3,733,968 parameters, the count OpenFace
    gives.

    Parameters
    ----------
    in_channels : int, default=3
        3 for RGB (OpenFace's input), 1 for grey images.
    embedding_dim : int, default=128
        Size of the embedding.

    Notes
    -----
    Designed for 96x96 input, where the last block works on 3x3 maps. The
    final pooling is adaptive, so other sizes (>= 32 px) also work, e.g. a
    reduced 64x64 input for CPU runs.

    Examples
    --------
    >>> import torch
    >>> net = NN4Small2().eval()
    >>> net(torch.rand(2, 3, 96, 96)).shape
    torch.Size([2, 128])
    """

    def __init__(self, in_channels=3, embedding_dim=128):
        super().__init__()
        self.in_channels = in_channels
        self.embedding_dim = embedding_dim
        # OpenFace's SpatialCrossMapLRN(5, 0.0001, 0.75) with k=1, the same
        # convention as torch's LocalResponseNorm.
        self.stem = nn.Sequential(
            _conv_bn(in_channels, 64, 7, stride=2),
            nn.MaxPool2d(3, 2, padding=1),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            _conv_bn(64, 64, 1),
            _conv_bn(64, 192, 3),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.MaxPool2d(3, 2, padding=1),
        )
        blocks = [
            # name, in, kernels, outs, reduces, pool, pool_proj, 1x1, stride
            ("3a", 192, (3, 5), (128, 32), (96, 16), "max", 32, 64, 1),
            ("3b", 256, (3, 5), (128, 64), (96, 32), "l2", 64, 64, 1),
            ("3c", 320, (3, 5), (256, 64), (128, 32), "max", None, None, 2),
            ("4a", 640, (3, 5), (192, 64), (96, 32), "l2", 128, 256, 1),
            ("4e", 640, (3, 5), (256, 128), (160, 64), "max", None, None, 2),
            ("5a", 1024, (3,), (384,), (96,), "l2", 96, 256, 1),
            ("5b", 736, (3,), (384,), (96,), "max", 96, 256, 1),
        ]
        self.blocks = nn.Sequential()
        for name, c_in, kernels, outs, reduces, pool, proj, one, stride in blocks:
            block = Inception(
                c_in, kernels, outs, reduces, pool=pool, pool_proj=proj, one_by_one=one,
                stride=stride,
            )
            self.blocks.add_module(f"inception_{name}", block)
        self.fc = nn.Linear(736, embedding_dim)

    def forward(self, x):
        """Unit-length embeddings.

        Parameters
        ----------
        x : Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        embeddings : Tensor of shape (n, embedding_dim)
            L2-normalised rows.
        """
        x = self.blocks(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.normalize(self.fc(x), dim=1)
