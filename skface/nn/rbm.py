"""Restricted Boltzmann machines in pure PyTorch: unit types, CD-k and persistent CD."""

import contextlib

import torch
from torch import nn

__all__ = [
    "RBM",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "cd_step",
    "rbm_optimizer",
    "sample_stack",
    "unroll",
]

UNIT_TYPES = ("bernoulli", "gaussian")


class RBM(nn.Module):
    """Restricted Boltzmann machine with Bernoulli or Gaussian units on each side.

    Gaussian units have unit variance, so Gaussian visible units expect
    standardised data (zero mean, unit variance per feature); Gaussian hidden
    units are the "linear units with Gaussian noise" of Hinton &
    Salakhutdinov (2006), used for the code layer of a deep autoencoder.

    Parameters
    ----------
    n_visible, n_hidden : int
        Number of visible and hidden units.
    visible, hidden : {"bernoulli", "gaussian"}, default="bernoulli"
        Unit type on each side.
    init_std : float, default=0.01
        Standard deviation of the initial weights; biases start at zero.
    generator : torch.Generator, default=None
        Source of the initial weights (global RNG when None).

    Attributes
    ----------
    weight : Parameter of shape (n_hidden, n_visible)
    visible_bias : Parameter of shape (n_visible,)
    hidden_bias : Parameter of shape (n_hidden,)
    """

    def __init__(
        self,
        n_visible,
        n_hidden,
        *,
        visible="bernoulli",
        hidden="bernoulli",
        init_std=0.01,
        generator=None,
    ):
        super().__init__()
        for side, units in (("visible", visible), ("hidden", hidden)):
            if units not in UNIT_TYPES:
                raise ValueError(f"{side} must be one of {UNIT_TYPES}, got {units!r}.")
        self.visible, self.hidden = visible, hidden
        weight = torch.randn(n_hidden, n_visible, generator=generator) * init_std
        self.weight = nn.Parameter(weight)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))

    @property
    def n_visible(self):
        return self.weight.shape[1]

    @property
    def n_hidden(self):
        return self.weight.shape[0]

    def extra_repr(self):
        return (
            f"{self.n_visible}, {self.n_hidden}, visible={self.visible!r}, hidden={self.hidden!r}"
        )

    def hidden_mean(self, v):
        """E[h | v], shape (n, n_hidden)."""
        pre = torch.addmm(self.hidden_bias, v, self.weight.t())
        return torch.sigmoid(pre) if self.hidden == "bernoulli" else pre

    def visible_mean(self, h):
        """E[v | h], shape (n, n_visible)."""
        pre = torch.addmm(self.visible_bias, h, self.weight)
        return torch.sigmoid(pre) if self.visible == "bernoulli" else pre

    @staticmethod
    def _draw(mean, units, generator):
        if units == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise

    def sample_hidden(self, v, generator=None):
        """Draw h ~ p(h | v), shape (n, n_hidden)."""
        return self._draw(self.hidden_mean(v), self.hidden, generator)

    def sample_visible(self, h, generator=None):
        """Draw v ~ p(v | h), shape (n, n_visible)."""
        return self._draw(self.visible_mean(h), self.visible, generator)

    def gibbs(self, v, k=1, *, sample_visible=True, generator=None):
        """Run ``k`` steps v -> h -> v of block Gibbs sampling from ``v``.

        Parameters
        ----------
        v : Tensor of shape (n, n_visible)
            Start of the chains.
        k : int, default=1
            Number of steps.
        sample_visible : bool, default=True
            Draw the visible units; when False they are set to their mean
            (hidden units are always drawn).
        generator : torch.Generator, default=None
            Random source on ``v``'s device.

        Returns
        -------
        v : Tensor of shape (n, n_visible)
        """
        for _ in range(k):
            h = self.sample_hidden(v, generator)
            v = self.sample_visible(h, generator) if sample_visible else self.visible_mean(h)
        return v

    def free_energy(self, v):
        """Free energy F(v) = -log sum_h exp(-E(v, h)) up to a constant, shape (n,)."""
        pre = torch.addmm(self.hidden_bias, v, self.weight.t())
        if self.visible == "bernoulli":
            visible_term = -(v @ self.visible_bias)
        else:
            visible_term = 0.5 * ((v - self.visible_bias) ** 2).sum(dim=1)
        if self.hidden == "bernoulli":
            hidden_term = -nn.functional.softplus(pre).sum(dim=1)
        else:
            hidden_term = -0.5 * (pre**2).sum(dim=1)
        return visible_term + hidden_term

    def forward(self, v):
        """Hidden means, the features an RBM passes up a stack."""
        return self.hidden_mean(v)

    def reconstruct(self, v):
        """Mean-field reconstruction E[v | E[h | v]], shape (n, n_visible)."""
        return self.visible_mean(self.hidden_mean(v))


