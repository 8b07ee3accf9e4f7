"""BatchNorm statistics for randomly initialised models: one data-free calibration pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

CALIBRATION_BATCH = 2


def calibrate_batchnorm(model: nn.Module, input_size: tuple[int, int, int]) -> None:
    """Set every BatchNorm's running statistics from one forward pass on random data.

    A trained network's BatchNorm layers hold the statistics of their inputs, so its activations keep a unit
    scale through any depth. Randomly initialised layers hold mean 0 / variance 1 instead, and in eval mode
    deep residual networks then grow activations without bound (ResNet152-MoD reaches logits near 1e4, where
    the MoD selector's sigmoid saturates to exact ties and top-k becomes arbitrary), while others vanish
    towards denormal numbers that slow CPUs down. One data-free calibration pass (a cumulative average over
    a random batch of two at the model's input size) gives activations the scale of a trained network. The
    input size matters: statistics gathered on smaller maps do not fit (ODConv's spatial attention, for one,
    then blows its last stage up). Latency
    does not depend on the values, but this keeps timings free of denormal slow paths and ONNX parity
    checks meaningful.
    """
    import torch
    from torch import nn

    # Only feature-map BatchNorms: each channel's statistics then come from batch × H × W values. The
    # BatchNorm1d of attention branches (KernelWarehouse, ODConv) would see only the batch and keep unstable
    # variances, so they keep their initial statistics.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the pass's own statistics
    # Everything else behaves as at inference (attention BatchNorm1d, dropout), so the statistics gathered
    # are those that inference will meet.
    model.eval()
    for m in norms:
        m.train()
    with torch.no_grad():
        model(torch.randn(CALIBRATION_BATCH, *input_size))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
