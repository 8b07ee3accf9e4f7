"""convbench: hardware-aware latency benchmarks for efficient-CNN papers."""

__version__ = "0.1.0"