class BernoulliRBM(RBM):
    """RBM with binary (or [0, 1] probability) visible and binary hidden units.

    See :class:`RBM` for the parameters; ``hidden`` may be set to
    ``"gaussian"`` for linear code units.
    """

    def __init__(self, n_visible, n_hidden, *, hidden="bernoulli", init_std=0.01, generator=None):
        super().__init__(
            n_visible, n_hidden, visible="bernoulli", hidden=hidden, init_std=init_std,
            generator=generator,
        )


class GaussianBernoulliRBM(RBM):
    """RBM with unit-variance Gaussian visible units for standardised continuous data.

    See :class:`RBM` for the parameters.
    """

    def __init__(self, n_visible, n_hidden, *, hidden="bernoulli", init_std=0.01, generator=None):
        super().__init__(
            n_visible, n_hidden, visible="gaussian", hidden=hidden, init_std=init_std,
            generator=generator,
        )


def rbm_optimizer(rbm, lr, *, momentum=0.0, weight_decay=0.0):
    """SGD for an RBM, with weight decay on the weights only (not the biases).

    Parameters
    ----------
    rbm : RBM
    lr, momentum, weight_decay : float
        As in :class:`torch.optim.SGD`.

    Returns
    -------
    optimizer : torch.optim.SGD
    """
    return torch.optim.SGD(
        [
            {"params": [rbm.weight], "weight_decay": weight_decay},
            {"params": [rbm.visible_bias, rbm.hidden_bias], "weight_decay": 0.0},
        ],
        lr=lr,
        momentum=momentum,
    )


@torch.no_grad()
def cd_step(rbm, v, optimizer, *, k=1, chain=None, generator=None):
    """One contrastive-divergence update of ``rbm`` on the batch ``v``.

    Sets each parameter's ``.grad`` to minus the CD estimate of the
    log-likelihood gradient, <v h>_data - <v h>_model with hidden means, then
    calls ``optimizer.step()``, so momentum and weight decay come from the
    optimizer (see :func:`rbm_optimizer`).

    Under autocast (bf16 on CUDA) the sampling's matrix products run in
    bf16, but the statistics (``<v h>`` and the means) are taken in float32
    of the sampled states, outside autocast: each gradient is a difference
    of two nearly equal terms, of which bf16's 3 digits would leave mostly
    rounding.

    Parameters
    ----------
    rbm : RBM
    v : Tensor of shape (n, n_visible)
        Training batch.
    optimizer : torch.optim.Optimizer
        Over the parameters of ``rbm``.
    k : int, default=1
        Gibbs steps in the negative phase.
    chain : Tensor of shape (n_chains, n_visible), default=None
        Visible states of persistent chains (PCD, Tieleman 2008): the negative
        phase continues from them and visible units are sampled. None gives
        plain CD-k, starting at the data, with visible units at their means.
    generator : torch.Generator, default=None
        Random source on ``v``'s device.

    Returns
    -------
    error : Tensor, scalar
        Mean squared one-step reconstruction error of the batch, from
        sampled hidden states (Hinton's monitoring quantity).
    chain : Tensor of shape (n_chains, n_visible) or None
        The persistent chains' new visible states, to pass back in; None for CD.
    """
    persistent = chain is not None
    h_data = rbm.hidden_mean(v)
    recon = rbm.visible_mean(rbm._draw(h_data, rbm.hidden, generator))
    # PCD chains are kept as visible states and their hidden states redrawn
    # with the current weights. Keeping hidden states instead (as sklearn's
    # BernoulliRBM does) saves a matmul but mixes far worse: on LFW faces,
    # 5 epochs at lr 0.1 reconstruct held-out faces with MSE 0.038 (the mean
    # face's) instead of 0.019.
    h_model = rbm.hidden_mean(chain) if persistent else None
    v_model = recon  # CD starts from the data: the reconstruction is its first step
    for step in range(k):
        if persistent or step:
            v_model = rbm.visible_mean(rbm._draw(h_model, rbm.hidden, generator))
        if persistent:
            v_model = rbm._draw(v_model, rbm.visible, generator)
        h_model = rbm.hidden_mean(v_model)

    n_data, n_model = len(v), len(v_model)
    with _without_autocast(v.device):
        v, v_model, h_data, h_model = (t.float() for t in (v, v_model, h_data, h_model))
        # <h v>_model / n_model - <h v>_data / n_data in one fused call.
        weight_grad = torch.addmm(
            h_model.t() @ v_model, h_data.t(), v, beta=1.0 / n_model, alpha=-1.0 / n_data
        )
        rbm.weight.grad = weight_grad.to(rbm.weight.dtype)
        rbm.visible_bias.grad = (v_model.mean(0) - v.mean(0)).to(rbm.visible_bias.dtype)
        rbm.hidden_bias.grad = (h_model.mean(0) - h_data.mean(0)).to(rbm.hidden_bias.dtype)
        error = ((v - recon.float()) ** 2).mean()
    optimizer.step()
    return error, (v_model if persistent else None)


