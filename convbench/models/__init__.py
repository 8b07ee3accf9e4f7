"""Model families. Importing this package registers every model with the registry.

One module per family; each registers its builders with ``@register_model``.
"""

from convbench.models import compconv, convnext, dynamic_conv, kernelwarehouse, micronet, mobilenet, mod, resnet, vgg  # noqa: F401  (registration side effects)
from convbench.models.registry import ModelEntry, create_model, get_entry, list_models, register_model

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models", "register_model"]
