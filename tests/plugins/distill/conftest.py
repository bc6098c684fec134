"""Distillation tests run on tiny tensors: one intra-op thread avoids thread wake-up costs.

On a loaded 2-core machine ``torch.log_softmax`` on a 3x5 tensor takes ~20 ms with two threads
(parallel_for wake-ups) and ~1 us with one; the setting is restored after each test.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
