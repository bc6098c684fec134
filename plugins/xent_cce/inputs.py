"""Validation and flattening of the linear cross-entropy inputs (done once, before any kernel)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xent_core import BadInputError, input_checks_enabled

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_WHO = "linear-cross-entropy"


@dataclass
class FlatInputs:
    """``hidden`` (N, D), ``classifier`` (V, D), ``bias`` (V,) or None, ``targets`` (N,) int64."""

    hidden: torch.Tensor
    classifier: torch.Tensor
    bias: torch.Tensor | None
    targets: torch.Tensor
    lead_shape: tuple[int, ...]


def _tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise BadInputError(f"{_WHO}: {name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def shift_targets(targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Next-token targets: position t predicts ``targets[..., t+1]``; the last is ignored.

    Only the (small, integer) targets move; the hidden states are used as they are.
    """
    pad = torch.full_like(targets[..., :1], ignore_index)
    return torch.cat([targets[..., 1:], pad], dim=-1)


def prepare_inputs(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    shift: bool = False,
    check_values: bool = True,
    vocab_sharded: bool = False,
) -> FlatInputs:
    """Check shapes, dtypes, devices and values; flatten leading dims; shift targets if asked.

    Raises :class:`~xent_core.BadInputError` saying what was wrong and what is expected.
    ``check_values=False`` skips the data-dependent checks (target range; finite hidden,
    classifier and bias), which synchronise with the device. ``vocab_sharded``: the classifier
    holds this rank's rows only, so target ids are checked later, against the global vocabulary.
    """
    hidden = _tensor(hidden, "hidden")
    classifier = _tensor(classifier, "classifier")
    targets = _tensor(targets, "targets")
    if bias is not None:
        bias = _tensor(bias, "bias")
    if hidden.dtype not in FLOAT_DTYPES:
        raise BadInputError(
            f"{_WHO}: hidden must be floating point (float16, bfloat16, float32 or float64), "
            f"got {hidden.dtype}"
        )
    if hidden.dim() < 2:
        raise BadInputError(
            f"{_WHO}: hidden must be (N, D) or (B, T, D), got shape {tuple(hidden.shape)}"
        )
    if classifier.dim() != 2:
        raise BadInputError(
            f"{_WHO}: classifier must be (V, D), got shape {tuple(classifier.shape)}"
        )
    if classifier.dtype != hidden.dtype:
        raise BadInputError(
            f"{_WHO}: classifier dtype {classifier.dtype} differs from hidden dtype "
            f"{hidden.dtype}; cast one of them"
        )
    d, v = hidden.shape[-1], classifier.shape[0]
    if classifier.shape[1] != d:
        raise BadInputError(
            f"{_WHO}: hidden has D={d} but classifier rows have D={classifier.shape[1]} "
            f"(classifier is {tuple(classifier.shape)}); expected classifier of shape (V, {d})"
        )
    if d == 0:
        raise BadInputError(f"{_WHO}: hidden has no features (D=0); expected D >= 1")
    if v == 0 and not vocab_sharded:
        raise BadInputError(f"{_WHO}: classifier has no rows (V=0)")
    if bias is not None:
        if bias.shape != (v,):
            raise BadInputError(
                f"{_WHO}: bias must have shape ({v},) to match the classifier rows (bias must be "
                f"one value per row), got {tuple(bias.shape)}"
            )
        if bias.dtype != hidden.dtype:
            raise BadInputError(
                f"{_WHO}: bias dtype {bias.dtype} differs from hidden dtype {hidden.dtype}"
            )
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise BadInputError(
            f"{_WHO}: targets must hold integer class ids (an integer tensor, int64), got "
            f"{targets.dtype}"
        )
    lead = tuple(hidden.shape[:-1])
    if tuple(targets.shape) != lead:
        raise BadInputError(
            f"{_WHO}: targets shape {tuple(targets.shape)} does not match hidden's leading "
            f"shape {lead} (hidden is {tuple(hidden.shape)})"
        )
    devices = {hidden.device, classifier.device, targets.device}
    if bias is not None:
        devices.add(bias.device)
    if len(devices) > 1:
        found = ", ".join(sorted(str(x) for x in devices))
        raise BadInputError(f"{_WHO}: inputs are on different devices ({found}); move them to one")
    targets = targets.long()
    check_values = check_values and input_checks_enabled()
    if check_values:
        if targets.numel() and not vocab_sharded:
            flat_t = targets.reshape(-1)
            bad = ((flat_t < 0) | (flat_t >= v)) & (flat_t != ignore_index)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                value = int(flat_t[i])
                raise BadInputError(
                    f"{_WHO}: target {value} is out of range; targets must be in [0, {v}) or "
                    f"ignore_index={ignore_index} ({int(bad.sum())} such target(s), the first "
                    f"is target {value} of token {i})"
                )
        for name, t in (("hidden", hidden), ("classifier", classifier), ("bias", bias)):
            if t is not None and t.numel() and not bool(torch.isfinite(t).all()):
                raise BadInputError(f"{_WHO}: {name} contains NaN or infinite values")
    if shift:
        targets = shift_targets(targets, ignore_index)
    return FlatInputs(
        hidden=hidden.reshape(-1, d),
        classifier=classifier,
        bias=bias,
        targets=targets.reshape(-1),
        lead_shape=lead,
    )
