"""``skface demo``: train each estimator briefly, evaluate it and write an HTML report."""

from skface.demo._presets import PRESETS, DemoSettings
from skface.demo._run import run_demo

__all__ = ["PRESETS", "DemoSettings", "run_demo"]
