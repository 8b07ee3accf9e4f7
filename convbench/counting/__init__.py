"""Counting: MACs and parameters of PyTorch models (fvcore) and of ONNX graphs."""
