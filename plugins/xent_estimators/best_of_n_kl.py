"""best-of-n-kl: exact KL of the best-of-n policy on a finite outcome set, and the tilted optimum."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, BadParameterError, validate

from ._common import all_finite, finish, to_host, to_tensor


def _kl(q: torch.Tensor, p: torch.Tensor) -> float:
    """KL(q || p) in nats with 0 log 0 = 0 (q is zero wherever p is)."""
    terms = q * (q.log() - p.log())  # NaN or -inf where q = 0: those terms are 0
    return float(torch.where(q > 0, terms, torch.zeros((), dtype=terms.dtype)).sum())


def _group_kl(mass: torch.Tensor, n: int) -> torch.Tensor:
    """KL(pi_bon || p) from the masses of the reward groups in increasing reward (differentiable)."""
    cdf = mass.cumsum(0)
    below = cdf - mass
    pi = cdf.pow(n) - below.pow(n)
    pos = mass > 0
    return (pi[pos] * (pi[pos].log() - mass[pos].log())).sum()


def kl_standard_error(mass: torch.Tensor, n: int, m: int) -> float:
    """Delta-method standard error of the plug-in KL from ``m`` draws with group frequencies ``mass``.

    The plug-in is ``f(q_hat)`` with ``q_hat`` multinomial: ``Var ~ (sum q g^2 - (sum q g)^2) / m``
    with ``g = grad f(q)`` (autograd, float64). Meaningful when the groups are few (K << m).
    """
    q = mass.detach().to(torch.float64).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_group_kl(q, n), q)
    q = q.detach()
    var = float((q * g * g).sum() - (q * g).sum() ** 2) / m
    return math.sqrt(max(var, 0.0))


def tilted(p: torch.Tensor, r: torch.Tensor, lam: float) -> torch.Tensor:
    """``phi_lam = p e^{lam r} / Z(lam)``, normalised in log space."""
    logits = torch.where(p > 0, p.log() + lam * r, torch.full_like(p, -math.inf))
    return torch.softmax(logits, dim=0)


class BestOfNKL:
    """best-of-n-kl: exact KL(pi_bon || p) of best-of-n sampling over a finite outcome set (nats).

    Outcomes with probabilities ``p`` and rewards ``r`` are grouped by equal reward; with ``F`` the
    CDF of the reward under ``p``, a tie group ``G`` gets

        pi_bon(G) = F(G)^n - F(G^-)^n,   split inside G in proportion to p,

    and the value is ``KL(pi_bon || p)``, never above the folklore ``log n - (n-1)/n`` (only an
    upper bound, attained without ties as the outcome set grows). ``details``: ``policy``,
    ``kl``, ``bound``, ``reward`` (E_bon[r]), ``base_reward`` (E_p[r]) and ``win_rate``
    (P[r(Y) > r(Y')] + P[r(Y) = r(Y')]/2 for Y ~ pi_bon, Y' ~ p; n/(n+1) without ties).

    With ``lam`` or ``kl_budget`` the details also hold the KL-constrained optimum
    ``phi_lam = p e^{lam r}/Z(lam)`` (``tilted_policy``, ``tilted_kl``, ``tilted_reward``,
    ``lam``); ``kl_budget`` solves KL(phi_lam || p) = budget for lam >= 0 by bisection (the budget
    must be below -log p(top reward group)). Call ``est(probs, rewards)``; ``from_logprobs``
    reads the first input as log-probabilities. Cost O(m log m) time, O(m) memory, on the input's
    device in float64.

    Monte Carlo (``from_samples=True``, for sequences and other supports too large to list):
    ``pi_bon(y) / p(y)`` depends on y only through r(y), so KL(pi_bon || p) equals the same KL
    between the reward's distributions. ``est(rewards)`` takes the rewards of m outcomes sampled
    from p and applies the exact formula to their empirical distribution (a plug-in estimate;
    everything above, tilted optimum included, refers to it); ``details['standard_error']`` is
    its delta-method standard error (meaningful for few distinct rewards, e.g. pass/fail or
    graded scores: with all-distinct, continuous rewards the exact value is the bound itself).

    Args:
        n: number of samples best-of-n draws (an integer >= 1).
        lam: inverse temperature of the tilted optimum to report (default None: not computed).
        kl_budget: KL budget in nats whose tilted optimum to report (default None); excludes lam.
        from_logprobs: the first input holds log-probabilities instead of probabilities.
        from_samples: the only input holds rewards of outcomes sampled from p (Monte Carlo).

    Citations: Beirami et al., "Theoretical guarantees on the best-of-n alignment policy"
    (arXiv:2401.01879); Yang et al., "Asymptotics of Language Model Alignment" (arXiv:2404.01730).
    """

    citation = (
        ("Theoretical guarantees on the best-of-n alignment policy", "arXiv:2401.01879"),
        ("Asymptotics of Language Model Alignment", "arXiv:2404.01730"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        n: int = 2,
        lam: float | None = None,
        kl_budget: float | None = None,
        from_logprobs: bool = False,
        from_samples: bool = False,
    ) -> None:
        self.n = validate.integer("n", n, low=1)
        self.lam = validate.optional(validate.number, "lam", lam)
        self.kl_budget = validate.optional(validate.nonnegative, "kl_budget", kl_budget)
        if self.lam is not None and self.kl_budget is not None:
            raise BadParameterError("give lam or kl_budget, not both")
        self.from_logprobs = validate.flag("from_logprobs", from_logprobs)
        self.from_samples = validate.flag("from_samples", from_samples)
        if self.from_samples and self.from_logprobs:
            raise BadParameterError("from_samples reads rewards only; it excludes from_logprobs")
        self.units = "nats"

    @staticmethod
    def example_inputs(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (11,) summing to 1 and rewards with ties (11,), for the sweep."""
        probs = torch.softmax(torch.randn(11, generator=generator, dtype=torch.float64), 0)
        return probs, torch.randint(0, 4, (11,), generator=generator).double()

    def _samples_inputs(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        if y is not None:
            raise BadInputError(
                "best-of-n-kl with from_samples takes one input: the rewards of samples from p"
            )
        r = to_tensor(x, "rewards").reshape(-1)
        if r.numel() == 0:
            raise BadInputError("rewards is empty: give the rewards of samples drawn from p")
        if not all_finite(r):
            raise BadInputError("rewards contain NaN or inf")
        values, counts = torch.unique(r, sorted=True, return_counts=True)
        return counts.to(torch.float64) / r.numel(), values, r.numel()

    def _inputs(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if y is None:
            raise BadInputError("best-of-n-kl needs probabilities (x) and rewards (y)")
        p = to_tensor(x, "probs").reshape(-1)
        r = to_tensor(y, "rewards").reshape(-1).to(p.device)
        if p.numel() != r.numel() or p.numel() == 0:
            raise BadInputError(
                f"probs has {p.numel()} entries and rewards {r.numel()}: one per outcome"
            )
        if not all_finite(r):
            raise BadInputError("rewards contain NaN or inf")
        if self.from_logprobs:
            if bool(torch.isnan(p).any()) or bool((p == math.inf).any()):
                raise BadInputError("logprobs contain NaN or +inf")
            p = p.exp()
        low, high = torch.aminmax(p)  # one pass; NaN propagates to both
        if not bool((low >= 0) & (high < math.inf)):
            raise BadInputError("probs must be finite and >= 0")
        total = p.sum()
        if abs(float(total) - 1.0) > 1e-6:
            raise BadInputError(f"probs must sum to 1; they sum to {float(total):.8g}")
        return p / total, r

    def _solve(self, p: torch.Tensor, r: torch.Tensor, budget: float) -> float:
        top = p[r == r[p > 0].max()].sum()
        limit = -float(top.log())
        if budget >= limit:
            raise BadInputError(
                f"kl_budget {budget:g} is not below the largest reachable KL {limit:.6g} "
                "(-log p of the best reward group)"
            )
        lo, hi = 0.0, 1.0
        while _kl(tilted(p, r, hi), p) < budget:
            hi *= 2.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if _kl(tilted(p, r, mid), p) < budget:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * max(1.0, hi):
                break
        return 0.5 * (lo + hi)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        m = 0
        if self.from_samples:
            p, r, m = self._samples_inputs(x, y)
        else:
            p, r = self._inputs(x, y)
        group, num_groups = _reward_groups(r)
        mass = torch.zeros(num_groups, dtype=p.dtype, device=p.device)
        mass.index_add_(0, group, p)
        cdf = mass.cumsum(0).clamp_max(1.0)
        below = (cdf - mass).clamp_min(0.0)
        pi_group = cdf.pow(self.n) - below.pow(self.n)
        # pi / p is pi_G / mass_G on every outcome of group G: the KL is a sum over groups
        kl = _kl(pi_group, mass)
        if not details and self.kl_budget is None:  # a budget is still checked without details
            return kl
        share = torch.where(mass[group] > 0, p / mass[group], torch.zeros_like(p))
        pi = pi_group[group] * share
        win = float((pi_group * (below + 0.5 * mass)).sum())
        info: dict[str, Any] = {
            "policy": to_host(pi),
            "kl": kl,
            "bound": math.log(self.n) - (self.n - 1) / self.n,
            "reward": float((pi * r).sum()),
            "base_reward": float((p * r).sum()),
            "win_rate": win,
        }
        if self.from_samples:
            info["standard_error"] = kl_standard_error(p, self.n, m)
            info["samples"] = m
            info["rewards"] = to_host(r)
        lam = self.lam if self.kl_budget is None else self._solve(p, r, self.kl_budget)
        if lam is not None:
            phi = tilted(p, r, lam)
            info.update(
                lam=lam,
                tilted_policy=to_host(phi),
                tilted_kl=_kl(phi, p),
                tilted_reward=float((phi * r).sum()),
            )
        return finish(kl, info, details)


def _reward_groups(r: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Index of each outcome's reward among the distinct rewards in increasing order, and how
    many there are (``torch.unique(sorted=True, return_inverse=True)`` from one sort)."""
    if r.device.type == "cpu":  # numpy's sort is several times faster than torch's here
        order = torch.from_numpy(np.argsort(r.numpy()))
        values = r[order]
    else:
        values, order = torch.sort(r)
    new = torch.ones_like(values, dtype=torch.long)
    torch.ne(values[1:], values[:-1], out=new[1:])
    ranks = new.cumsum_(0).sub_(1)
    group = torch.empty_like(ranks).scatter_(0, order, ranks)
    return group, int(ranks[-1]) + 1
