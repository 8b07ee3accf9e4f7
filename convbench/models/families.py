"""Importing this module registers every model family of convbench (one module per family)."""

from convbench.models import (  # noqa: F401  (registration side effects)
    compconv,
    convnext,
    dynamic_conv,
    kernelwarehouse,
    micronet,
    mobilenet,
    mod,
    resnet,
    vgg,
)
