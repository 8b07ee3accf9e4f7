"""An example convbench model plugin (see ``models.py``)."""
