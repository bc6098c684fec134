"""Self-check of a patch: loss and every parameter gradient against the model's own forward.

One tiny batch (2 rows, ragged ``-100`` labels) in eval mode (no dropout, no router jitter); the
model's gradients are saved and restored, so a model can be verified mid-training.
"""

from __future__ import annotations

from typing import Any

import torch

from .patching import _ATTR, PatchError, family_of

# (loss rtol, gradient tolerance relative to the largest native gradient entry) per dtype
TOLERANCES = {
    torch.float64: (1e-9, 1e-7),
    torch.float32: (1e-4, 1e-3),
    torch.float16: (2e-2, 5e-2),
    torch.bfloat16: (2e-2, 5e-2),
}


def _batch(model: Any, length: int, seed: int) -> dict[str, torch.Tensor]:
    text = model.config.get_text_config()
    vocab = int(text.vocab_size)
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (2, length), generator=gen)
    labels = ids.clone()
    labels[0, :2] = -100
    labels[1, length // 2 :] = -100
    mask = torch.ones_like(ids)
    return {
        "input_ids": ids.to(param.device),
        "attention_mask": mask.to(param.device),
        "labels": labels.to(param.device),
    }


def _run(forward: Any, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    loss = forward(**batch).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def verify_patch(model: Any, *, length: int = 9, seed: int = 0) -> dict[str, float]:
    """Compare the patched and native loss and gradients; raise :class:`PatchError` on mismatch.

    Returns the largest relative errors found (``{"loss": ..., "grad": ...}``).
    """
    state = model.__dict__.get(_ATTR)
    if state is None:
        raise PatchError(f"{type(model).__name__} is not patched by xent")
    family = family_of(model)
    patched_forward = state.wrapper
    native_forward = state.previous_forward or type(model).forward.__get__(model)
    dtype = next(model.parameters()).dtype
    loss_tol, grad_tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    batch = _batch(model, length, seed)
    saved = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        ref_loss, ref_grads = _run(native_forward, model, batch)
        loss, grads = _run(patched_forward, model, batch)
    finally:
        model.train(was_training)
        for n, p in model.named_parameters():
            p.grad = saved[n]
    where = f"xent patch of family {family!r} ({state.head.describe()})"
    loss_err = abs(loss.item() - ref_loss.item()) / max(abs(ref_loss.item()), 1e-12)
    if not loss_err <= loss_tol:
        raise PatchError(
            f"{where}: loss {loss.item():.8g} differs from the native {ref_loss.item():.8g} "
            f"(relative error {loss_err:.2e} > {loss_tol:g})"
        )
    if set(grads) != set(ref_grads):
        diff = sorted(set(grads) ^ set(ref_grads))
        raise PatchError(f"{where}: gradients reach different parameters: {diff[:5]}")
    worst = 0.0
    for name, ref in ref_grads.items():
        scale = ref.abs().max().item()
        err = (grads[name] - ref).abs().max().item() / max(scale, 1e-12)
        if not err <= grad_tol:
            raise PatchError(
                f"{where}: the gradient of {name} differs from the native one "
                f"(max error {err:.2e} of its largest entry > {grad_tol:g})"
            )
        worst = max(worst, err)
    return {"loss": loss_err, "grad": worst}
