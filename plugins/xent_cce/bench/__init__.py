"""``xent bench linear-ce``: the command (``cli``), the runner and the per-kernel worker."""
