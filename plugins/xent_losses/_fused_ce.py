"""A chunked, fused softmax cross-entropy for class-id targets (custom autograd Function).

Used for every class-id case on the CPU (where it is faster than ``F.cross_entropy`` and keeps
no (N, C) log-probabilities for the backward) and, on other devices, where PyTorch's own
``F.cross_entropy`` has no equivalent or costs more memory: half precision inputs computed in
float32 (``F.cross_entropy`` would round the log-probabilities to the input dtype, and upcasting
first would hold a float32 copy of the logits), logit soft-capping, temperature and the z-loss. Per row i, with the transformed logits
``z = softcap * tanh(x / softcap) * inv_temp`` and ``lse = logsumexp(z)``::

    ce_i  = a_i * (lse_i - z_{i, y_i}) + b_i * (W * lse_i - sum_k w_k z_ik)

with ``a_i = (1 - eps) w_{y_i}`` and ``b_i = eps / C`` (both 0 on ignored rows) and
``W = sum_k w_k`` (``w = 1`` without class weights). ``ids`` and ``a`` may also be ``(N, K)``:
the first term is then ``sum_j a_ij (lse_i - z_{i, y_ij})`` (``two-hot``'s two atoms), a zero
weight adding 0 even where ``z`` is ``-inf``. The Function returns ``(ce, lse)`` and
saves only the inputs; the backward pass recomputes the softmax one block of rows at a time and
writes the gradient in the input dtype, so no (N, C) float32 buffer is ever held (peak extra
memory: at most three block buffers).

Speed: each block goes through PyTorch's fused ``log_softmax`` (forward) and ``softmax``
(backward) kernels, one pass each instead of separate max / subtract / exp / sum steps;
``tanh`` of the soft cap is evaluated once per block in each direction (its derivative
``1 - tanh^2`` reuses the backward's value). The float32 block buffers are allocated once per
call and reused by every block (``_Workspace``), and ``lse`` costs its two ``amax`` passes only
when the caller asks for it (the z-loss). Every step writes float32 to float32: a float32
multiplier applied to a bfloat16 tensor goes through PyTorch's slow mixed-dtype loop (about
25x a same-dtype ``mul_`` on the CPU), so the result is converted once, at the end of a block.
"""

from __future__ import annotations

from typing import Any

import torch

_BLOCK_ELEMENTS = 1 << 18  # CPU: 1 MiB of float32 per block, two buffers stay in a 2 MiB L2
_DEVICE_BLOCK_ELEMENTS = 1 << 24  # GPUs: 64 MiB blocks, so kernel launches don't dominate


