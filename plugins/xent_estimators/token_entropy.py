"""Per-token entropy of softmax distributions, from logits or chunked from hidden states."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, NotAvailableError, XentError, validate

from ._common import check_finite, finish, log_base, to_tensor, unit_name

#: rows per chunk of the logits path: bounds the temporaries to about this many elements
_CHUNK_ELEMENTS = 1 << 22


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_scaling(softcap: float | None, logit_scale: float) -> tuple[float | None, float]:
    softcap = validate.optional(validate.positive, "softcap", softcap)
    logit_scale = validate.number("logit_scale", logit_scale)
    if logit_scale == 0.0:
        raise BadParameterError("logit_scale must be nonzero (0 makes every token uniform)")
    return softcap, logit_scale


def entropy_from_logits(
    logits: torch.Tensor, *, softcap: float | None = None, logit_scale: float = 1.0
) -> torch.Tensor:
    """Entropy in nats of ``softmax(cap(logit_scale * logits))`` over the last axis.

    Returns shape ``logits.shape[:-1]`` in float32 (float64 for float64 input). Computed as
    ``H = log sum e^z' - sum softmax(z') z'`` with ``z' = z - max z`` (no cancellation for
    peaked rows), in row chunks through two reused scratch buffers.
    """
    softcap, logit_scale = _check_scaling(softcap, logit_scale)
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise BadInputError(
            f"logits must have shape (..., V) with V >= 1; got {tuple(logits.shape)}"
        )
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    dtype = _compute_dtype(flat)
    out = torch.empty(flat.shape[0], dtype=dtype, device=flat.device)
    rows = max(1, _CHUNK_ELEMENTS // max(1, flat.shape[-1]))
    shape = (min(rows, flat.shape[0]), flat.shape[-1])
    scratch = [torch.empty(shape, dtype=dtype, device=flat.device) for _ in range(2)]
    with torch.no_grad():
        for start in range(0, flat.shape[0], rows):
            z = flat[start : start + rows].to(dtype)
            if logit_scale != 1.0:
                z = z * logit_scale
            if softcap is not None:
                # a masked logit stays masked (-inf), not capped to -softcap
                z = torch.where(torch.isneginf(z), z, torch.tanh(z / softcap) * softcap)
            zs, e = (buf[: z.shape[0]] for buf in scratch)
            out[start : start + rows] = _chunk_entropy(z, zs, e)
    return out.reshape(lead).clamp_min(0)


def _chunk_entropy(z: torch.Tensor, zs: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of ``z`` (rows x V, compute dtype, no NaN/+inf); ``zs``, ``e``:
    scratch buffers of ``z``'s shape.

    ``H = log s - sum_k e_k z'_k / s`` with ``z' = z - max z <= 0``, ``e = exp(z')``,
    ``s = sum_k e_k``: both terms are >= 0 and each sum has terms of one sign, so peaked rows
    lose nothing to cancellation. A masked logit (``-inf``: e = 0) makes its row's sum NaN
    (0 * -inf); only such rows are redone with those terms set to 0, or refused when a row is
    ``-inf`` everywhere.
    """
    top = z.amax(dim=-1, keepdim=True)
    torch.sub(z, top, out=zs)
    torch.exp(zs, out=e)
    total = e.sum(dim=-1)
    h = torch.log(total).sub_(e.mul_(zs).sum(dim=-1).div_(total))
    redo = torch.isnan(h)
    if bool(redo.any()):
        if bool(torch.isneginf(top[redo]).any()):
            raise BadInputError(
                "a row of logits is -inf everywhere: its softmax (and entropy) is undefined"
            )
        zr = zs[redo]
        er = torch.exp(zr)
        h[redo] = torch.log(total[redo]) - (er * zr.masked_fill(er == 0, 0.0)).sum(-1) / total[redo]
    return h


