"""Model families and the registry. Importing this package is cheap: families are imported when a model is
built (or when the registry's index has to be rebuilt), never just to list or look up models.

One module per family; each registers its builders with ``@register_model`` (``families.py`` lists them).
"""

from convbench.models.registry import ModelEntry, create_model, get_entry, list_models, register_model

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models", "register_model"]
