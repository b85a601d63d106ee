"""A skorch callback the estimator tests share: what the optimiser used on each batch."""

from skorch.callbacks import Callback


class RecordRates(Callback):
    """Learning rate and momentum (SGD's ``momentum``, Adam's first beta) of each batch."""

    def initialize(self):
        self.seen = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            group = net.optimizer_.param_groups[0]
            momentum = group["momentum"] if "momentum" in group else group["betas"][0]
            self.seen.append((group["lr"], momentum))