def entropy_from_hidden(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    kernel: str = "cce-torch",
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """Entropy in nats per token of ``softmax(cap(logit_scale * (hidden @ classifier.T + bias)))``.

    ``hidden`` (..., D), ``classifier`` (V, D), ``bias`` (V,). The work is done by the registered
    kernel's ``token_entropy`` (chunked: the (tokens x V) logits are never formed). When the
    kernel has a ``chunk_elements`` parameter (``cce-torch`` does), ``chunk_elements`` sets its
    logits budget per chunk; other kernels keep their own. Returns ``hidden.shape[:-1]`` in float32.
    """
    import xent_core

    softcap, logit_scale = _check_scaling(softcap, logit_scale)
    if hidden.ndim < 1 or classifier.ndim != 2 or hidden.shape[-1] != classifier.shape[1]:
        raise BadInputError(
            f"hidden (..., D) and classifier (V, D) must share D; got {tuple(hidden.shape)} and "
            f"{tuple(classifier.shape)}"
        )
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != classifier.shape[0]):
        raise BadInputError(
            f"bias must have shape (V,) = ({classifier.shape[0]},); got {tuple(bias.shape)}"
        )
    if hidden.device != classifier.device or (bias is not None and bias.device != hidden.device):
        raise BadInputError("hidden, classifier and bias must be on the same device")
    try:
        params = {}
        if (
            chunk_elements is not None
            and "chunk_elements" in xent_core.info(kernel, "kernel").param_names
        ):
            params["chunk_elements"] = int(chunk_elements)
        k = xent_core.kernel(kernel, **params)
    except XentError as exc:
        raise NotAvailableError(
            f"token-entropy from hidden states needs the kernel {kernel!r} (plugin cce): {exc}"
        ) from exc
    ok, reason = k.available()
    if not ok:
        raise NotAvailableError(f"kernel {kernel!r} is not available here: {reason}")
    lead = hidden.shape[:-1]
    flat = hidden.reshape(-1, hidden.shape[-1])
    if flat.shape[0] == 0:
        return torch.zeros(lead, dtype=torch.float32, device=hidden.device)
    with torch.no_grad():
        h = k.token_entropy(flat, classifier, bias, softcap=softcap, logit_scale=logit_scale)
    return h.reshape(lead).float().clamp_min(0)


