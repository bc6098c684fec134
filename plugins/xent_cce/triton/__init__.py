"""The Triton layer: the ``cce-triton`` kernel (``kernel``), its host code (``ops``) and its
programs (``programs``). Importing this package imports nothing; ``ops`` and ``programs`` need
triton.
"""
