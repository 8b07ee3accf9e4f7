"""Models this plugin adds to convbench: importing the module registers them.

``register_model`` records what convbench needs without building the model (family, paper, input size,
classes); the builder runs only when a command builds the model. Plugin rows carry ``plugin <distribution>
<version>`` as their source.
"""

from __future__ import annotations

from torch import nn

from convbench.models import register_model


@register_model("tiny-convnet", family="example", paper="example", input_size=(3, 32, 32), num_classes=10)
def tiny_convnet(num_classes: int = 10, width: int = 16) -> nn.Module:
    """A three-layer CNN for 32×32 inputs, an example of a plugin model."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )
