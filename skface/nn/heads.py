"""Classifier heads on unit-length embeddings, used only to train them."""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ScaledLinearHead"]


class ScaledLinearHead(nn.Module):
    """Logits ``scale * e @ W.T + b`` of unit embeddings ``e``; cosine logits with ``normalize``.

    Unit embeddings give logits in ``[-|w|, |w|]``, too flat for softmax to
    converge; a fixed ``scale`` (e.g. 16) restores the range (Wang et al.,
    NormFace, 2017).

    Parameters
    ----------
    in_features : int
    n_classes : int
    scale : float, default=16.0
    normalize : bool, default=False
        Also L2-normalise the class weights (and drop the bias): logits are
        scaled cosines.

    Attributes
    ----------
    weight : Parameter of shape (n_classes, in_features)
    bias : Parameter of shape (n_classes,) or None
    """

    def __init__(self, in_features, n_classes, scale=16.0, normalize=False):
        super().__init__()
        self.in_features = in_features
        self.scale = scale
        self.normalize = normalize
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        self.bias = None if normalize else nn.Parameter(torch.empty(n_classes))
        self._init(self.weight, self.bias)

    @staticmethod
    def _init(weight, bias):
        # nn.Linear's initialisation. A head with no classes yet (a pretrained
        # embedder before fine-tuning) has nothing to initialise.
        if weight.numel() == 0:
            return
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        if bias is not None:
            bound = 1 / math.sqrt(weight.shape[1])
            nn.init.uniform_(bias, -bound, bound)

    @property
    def n_classes(self):
        return self.weight.shape[0]

    def forward(self, embeddings):
        """Logits.

        Parameters
        ----------
        embeddings : Tensor of shape (n, in_features)

        Returns
        -------
        logits : Tensor of shape (n, n_classes)
        """
        weight = F.normalize(self.weight, dim=1) if self.normalize else self.weight
        return F.linear(embeddings * self.scale, weight, self.bias)

    @torch.no_grad()
    def add_classes(self, n_new):
        """Append ``n_new`` freshly initialised class rows; existing rows are kept.

        The parameters are replaced by larger ones, so an optimizer built
        before must be rebuilt.

        Parameters
        ----------
        n_new : int
        """
        weight = torch.empty(n_new, self.in_features, device=self.weight.device)
        bias = None if self.bias is None else torch.empty(n_new, device=self.weight.device)
        self._init(weight, bias)
        self.weight = nn.Parameter(torch.cat([self.weight, weight.to(self.weight.dtype)]))
        if bias is not None:
            self.bias = nn.Parameter(torch.cat([self.bias, bias.to(self.bias.dtype)]))
