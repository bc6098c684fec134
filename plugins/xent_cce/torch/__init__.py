"""The PyTorch layer: chunked primitives, the ``cce-torch`` kernel and the ``naive`` baseline.

A subpackage named after the library it uses; inside it ``import torch`` is still PyTorch
(absolute imports).
"""
