"""Kernels that wrap another implementation: PyTorch's own (``native``) and peers (``peers``)."""