class TokenEntropy:
    """Token entropy: mean entropy of the softmax rows, from logits or from hidden states (nats).

    Per token ``n`` with logits ``z_n = cap(logit_scale * l_n)`` (``cap(z) = softcap tanh(z /
    softcap)`` if set) and ``p_n = softmax(z_n)``,

        H_n = -sum_v p_nv log p_nv = logsumexp(z_n) - sum_v p_nv z_nv,

    and the estimate is the mean of ``H_n`` over the tokens (``mask`` selects tokens);
    ``details["per_token"]`` holds every ``H_n``. Inputs: ``est(logits)`` with logits (..., V), or
    ``est(hidden, classifier)`` / ``est(hidden=..., classifier=..., bias=...)`` with hidden
    (..., D), classifier (V, D): then the kernel's chunked ``token_entropy`` computes ``H_n``
    without ever forming the (tokens x V) logits. fp16/bf16 inputs are computed in fp32. Units:
    nats by default (``base``). See ``RollingEntropy`` for a streaming window over decoding steps.

    Args:
        base: logarithm base (default e).
        softcap: tanh soft-capping of the logits (default None).
        logit_scale: multiplies the logits before capping (default 1.0; 1/temperature).
        kernel: kernel used for the hidden-state path (default ``"cce-torch"``).
        chunk_elements: logits elements per chunk handed to a kernel that takes that parameter
            (default 4194304 = 2^22: 16 MiB of fp32 logits per buffer; entropy needs no gradient,
            so small chunks cost little speed); None keeps the kernel's own default.

    Citation: Shannon, "A Mathematical Theory of Communication", Bell System Technical Journal
    27 (1948); Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009 (the chunked linear-softmax computation).
    """

    citation = (
        ("A Mathematical Theory of Communication", "Bell Syst. Tech. J. 27 (1948)"),
        ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009"),
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "sums"}

    def __init__(
        self,
        base: float = math.e,
        softcap: float | None = None,
        logit_scale: float = 1.0,
        kernel: str = "cce-torch",
        chunk_elements: int | None = 4194304,
    ) -> None:
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)
        self.softcap, self.logit_scale = _check_scaling(softcap, logit_scale)
        if not isinstance(kernel, str):
            raise BadParameterError(f"kernel must be a kernel name, got {kernel!r}")
        self.kernel = kernel
        self.chunk_elements = validate.optional(
            validate.integer, "chunk_elements", chunk_elements, low=1
        )

    def per_token(
        self,
        x: Any = None,
        y: Any = None,
        *,
        logits: Any = None,
        hidden: Any = None,
        classifier: Any = None,
        bias: Any = None,
    ) -> tuple[torch.Tensor, str]:
        """Entropies per token (in ``base``) and the path used (``logits`` or ``hidden``)."""
        if x is not None:
            if logits is not None or hidden is not None:
                raise BadInputError("pass the data once: positionally or as logits=/hidden=")
            if y is None and classifier is None:
                logits = x
            else:
                hidden = x
        if y is not None:
            if classifier is not None:
                raise BadInputError("classifier given twice (positionally and by keyword)")
            classifier = y
        if (logits is None) == (hidden is None):
            raise BadInputError(
                "token-entropy needs either logits (..., V) or hidden (..., D) with classifier (V, D)"
            )
        if logits is not None:
            if classifier is not None or bias is not None:
                raise BadInputError("classifier/bias only go with hidden states, not with logits")
            t = _as_float_tensor(logits, "logits", allow_neg_inf=True)
            h = entropy_from_logits(t, softcap=self.softcap, logit_scale=self.logit_scale)
            path = "logits"
        else:
            if classifier is None:
                raise BadInputError("hidden states need a classifier (V, D)")
            hid = _as_float_tensor(hidden, "hidden")
            cls = _as_float_tensor(classifier, "classifier")
            b = None if bias is None else _as_float_tensor(bias, "bias")
            if cls.dtype != hid.dtype:
                cls = cls.to(hid.dtype)
            if b is not None and b.dtype != hid.dtype:
                b = b.to(hid.dtype)
            h = entropy_from_hidden(
                hid,
                cls,
                b,
                softcap=self.softcap,
                logit_scale=self.logit_scale,
                kernel=self.kernel,
                chunk_elements=self.chunk_elements,
            )
            path = f"hidden ({self.kernel})"
        return h / self._log_base, path

    def __call__(
        self,
        x: Any = None,
        y: Any = None,
        *,
        logits: Any = None,
        hidden: Any = None,
        classifier: Any = None,
        bias: Any = None,
        mask: Any = None,
        details: bool = False,
    ) -> Any:
        h, path = self.per_token(
            x, y, logits=logits, hidden=hidden, classifier=classifier, bias=bias
        )
        if mask is not None:
            mk = to_tensor(mask, "mask", torch.bool).to(h.device)
            if mk.shape != h.shape:
                raise BadInputError(
                    f"mask must have the token shape {tuple(h.shape)}; got {tuple(mk.shape)}"
                )
            sel = h[mk]
        else:
            sel = h.reshape(-1)
        if sel.numel() == 0:
            raise BadInputError("no tokens to average (empty input or an all-False mask)")
        value = float(sel.double().mean())
        info = {"per_token": h, "path": path, "tokens": int(sel.numel()), "units": self.units}
        return finish(value, info, details)


def _as_float_tensor(x: Any, name: str, allow_neg_inf: bool = False) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not t.is_floating_point():
            t = t.float()
    else:
        t = to_tensor(x, name, torch.float64)
        if t.dtype != torch.float64:
            t = t.float()
    if allow_neg_inf and t.numel() and bool(torch.isneginf(t).any()):
        # -inf is a masked logit (top-k/top-p filtering, padded vocabulary): probability 0
        if bool(torch.isnan(t).any() | torch.isposinf(t).any()):
            raise BadInputError(
                f"{name} contains NaN or +inf values; only -inf (masked) is allowed"
            )
        return t
    check_finite(t, name)
    return t
