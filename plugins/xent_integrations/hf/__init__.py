"""transformers integration: a family-agnostic, self-verifying xent loss patch for causal LMs.

``from xent_core.integrations import transformers as xhf`` then ``xhf.patch(model)``.
"""

from __future__ import annotations

from .callback import EstimatorCallback
from .distill import distill_loss, gkd_loss_spec, model_distill_loss, topk_distill_loss
from .heads import HeadTransform, read_head_transform
from .patching import (
    TESTED_FAMILIES,
    PatchError,
    check_causal_lm,
    family_of,
    is_patched,
    patch,
    patched,
    unpatch,
)
from .stats import HeadStats, head_stats
from .trl_mixins import XentGKDMixin, XentSFTMixin, gkd_trainer_class, sft_trainer_class
from .verify import verify_patch

__all__ = [
    "EstimatorCallback",
    "TESTED_FAMILIES",
    "XentGKDMixin",
    "XentSFTMixin",
    "distill_loss",
    "gkd_loss_spec",
    "gkd_trainer_class",
    "model_distill_loss",
    "sft_trainer_class",
    "topk_distill_loss",
    "HeadStats",
    "HeadTransform",
    "PatchError",
    "check_causal_lm",
    "family_of",
    "head_stats",
    "is_patched",
    "patch",
    "patched",
    "read_head_transform",
    "unpatch",
    "verify_patch",
]
