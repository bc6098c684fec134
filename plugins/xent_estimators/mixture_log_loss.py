"""mixture-log-loss: Bayesian-mixture (ensemble) log-loss, its regret against the best member,
and the ``-log w`` bound."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import (
    all_finite,
    as_matrix,
    check_finite,
    finish,
    log_base,
    to_host,
    to_tensor,
    unit_name,
)

MODES = ("sequential", "per-example")
STATISTICS = ("log-loss", "regret")


def _weights(w: Any, m: int, device: torch.device) -> torch.Tensor:
    """Prior weights (M,) as float64, checked (finite, >= 0, positive sum) and normalised."""
    if w is None:
        return torch.full((m,), 1.0 / m, dtype=torch.float64, device=device)
    t = to_tensor(w, "weights").to(device)
    if t.dim() != 1 or t.shape[0] != m:
        raise BadInputError(f"weights must have shape ({m},), one per member; got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise BadInputError("weights must be finite and non-negative")
    total = t.sum()
    if not bool(total > 0):
        raise BadInputError("weights sum to 0: at least one member needs a positive weight")
    return t / total


class MixtureLogLoss:
    """mixture-log-loss: Bayesian-mixture (ensemble) log-loss and its regret against the best member.

    ``member_logprobs`` (M, n) holds each member's log-probability of the observed outcomes
    ``lp_mt = log p_m(y_t | ...)`` (log-densities are fine too), ``weights`` (M,) the prior
    (normalised here; uniform when omitted). With ``L_m`` a member's log-loss:

    - ``mode='sequential'`` (the universal-prediction setting: ``lp_mt`` are sequential
      predictive log-probabilities ``log p_m(y_t | y_<t)``)::

          L_mix = -log sum_m w_m exp(sum_t lp_mt),   L_m = -sum_t lp_mt,
          regret = L_mix - min_m L_m,   0 <= regret <= -log w_best

      (``w_best``: the prior weight of the best member); the posterior ``w_m exp(-L_m) / Z`` is
      in ``details``.
    - ``mode='per-example'`` (ensemble NLL)::

          L_mix = mean_t -log sum_m w_m p_m(y_t),   L_m = mean_t -lp_mt,

      with ``L_mix <= sum_m w_m L_m`` (Jensen) and ``L_mix <= L_best - log w_best``; the regret
      against the best member is usually negative here.

    Sums over members are ``logsumexp`` in float64. The bound assumes the sequential predictive;
    it says nothing about averaging i.i.d. per-example losses. ``details``: ``mixture``,
    ``members`` (L_m), ``best_member``, ``best``, ``regret``, ``bound`` (-log w_best),
    ``weights`` (normalised), ``posterior`` (sequential) or ``jensen_bound`` (per-example).
    Cost: O(M n) time and memory.

    Args:
        mode: 'sequential' (cumulative log-loss of the mixture) or 'per-example' (ensemble NLL).
        statistic: returned value: 'log-loss' (the mixture's) or 'regret' (mixture minus best member).
        base: logarithm base of the losses (default e: nats).

    Citation: Feder, Urbanke, Fogel, "The Universality Lens: Why Even Highly Over-Parametrized
    Models Learn Well" (arXiv:2506.07661).
    """

    citation = (
        ("The Universality Lens: Why Even Highly Over-Parametrized Models Learn Well", "arXiv:2506.07661"),
    )  # fmt: skip
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self, mode: str = "sequential", statistic: str = "log-loss", base: float | str = math.e
    ) -> None:
        self.mode = validate.choice("mode", mode, MODES)
        self.statistic = validate.choice("statistic", statistic, STATISTICS)
        self._log_base = log_base(base)
        self.units = unit_name(base)

    def __call__(self, member_logprobs: Any, weights: Any = None, *, details: bool = False) -> Any:
        # NaN/inf in lp make its row sums non-finite: only then is lp itself scanned (same errors)
        lp = as_matrix(member_logprobs, "member_logprobs", min_rows=1, finite=False)
        m = lp.shape[0]
        members = -lp.sum(1) if self.mode == "sequential" else -lp.mean(1)
        if not all_finite(members):
            check_finite(lp, "member_logprobs")
        w = _weights(weights, m, lp.device)
        log_w = torch.log(w)  # -inf for a zero weight: that member drops out of the mixture
        lb = self._log_base
        if self.mode == "sequential":
            joint = log_w - members
            mixture = -torch.logsumexp(joint, 0)
        else:
            mixture = -torch.logsumexp(log_w[:, None] + lp, 0).mean()
        best_member = int(torch.argmin(members))
        best = float(members[best_member])
        if not details:
            value = float(mixture) if self.statistic == "log-loss" else float(mixture) - best
            return finish(value / lb, None, False)
        if self.mode == "sequential":
            extra = {"posterior": to_host(torch.softmax(joint, 0))}
        else:
            extra = {"jensen_bound": float((w * members).sum()) / lb}
        info = {
            "mixture": float(mixture) / lb,
            "members": to_host(members) / lb,
            "best_member": best_member,
            "best": best / lb,
            "regret": (float(mixture) - best) / lb,
            "bound": -math.log(float(w[best_member])) / lb
            if float(w[best_member]) > 0
            else math.inf,
            "weights": to_host(w),
            **extra,
            "units": self.units,
        }
        value = info["mixture"] if self.statistic == "log-loss" else info["regret"]
        return finish(value, info, details)
