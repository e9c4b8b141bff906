"""Training Lipschitz classifiers: losses, the run's settings, the loop, data parallelism."""

from .config import TrainConfig, default_eps, default_train_eps
from .distributed import Context, setup, teardown
from .loop import batch_order, build_model, train
from .losses import (
    LOSSES,
    certifying_margin,
    margin_hinge_loss,
    offset_cross_entropy,
    summed_loss,
)

__all__ = [
    "LOSSES",
    "Context",
    "TrainConfig",
    "batch_order",
    "build_model",
    "certifying_margin",
    "default_eps",
    "default_train_eps",
    "margin_hinge_loss",
    "offset_cross_entropy",
    "setup",
    "summed_loss",
    "teardown",
    "train",
]
