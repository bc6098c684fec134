"""min-k-prob: Min-K% Prob and Min-K%++ pretraining-data detection scores."""

from __future__ import annotations

from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import finish, to_host, to_tensor
from ._detect import (
    as_rows,
    check_logprobs,
    counts_per_row,
    k_smallest_mean,
    row_mask,
    same_shape,
    unpack_moments,
)

#: an input given by name: ("mu" | "entropy" | "sigma" | "var_logp", value)
_Given = tuple[str, Any]

#: a variance this far below 0 is rounding (clamped to 0); further below, an error
_VAR_TOLERANCE = 1e-6


def _from_logits(logits: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logp_target, mu, var)`` per token from (..., T, V) logits, in float64."""
    z = to_tensor(logits, "logits")
    if z.ndim not in (2, 3) or z.shape[-1] < 1:
        raise BadInputError(f"logits must have shape (T, V) or (B, T, V); got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise BadInputError("logits contain NaN or inf")
    if targets is None:
        raise BadInputError("logits need targets: the token id each row predicts")
    y = targets.detach() if isinstance(targets, torch.Tensor) else to_tensor(targets, "targets")
    if tuple(y.shape) != tuple(z.shape[:-1]):
        raise BadInputError(
            f"targets have shape {tuple(y.shape)}, expected {tuple(z.shape[:-1])} (one per row)"
        )
    if y.dtype == torch.bool or (
        y.is_floating_point() and not bool((torch.isfinite(y) & (y == y.round())).all())
    ):
        raise BadInputError("targets must be integer token ids")
    y = y.to(device=z.device, dtype=torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z.shape[-1]):
        raise BadInputError(f"targets must lie in [0, {z.shape[-1]}) (the vocabulary of logits)")
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    var = (p * (logp - mu[..., None]).square()).sum(-1)  # two passes: no E[x^2] - E[x]^2
    return logp.gather(-1, y[..., None])[..., 0], mu, var


class MinKProb:
    """min-k-prob: Min-K% Prob or Min-K%++, the mean of a document's k% least likely tokens.

    With target log-probs ``l_t = log p(x_t | x_<t)`` of a document of T tokens and ``n = max(1,
    int(k T))`` (the float product truncated, as the reference code does):

        Min-K%   : s = mean of the n smallest l_t
        Min-K%++ : s = mean of the n smallest z_t,  z_t = (l_t - mu_t) / sigma_t,
                   mu_t = sum_v p_v log p_v = -H_t,  sigma_t^2 = sum_v p_v (log p_v - mu_t)^2

    under the model's next-token distribution ``p`` at position t. Larger ``s`` means more
    likely a member (``sign='nonmember-high'`` returns ``-s``, the DC-PDD code's convention). A
    uniform row has ``sigma_t = 0`` and ``z_t = 0/0``: rows with ``sigma_t <= sigma_floor`` get
    ``z_t = 0`` (``zero_sigma='zero'``: the target is exactly as likely as the average token) or
    are left out (``'drop'``, the token count shrinks); never NaN.

    Call ``est(token_logprobs, mask=None, entropy=..., var_logp=...)`` with (T,) or (B, T)
    inputs (``mu=`` and ``sigma=`` instead of ``entropy=``, ``var_logp=``), or pass the
    ``logprob-moments`` kernel's output as ``token_logprobs`` (no logits at vocabulary scale),
    or ``est(logits=(T, V) or (B, T, V), targets=...)`` (row t must predict ``targets[t]``:
    ``logits[:-1]``, ``ids[1:]`` for a causal LM). Min-K% needs only ``token_logprobs``.
    Returns the mean score over documents; ``details``: ``scores`` (B,), ``counted`` (B,),
    ``zero_sigma_tokens``. Cost: O(B T log T) time, O(B T) memory (logits: O(B T V)), on the
    input's device in float64.

    Args:
        k: share of the least likely tokens averaged, in (0, 1] (default 0.2).
        variant: 'min-k' (Min-K% Prob) or 'min-k++' (Min-K%++).
        sign: 'member-high' (s) or 'nonmember-high' (-s).
        zero_sigma: Min-K%++ tokens with sigma <= sigma_floor: 'zero' (z = 0) or 'drop'.
        sigma_floor: sigma at or below which a row counts as uniform (default 1e-6).

    Citations: Shi et al., "Detecting Pretraining Data from Large Language Models"
    (arXiv:2310.16789); Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training
    Data from Large Language Models" (arXiv:2404.02936).
    """

    citation = (
        ("Detecting Pretraining Data from Large Language Models", "arXiv:2310.16789"),
        (
            "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language "
            "Models",
            "arXiv:2404.02936",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        k: float = 0.2,
        variant: str = "min-k",
        sign: str = "member-high",
        zero_sigma: str = "zero",
        sigma_floor: float = 1e-6,
    ) -> None:
        self.k = validate.number("k", k, low=0.0, high=1.0, low_open=True)
        self.variant = validate.choice("variant", variant, ("min-k", "min-k++"))
        self.sign = validate.choice("sign", sign, ("member-high", "nonmember-high"))
        self.zero_sigma = validate.choice("zero_sigma", zero_sigma, ("zero", "drop"))
        self.sigma_floor = validate.nonnegative("sigma_floor", sigma_floor)
        self.units = "nats" if self.variant == "min-k" else "standard deviations"

    @staticmethod
    def example_inputs(generator: torch.Generator) -> tuple[torch.Tensor]:
        """Target log-probs of one document of 31 tokens, for the sweep."""
        return (-3 * torch.rand(31, generator=generator, dtype=torch.float64),)

    def _moments(
        self, x: Any, entropy: Any, var_logp: Any, mu: Any, sigma: Any, logits: Any, targets: Any
    ) -> tuple[Any, _Given | None, _Given | None]:
        """``(logp, mu, sigma)`` inputs, whichever way they were given (moments may be None)."""
        if logits is not None:
            if x is not None:
                raise BadInputError("pass token_logprobs or logits=, not both")
            logp, m, var = _from_logits(logits, targets)
            return logp, ("mu", m), ("var_logp", var)
        if targets is not None:
            raise BadInputError("targets= goes with logits=; token_logprobs are already targeted")
        x, k_ent, k_var = unpack_moments(x)
        if k_ent is not None:
            if any(v is not None for v in (entropy, var_logp, mu, sigma)):
                raise BadInputError("the logprob-moments output already holds the moments")
            entropy, var_logp = k_ent, k_var
        if entropy is not None and mu is not None:
            raise BadInputError("pass entropy= or mu= (mu = -entropy), not both")
        if var_logp is not None and sigma is not None:
            raise BadInputError("pass var_logp= or sigma= (sigma = sqrt(var_logp)), not both")
        given_mu: _Given | None = ("mu", mu) if mu is not None else None
        if entropy is not None:
            given_mu = ("entropy", entropy)
        given_sigma: _Given | None = ("sigma", sigma) if sigma is not None else None
        if var_logp is not None:
            given_sigma = ("var_logp", var_logp)
        return x, given_mu, given_sigma

    def __call__(
        self,
        x: Any = None,
        y: Any = None,
        *,
        mask: Any = None,
        entropy: Any = None,
        var_logp: Any = None,
        mu: Any = None,
        sigma: Any = None,
        logits: Any = None,
        targets: Any = None,
        details: bool = False,
    ) -> Any:
        if y is not None:
            raise BadInputError(
                "min-k-prob takes one positional input (token_logprobs); pass entropy=, "
                "var_logp= (or mu=, sigma=) by keyword"
            )
        if x is None and logits is None:
            raise BadInputError("min-k-prob needs token_logprobs (or logits= and targets=)")
        x, m_in, s_in = self._moments(x, entropy, var_logp, mu, sigma, logits, targets)
        logp, _ = as_rows(x, "token_logprobs")
        keep = row_mask(mask, logp.shape, logp.device)
        logp = check_logprobs(logp, keep)
        counts_per_row(keep)
        info: dict[str, Any] = {"variant": self.variant, "k": self.k, "sign": self.sign}
        if self.variant == "min-k":
            values = logp
        else:
            values, keep, n_flat = self._z(logp, keep, m_in, s_in)
            info["zero_sigma_tokens"] = n_flat
            if bool((keep.sum(dim=1) == 0).any()):
                doc = int((keep.sum(dim=1) == 0).nonzero()[0])
                raise BadInputError(
                    f"document {doc}: every token has sigma = 0 (uniform rows) and "
                    "zero_sigma='drop' leaves none to score; use zero_sigma='zero'"
                )
        s = k_smallest_mean(values, keep, self.k)
        scores = s if self.sign == "member-high" else -s
        info["scores"] = to_host(scores)
        info["counted"] = keep.sum(dim=1).cpu().numpy()
        return finish(float(scores.mean()), info, details)

    def _z(
        self, logp: torch.Tensor, keep: torch.Tensor, m_in: _Given | None, s_in: _Given | None
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Min-K%++'s z per token, the tokens kept, and how many rows had sigma <= floor."""
        if m_in is None or s_in is None:
            raise BadInputError(
                "min-k++ needs the moments of log p per token: entropy= (or mu=) and var_logp= "
                "(or sigma=), the logprob-moments kernel's output, or logits= and targets="
            )
        name, raw = m_in
        mu = same_shape(to_tensor(raw, name), name, logp, "token_logprobs")
        if name == "entropy":
            mu = -mu
        sname, raw = s_in
        sg = same_shape(to_tensor(raw, sname), sname, logp, "token_logprobs")
        mu_k, sg_k = mu[keep], sg[keep]
        if not bool(torch.isfinite(mu_k).all() & torch.isfinite(sg_k).all()):
            raise BadInputError(f"{name} and {sname} must be finite")
        if mu_k.numel() and float(mu_k.max()) > 1e-6:
            raise BadInputError(f"{name} must be <= 0 for mu (>= 0 for an entropy)")
        if sg_k.numel() and float(sg_k.min()) < (-_VAR_TOLERANCE if sname == "var_logp" else 0):
            raise BadInputError(f"{sname} must be >= 0")
        if sname == "var_logp":
            sg = sg.clamp_min(0).sqrt()
        flat = keep & (sg <= self.sigma_floor)
        safe = torch.where(flat, torch.ones_like(sg), sg)
        z = torch.where(flat, torch.zeros_like(sg), (logp - mu.clamp_max(0)) / safe)
        if self.zero_sigma == "drop":
            keep = keep & ~flat
        return z, keep, int(flat.sum())
