"""Pure PyTorch building blocks for skface estimators (no scikit-learn import)."""

from .rbm import (
    RBM,
    BernoulliRBM,
    GaussianBernoulliRBM,
    cd_step,
    rbm_optimizer,
    sample_stack,
    unroll,
)

__all__ = [
    "RBM",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "cd_step",
    "rbm_optimizer",
    "sample_stack",
    "unroll",
]
