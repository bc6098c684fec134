"""``skew-reverse-kl``: skew reverse KL distillation."""

from __future__ import annotations

from ._divergence import SkewDivergence


class SkewReverseKL(SkewDivergence):
    """Skew reverse KL distillation: KL(q_student || alpha q + (1 - alpha) p_teacher); alpha=0 is reverse KL.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        skew_reverse_kl = sum_c q_c (log q_c - log(alpha q_c + (1 - alpha) p_c))

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``SkewDivergence``.

    Args:
        alpha: weight of the mixed-in distribution, in [0, 1].

    Citation: Ko, Kim, Chen, Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
    Models", arXiv:2402.03898.
    """

    reverse = True
