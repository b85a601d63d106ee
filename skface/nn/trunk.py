"""Encoder trunks built from a spec, and the supervised heads that sit on them."""

from collections import OrderedDict

import torch
from torch import nn

from .conv_dae import ConvDAEStack, trunk_features

__all__ = ["ConvTrunk", "TrunkHead", "TrunkKeypointHead"]


class ConvTrunk(nn.Sequential):
    """The encoder of a :class:`~skface.nn.conv_dae.ConvDAEStack`, without its decoders.

    Built from the same arguments as the stack, with the same state-dict
    keys as ``stack.trunk()`` (``0`` the standardisation, ``1..L`` the
    layers' encoders), so a trained stack's trunk loads into it with
    ``load_state_dict(stack.trunk().state_dict())``.

    Parameters
    ----------
    in_channels : int
    layer_channels : sequence of int
    kernel_size : int, default=3
    n_convs : int, default=1
    batch_norm : bool, default=True
    activation : str, default="relu"
    contrast : float or None, default=None
        As for :class:`~skface.nn.conv_dae.ConvDAEStack`.
    """

    def __init__(self, in_channels, layer_channels, kernel_size=3, *, n_convs=1,
                 batch_norm=True, activation="relu", contrast=None):
        stack = ConvDAEStack(
            in_channels, layer_channels, kernel_size, n_convs=n_convs,
            batch_norm=batch_norm, activation=activation, contrast=contrast,
        )
        super().__init__(*stack.trunk())
        self.layer_channels = stack.layer_channels

    def __getitem__(self, index):
        # nn.Sequential slices by calling the class with the modules, which a
        # class with its own arguments cannot take: slices are plain Sequentials.
        if isinstance(index, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[index]))
        return super().__getitem__(index)


class TrunkHead(nn.Module):
    """A :class:`ConvTrunk`, its features, dropout and a linear head: a fine-tuned model.

    Parameters
    ----------
    trunk : dict
        Keyword arguments of :class:`ConvTrunk`.
    layers : sequence of int
        Layers whose codes make the features (see
        :func:`~skface.nn.conv_dae.trunk_features`).
    pooling : str
    test_flip : bool
        As for :func:`~skface.nn.conv_dae.trunk_features`.
    n_features : int
        Width of the features.
    n_outputs : int
    dropout : float
    """

    def __init__(self, trunk, layers, pooling, test_flip, n_features, n_outputs, dropout):
        super().__init__()
        self.trunk = ConvTrunk(**trunk)
        self.layers = tuple(int(i) for i in layers)
        self.pooling = pooling
        self.test_flip = bool(test_flip)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        features = trunk_features(self.trunk, x, self.layers, self.pooling, self.test_flip)
        return self.head(self.dropout(features))


class TrunkKeypointHead(nn.Module):
    """A :class:`ConvTrunk`, pooling, dropout and a linear head to (x, y) coordinates.

    The head starts at zero weights and the mean training shape as its
    bias, so training begins from the mean-shape prediction rather than
    from noise.

    Parameters
    ----------
    trunk : dict
        Keyword arguments of :class:`ConvTrunk`.
    pooling : {"avg", "flatten"}
        Global average of the top code, or every value of it.
    n_features : int
    n_outputs : int
        Twice the number of keypoints.
    dropout : float
    mean_shape : sequence of float of length n_outputs
        Initial bias: the mean normalised coordinates.
    """

    def __init__(self, trunk, pooling, n_features, n_outputs, dropout, mean_shape):
        super().__init__()
        self.trunk = ConvTrunk(**trunk)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_features, n_outputs)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.as_tensor(mean_shape, dtype=torch.float32))

    def features(self, x):
        maps = self.trunk(x)
        return maps.mean(dim=(2, 3)) if self.pooling == "avg" else maps.flatten(1)

    def forward(self, x):
        features = self.dropout(self.features(x))
        # The head in float32 even under autocast: bfloat16 keeps about 3 digits,
        # a fifth of a pixel on a 96-pixel face.
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features.float())