def _without_autocast(device):
    """A block in which autocast is off on ``device``'s type (a no-op where it has none)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def unroll(rbms):
    """Unroll a stack of RBMs into an encoder and a decoder (Hinton & Salakhutdinov).

    The encoder maps visible data to the top hidden means, the decoder maps
    them back with the transposed weights. Weights are copied, so fine-tuning
    the two halves does not change the RBMs (nor tie the halves).

    Parameters
    ----------
    rbms : sequence of RBM
        Bottom first; each one's ``n_hidden`` is the next one's ``n_visible``.

    Returns
    -------
    encoder, decoder : nn.Sequential
    """

    def activation(units):
        return nn.Sigmoid() if units == "bernoulli" else nn.Identity()

    encoder, decoder = [], []
    for rbm in rbms:
        up = nn.Linear(rbm.n_visible, rbm.n_hidden)
        down = nn.Linear(rbm.n_hidden, rbm.n_visible)
        with torch.no_grad():
            up.weight.copy_(rbm.weight)
            up.bias.copy_(rbm.hidden_bias)
            down.weight.copy_(rbm.weight.t())
            down.bias.copy_(rbm.visible_bias)
        encoder += [up, activation(rbm.hidden)]
        decoder = [down, activation(rbm.visible)] + decoder
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


@torch.no_grad()
def sample_stack(rbms, n_samples, *, n_steps=100, init=None, generator=None):
    """Draw from a deep belief network: Gibbs in the top RBM, then a mean-field down pass.

    Parameters
    ----------
    rbms : sequence of RBM
        Bottom first.
    n_samples : int
        Number of chains (ignored when ``init`` is given).
    n_steps : int, default=100
        Gibbs steps in the top RBM.
    init : Tensor of shape (n, n_visible of the top RBM), default=None
        Start of the chains; random binary states when None.
    generator : torch.Generator, default=None
        Random source on the RBMs' device.

    Returns
    -------
    v : Tensor of shape (n, n_visible of the bottom RBM)
        Visible means of the bottom layer.
    """
    top = rbms[-1]
    device = top.weight.device
    if init is None:
        half = torch.full((n_samples, top.n_visible), 0.5, device=device)
        init = torch.bernoulli(half, generator=generator)
        if top.visible == "gaussian":
            init = torch.randn(init.shape, generator=generator, device=device)
    v = top.gibbs(init, n_steps, sample_visible=True, generator=generator)
    # The last step's mean is a less noisy picture of where the chain is.
    v = top.visible_mean(top.sample_hidden(v, generator))
    for rbm in reversed(rbms[:-1]):
        v = rbm.visible_mean(v)
    return v
