"""Losses: center loss (Wen et al. 2016), softmax plus center loss, masked keypoint MSE."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CenterLoss", "MaskedMSELoss", "SoftmaxCenterLoss", "masked_mse"]


class CenterLoss(nn.Module):
    """Center loss: half the mean squared distance of each feature to its class center.

    ``L_C = 1/(2m) * sum_i ||x_i - c_{y_i}||^2`` over a batch of ``m``
    features (Wen et al., eq. 2, averaged over the batch). The centers are a
    buffer, not parameters: the optimizer never sees them. They move by
    :meth:`update_centers` at rate ``alpha`` (eq. 4), once per batch after
    the backward pass.

    Parameters
    ----------
    n_classes : int
    n_features : int
    alpha : float, default=0.5
        Center update rate in [0, 1].

    Attributes
    ----------
    centers : Tensor of shape (n_classes, n_features)
        Start at zero.

    References
    ----------
    Y. Wen, K. Zhang, Z. Li and Y. Qiao, "A discriminative feature learning
    approach for deep face recognition", ECCV 2016.
    """

    def __init__(self, n_classes, n_features, alpha=0.5):
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
        self.alpha = alpha
        self.register_buffer("centers", torch.zeros(n_classes, n_features))

    @property
    def n_classes(self):
        return self.centers.shape[0]

    def forward(self, features, labels):
        """The loss of a batch.

        Parameters
        ----------
        features : Tensor of shape (m, n_features)
        labels : LongTensor of shape (m,)
            Class indices in ``[0, n_classes)``.

        Returns
        -------
        loss : scalar Tensor
        """
        diff = features.float() - self.centers[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def update_centers(self, features, labels, reduce=None):
        """Move each center of a class in the batch toward its features (Wen et al., eq. 4).

        ``delta_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)`` and
        ``c_j <- c_j - alpha * delta_j``, where ``n_j`` counts class ``j``
        in the batch; classes absent from the batch do not move.

        Parameters
        ----------
        features : Tensor of shape (m, n_features)
        labels : LongTensor of shape (m,)
        reduce : callable or None, default=None
            Sums a tensor in place over processes, as
            ``torch.distributed.all_reduce`` does. In data-parallel training,
            where each process holds a share of the batch, it makes ``n_j``
            and the sums count the whole batch, so every process applies
            the same update and the centers stay identical.
        """
        diff = self.centers[labels] - features.detach().float()
        delta = torch.zeros_like(self.centers).index_add_(0, labels, diff)
        # Counts by a fixed-size scatter: bincount's output size depends on the
        # labels' maximum, which it reads back from the device (a sync per batch).
        ones = torch.ones(labels.shape, dtype=delta.dtype, device=delta.device)
        counts = delta.new_zeros(self.n_classes).index_add_(0, labels, ones)
        if reduce is not None:
            # One collective for both: the sums and the counts, side by side.
            both = torch.cat([delta, counts.unsqueeze(1)], dim=1)
            reduce(both)
            delta, counts = both[:, :-1], both[:, -1]
        self.centers.sub_(self.alpha * delta / (1.0 + counts).unsqueeze(1))

    @torch.no_grad()
    def add_classes(self, n_new, init=None):
        """Append ``n_new`` centers (zeros, or the rows of ``init``).

        Parameters
        ----------
        n_new : int
        init : Tensor of shape (n_new, n_features), default=None
        """
        new = torch.zeros(n_new, self.centers.shape[1], device=self.centers.device)
        if init is not None:
            new.copy_(init)
        self.centers = torch.cat([self.centers, new])


class SoftmaxCenterLoss(nn.Module):
    """Softmax cross-entropy on logits plus ``lambda_center`` times the center loss.

    Parameters
    ----------
    n_classes : int
    n_features : int
    lambda_center : float, default=0.1
        Weight of the center loss (Wen et al.'s lambda); 0 is plain softmax.
    alpha_center : float, default=0.5
        Center update rate (Wen et al.'s alpha).

    Attributes
    ----------
    center_loss : CenterLoss
    """

    def __init__(self, n_classes, n_features, lambda_center=0.1, alpha_center=0.5):
        super().__init__()
        self.lambda_center = lambda_center
        self.center_loss = CenterLoss(n_classes, n_features, alpha=alpha_center)

    def forward(self, features, logits, labels):
        """Total loss of a batch.

        Parameters
        ----------
        features : Tensor of shape (m, n_features)
        logits : Tensor of shape (m, n_classes)
        labels : LongTensor of shape (m,)

        Returns
        -------
        loss : scalar Tensor
        """
        loss = F.cross_entropy(logits.float(), labels)
        if self.lambda_center:
            loss = loss + self.lambda_center * self.center_loss(features, labels)
        return loss


def masked_mse(pred, target):
    """Mean squared error over the observed targets; NaN targets are left out.

    A missing value (NaN) adds nothing to the sum and nothing to the count,
    so the loss is the mean over the observed entries only: a keypoint is
    never pulled toward a fill-in value, and images with few labels do not
    dilute those with many. Its gradient at missing entries is exactly zero.

    Parameters
    ----------
    pred : Tensor of shape (n, ...)
        Predictions; finite.
    target : Tensor of the same shape
        Targets, NaN where missing.

    Returns
    -------
    loss : scalar Tensor (float32)
        0 (with a zero gradient) when no target is observed.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}."
        )
    observed = ~torch.isnan(target)
    # Zero the missing targets before subtracting, so no NaN reaches the graph.
    diff = torch.where(observed, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return diff.pow(2).sum() / observed.sum().clamp(min=1)


class MaskedMSELoss(nn.Module):
    """:func:`masked_mse` as a module: mean squared error over the non-NaN targets."""

    def forward(self, pred, target):
        """The loss of a batch.

        Parameters
        ----------
        pred : Tensor of shape (n, ...)
        target : Tensor of the same shape, NaN where missing

        Returns
        -------
        loss : scalar Tensor
        """
        return masked_mse(pred, target)