def _rows_per_block(num_classes: int, device: torch.device) -> int:
    elements = _BLOCK_ELEMENTS if device.type == "cpu" else _DEVICE_BLOCK_ELEMENTS
    return max(1, elements // max(1, num_classes))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _Workspace:
    """Compute-dtype buffers of one block, allocated on first use and reused by every block.

    Fresh (rows, C) temporaries per block cost page faults whenever the allocator hands their
    memory back to the system between blocks; a few reused buffers cost one allocation each.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.cols = x.shape[1]
        self.rows = max(1, min(x.shape[0], _rows_per_block(self.cols, x.device)))
        self.dtype, self.device = _compute_dtype(x), x.device
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int) -> torch.Tensor:
        """The buffer ``name`` cut to ``rows`` rows (contents undefined)."""
        buf = self._buffers.get(name)
        if buf is None:
            buf = torch.empty(self.rows, self.cols, dtype=self.dtype, device=self.device)
            self._buffers[name] = buf
        return buf[:rows]


def _transform(
    x: torch.Tensor, softcap: float | None, inv_temp: float, ws: _Workspace
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z, t)``: ``z = softcap * tanh(x / softcap) * inv_temp`` in the compute dtype, ``t`` the
    tanh (``None`` without a cap), both in ``ws``'s buffers. ``z`` is ``x`` itself when nothing
    changes it."""
    rows = x.shape[0]
    if softcap is not None:
        t = _tanh_into(x, softcap, ws.get("t", rows), ws.get("z", rows))
        return torch.mul(t, softcap * inv_temp, out=ws.get("z", rows)), t
    if x.dtype == ws.dtype and inv_temp == 1.0:
        return x, None
    z = ws.get("z", rows).copy_(x)
    return (z.mul_(inv_temp) if inv_temp != 1.0 else z), None


def _tanh_into(
    x: torch.Tensor, softcap: float, out: torch.Tensor, tmp: torch.Tensor
) -> torch.Tensor:
    """``tanh(x / softcap)`` written to ``out`` (``tmp``: scratch of the same shape).

    In float32 on the CPU as ``e / (e + 2)`` with ``e = expm1(2 u)``, ``u`` clamped to
    [-20, 20] where tanh is +-1 to float32 precision: within 1.5 ulp of float64 (``torch.tanh``:
    0.5 ulp) and several times faster there than PyTorch's CPU ``tanh``; elsewhere ``torch.tanh``.
    """
    out.copy_(x)
    if out.dtype != torch.float32 or out.device.type != "cpu":
        return out.div_(softcap).tanh_()
    e = out.mul_(2.0 / softcap).clamp_(-20.0, 20.0).expm1_()
    return e.div_(torch.add(e, 2.0, out=tmp))


def _columns(x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` as ``(N, 1)``; ``(N, K)`` unchanged."""
    return x[:, None] if x.dim() == 1 else x


def _weighted(logp_y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``-sum_j a_ij log p_{i, y_ij}`` per row; one column: ``-a_i log p_{i, y_i}`` as is."""
    if a.shape[1] == 1:
        return logp_y.squeeze(1).mul_(a.squeeze(1).neg())
    # a zero weight on a class ruled out (-inf) adds 0, not 0 * (-inf)
    terms = torch.where(a == 0, torch.zeros_like(logp_y), logp_y.mul_(a))
    return terms.sum(1).neg_()


class FusedCrossEntropy(torch.autograd.Function):
    """``(ce, lse)`` per row; see the module docstring for the formula.

    ``lse`` is computed only when ``want_lse`` (otherwise an empty tensor, not differentiable).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        ids: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor | None,
        w: torch.Tensor | None,
        softcap: float | None,
        inv_temp: float,
        want_lse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        ws = _Workspace(x)
        ids, a = _columns(ids), _columns(a)
        lse = torch.empty(n if want_lse else 0, dtype=ws.dtype, device=x.device)
        ce = torch.empty(n, ids.shape[1], dtype=ws.dtype, device=x.device)
        smooth = torch.empty(n if b is not None else 0, dtype=ws.dtype, device=x.device)
        for r0 in range(0, n, ws.rows):
            r1 = min(n, r0 + ws.rows)
            z, _ = _transform(x[r0:r1], softcap, inv_temp, ws)
            logp = torch.ops.aten._log_softmax.out(z, -1, False, out=ws.get("logp", r1 - r0))
            torch.gather(logp, 1, ids[r0:r1], out=ce[r0:r1])
            if want_lse:  # lse at the row's largest entry: z_m - log p_m, log p_m in [-log C, 0]
                torch.sub(z.amax(-1), logp.amax(-1), out=lse[r0:r1])
            if b is not None:  # sum_k w_k (lse - z_k) = -sum_k w_k log p_k
                if w is None:
                    torch.sum(logp, -1, out=smooth[r0:r1])
                else:
                    torch.mv(logp, w, out=smooth[r0:r1])
        ce = _weighted(ce, a)
        if b is not None:
            ce.sub_(smooth.mul_(b))
        if not want_lse:
            ctx.mark_non_differentiable(lse)
        ctx.save_for_backward(x, ids, a, b, w)
        ctx.softcap, ctx.inv_temp = softcap, inv_temp
        return ce, lse

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_ce: torch.Tensor | None, g_lse: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        x, ids, a, b, w = ctx.saved_tensors
        softcap, inv_temp = ctx.softcap, ctx.inv_temp
        if not ctx.needs_input_grad[0]:
            return (None,) * 8
        n, c = x.shape
        ws = _Workspace(x)
        dtype = ws.dtype
        g_ce = torch.zeros(n, dtype=dtype, device=x.device) if g_ce is None else g_ce.to(dtype)
        # d ce_i / d z_ik = (a_i + b_i W) p_ik - a_i [k = y_i] - b_i w_k;  d lse_i / d z_ik = p_ik
        total_w = float(c) if w is None else w.sum()
        coef_p = g_ce * a.sum(1)
        coef_w = None
        if b is not None:
            coef_w = g_ce * b
            coef_p = coef_p + coef_w * total_w
        if g_lse is not None and g_lse.numel():
            coef_p = coef_p + g_lse.to(dtype)
        coef_y = (g_ce[:, None] * a).neg()
        grad = torch.empty_like(x)
        same = x.dtype == dtype and softcap is None and inv_temp == 1.0
        for r0 in range(0, n, ws.rows):
            r1 = min(n, r0 + ws.rows)
            z, t = _transform(x[r0:r1], softcap, inv_temp, ws)
            # the softmax straight into the gradient when no conversion is needed
            out = grad[r0:r1] if same else ws.get("p", r1 - r0)
            p = torch.ops.aten._softmax.out(z, -1, False, out=out)
            p.mul_(coef_p[r0:r1, None])
            p.scatter_add_(1, ids[r0:r1], coef_y[r0:r1])
            if coef_w is not None:
                if w is None:
                    p.sub_(coef_w[r0:r1, None])
                else:
                    p.addr_(coef_w[r0:r1], w, alpha=-1.0)
            if t is not None:  # dz/dx = inv_temp * (1 - tanh(x / softcap)^2)
                p.mul_(t.square_().neg_().add_(1.0).mul_(inv_temp))
            elif inv_temp != 1.0:
                p.mul_(inv_temp)
            if not same:
                grad[r0:r1].copy_(p)
        return grad, None, None, None, None, None, None, None
