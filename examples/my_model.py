"""A small model file for ``convbench profile examples/my_model.py:build`` ("Benchmark your own model").

Any Python file works the same way: convbench imports it and calls the builder named after the colon, with
``--model-arg key=value`` arguments and with ``num_classes`` / ``in_chans`` when the builder takes them. The
module attribute ``default_input_size`` (channels, height, width) gives the input size when ``--resolution``
is not given. The network is a two-stage residual net in the style of "Deep Residual Learning for Image
Recognition" (He et al., CVPR 2016), small enough to build in milliseconds.
"""

from __future__ import annotations

from torch import Tensor, nn

default_input_size = (3, 224, 224)


class Block(nn.Module):
    """Two 3×3 convolutions with a shortcut (a 1×1 projection where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.stages = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


def build(num_classes: int = 1000, in_chans: int = 3, width: int = 32) -> nn.Module:
    """TinyResNet; ``--model-arg width=64`` widens it."""
    return TinyResNet(num_classes=num_classes, in_chans=in_chans, width=width)
