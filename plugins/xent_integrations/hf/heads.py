"""Head transforms: how a family turns ``lm_head(hidden)`` into the logits its loss sees.

Read from ``config.get_text_config()``. transformers applies the multiplicative ones to the raw
logits and then the soft-cap (``c * tanh(z / c)``), which is the order the linear losses use
(``z = c * tanh(s * raw / c)``). A config field that looks like a head transform but is not one we
know raises instead of being ignored: a silently dropped transform is a silently wrong loss.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from xent_core import BadParameterError

# field -> how it acts on the raw logits ("multiply", "divide", "softcap")
KNOWN = {
    "final_logit_softcapping": "softcap",  # gemma2, gemma3
    "logit_scale": "multiply",  # cohere
    "logits_scaling": "divide",  # granite
    "lm_head_multiplier": "multiply",
    "output_multiplier": "multiply",
}
# families where a known field acts the other way (HyperCLOVA X multiplies by logits_scaling,
# Granite divides); any other surprise is caught by verify="auto" for families outside the table
OVERRIDES = {("hyperclovax", "logits_scaling"): "multiply"}
# fields that match the pattern below but do not act on the output logits
NOT_HEAD = {
    "output_router_logits",
    "output_auxiliary_logits",
    "num_logits_to_keep",
    "logit_scale_init_value",
    "lm_head_bias",
    "freeze_lm_head",
}
_LOOKS_LIKE_HEAD = re.compile(r"logit|lm_head|output_mult")
_NOT_HEAD_PATTERN = re.compile(r"attn|attention|router|contrastive|time_logit")


@dataclass(frozen=True)
class HeadTransform:
    """Scale and soft-cap of the output logits, and the config fields they came from."""

    logit_scale: float = 1.0
    softcap: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.fields:
            return "no head transform fields"
        return ", ".join(f"{k}={v!r}" for k, v in self.fields.items())


def _inactive(value: Any) -> bool:
    return value is None or value is False


def read_head_transform(config: Any) -> HeadTransform:
    """The :class:`HeadTransform` of a transformers config (its text config for multimodal ones)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    values = text.to_dict() if hasattr(text, "to_dict") else dict(vars(text))
    family = getattr(text, "model_type", "?")
    scale, softcap, used = 1.0, None, {}
    for name in sorted(values):
        value = getattr(text, name, values[name])
        if name in KNOWN:
            if _inactive(value):
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise BadParameterError(
                    f"{family}: config.{name}={value!r} is not a positive number; cannot patch"
                )
            kind = OVERRIDES.get((family, name), KNOWN[name])
            if kind == "softcap":
                softcap = float(value)
            elif kind == "multiply":
                scale *= float(value)
            else:
                scale /= float(value)
            used[name] = value
        elif (
            _LOOKS_LIKE_HEAD.search(name)
            and name not in NOT_HEAD
            and not _NOT_HEAD_PATTERN.search(name)
            and not _inactive(value)
        ):
            raise BadParameterError(
                f"{family}: config field {name}={value!r} looks like an output-head transform "
                f"that xent does not know ({', '.join(KNOWN)} are known); refusing to patch "
                "rather than silently computing a different loss"
            )
    return HeadTransform(scale, softcap, used)
