"""Shared check for dynamic convolutions that fold the batch into convolution groups."""

import torch
from torch import nn


def check_batch_folding(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """On a seeded random batch of ``shape``, each sample gets the output it gets alone (up to float
    re-association), and samples differ."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(x.shape[0])])
    scale = together.abs().max().item()
    assert scale > 0
    # Batched and single-sample grouped convolutions sum in different orders; through 18+ layers float32
    # differences reach ~1e-4 of the output's scale.
    torch.testing.assert_close(together, alone, rtol=1e-3, atol=2e-4 * scale)
    assert not torch.allclose(together[0], together[1])  # different inputs, different outputs
    return together
