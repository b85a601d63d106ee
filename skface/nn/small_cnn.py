"""A small, fast convolutional embedding network for tests and reduced CPU runs."""

import torch.nn.functional as F
from torch import nn

__all__ = ["SmallConvNet"]


def _conv_bn(in_channels, out_channels, stride):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallConvNet(nn.Module):
    """Four stride-2 stages of 3x3 convolutions, global average pooling, a linear embedding.

    Any input size works (even 1-pixel-high strips): the convolutions are
    padded and the final pooling is adaptive.

    Parameters
    ----------
    in_channels : int, default=3
    embedding_dim : int, default=128
    width : int, default=32
        Channels of the first stage; each later stage doubles them.

    Examples
    --------
    >>> import torch
    >>> SmallConvNet(in_channels=1, embedding_dim=16, width=8)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 16])
    """

    def __init__(self, in_channels=3, embedding_dim=128, width=32):
        super().__init__()
        self.in_channels = in_channels
        self.embedding_dim = embedding_dim
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_channels, w, 2),
            _conv_bn(w, 2 * w, 2),
            _conv_bn(2 * w, 2 * w, 1),
            _conv_bn(2 * w, 4 * w, 2),
            _conv_bn(4 * w, 4 * w, 1),
            _conv_bn(4 * w, 8 * w, 2),
        )
        self.fc = nn.Linear(8 * w, embedding_dim)

    def forward(self, x):
        """Unit-length embeddings.

        Parameters
        ----------
        x : Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        embeddings : Tensor of shape (n, embedding_dim)
        """
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return F.normalize(self.fc(x), dim=1)
