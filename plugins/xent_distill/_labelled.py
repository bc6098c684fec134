"""The distillation losses that need the true label (``dkd``, ``pld``): one input reading."""

from __future__ import annotations

from typing import NamedTuple

import torch

from xent_core.base_loss import Loss

from ._inputs import as_rows, check_num_items, class_ids, compute_dtype, valid_rows
from ._reduce import reduce_rows
from ._teacher import Teacher, read_teacher


class Labelled(NamedTuple):
    """Checked inputs of a loss that needs the true label: leading shape, valid rows, ids, teacher."""

    lead: tuple[int, ...]
    valid: torch.Tensor
    y: torch.Tensor
    teacher: Teacher


def read_labelled(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_topk_ids: torch.Tensor | None,
    teacher_topk_logprobs: torch.Tensor | None,
    num_items: int | float | torch.Tensor | None,
    *,
    ignore_index: int,
    vocab_align: str,
) -> Labelled:
    """The shared preamble of ``dkd`` and ``pld``: student rows in the compute dtype, the
    non-ignored rows, class ids (range-checked) and the validated teacher."""
    s, lead = as_rows("logits", logits)
    s = s.to(compute_dtype(s))
    valid = valid_rows(targets, s.shape[0], lead, ignore_index, s.device)
    assert valid is not None
    check_num_items(num_items)
    y = class_ids(targets, valid, s.shape[-1], ignore_index)
    teacher = read_teacher(
        s,
        teacher_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        lead=lead,
        vocab_align=vocab_align,
        y=y,
    )
    return Labelled(lead, valid, y, teacher)


class LabelledLoss(Loss):
    """Base of ``dkd`` and ``pld``: reads the inputs with :func:`read_labelled`, reduces the rows.

    A subclass sets ``ignore_index``, ``reduction`` and ``vocab_align`` in its ``__init__`` and
    overrides :meth:`rows`, the loss of every row from the checked teacher and class ids.
    """

    ignore_index: int
    reduction: str
    vocab_align: str

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        teacher_topk_ids: torch.Tensor | None = None,
        teacher_topk_logprobs: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        lead, valid, y, teacher = read_labelled(
            logits,
            targets,
            teacher_logits,
            teacher_topk_ids,
            teacher_topk_logprobs,
            num_items,
            ignore_index=self.ignore_index,
            vocab_align=self.vocab_align,
        )
        return reduce_rows(self.rows(teacher, y), valid, self.reduction, lead, num_items)

    def rows(self, teacher: Teacher, y: torch.Tensor) -> torch.Tensor:
        """The loss of every row (before the reduction); ``y`` are the class ids."""
        raise NotImplementedError
