"""``skew-kl``: skew forward KL distillation."""

from __future__ import annotations

from ._divergence import SkewDivergence


class SkewKL(SkewDivergence):
    """Skew KL distillation: KL(p_teacher || alpha p + (1 - alpha) q_student); alpha=0 is forward KL.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        skew_kl = sum_c p_c (log p_c - log(alpha p_c + (1 - alpha) q_c))

    Mixing a little of the teacher into the student bounds the log-ratio by ``-log alpha``, which
    keeps the gradients finite where the student puts almost no mass.

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``SkewDivergence``.

    Args:
        alpha: weight of the mixed-in distribution, in [0, 1].

    Citation: Ko, Kim, Chen, Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
    Models", arXiv:2402.03898.
    """

    reverse = False
