"""Unbiased pass@k from n samples with c correct, stable for any n."""

from __future__ import annotations

from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, validate

from ._common import finish


def pass_at_k(n: int, c: int, k: int) -> float:
    """``1 - C(n - c, k) / C(n, k)`` as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` in log space.

    Never forms a binomial coefficient: the log of the product is a sum of ``log1p(-k / i)``, and
    ``-expm1`` of it keeps the digits of a small pass@k.
    """
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(-np.expm1(np.log1p(-k / i).sum()))


def pass_at_k_table(n: int, k: int) -> np.ndarray:
    """:func:`pass_at_k` for ``c = 0, 1, ..., n`` at once (shape (n + 1,)).

    The log of the product for ``c`` is the running sum of ``log1p(-k / i)`` over
    ``i = n, n - 1, ..., n - c + 1``: every term has the same sign, so the running sum loses
    nothing to cancellation (it agrees with the per-``c`` sum to a few ulp).
    """
    out = np.ones(n + 1, dtype=np.float64)
    out[0] = 0.0
    last = n - k  # the largest c with n - c >= k; above it pass@k is 1
    if last >= 1:
        i = np.arange(n, n - last, -1, dtype=np.float64)
        out[1 : last + 1] = -np.expm1(np.cumsum(np.log1p(-k / i)))
    return out


def _counts(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x  # numpy has no bfloat16
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise BadInputError(f"{name} must form a rectangular array: {exc}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise BadInputError(f"{name} must be integer counts, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise BadInputError(f"{name} must be whole numbers")
    if arr.dtype.kind == "b":
        raise BadInputError(f"{name} must be integer counts, not booleans")
    return np.atleast_1d(arr.astype(np.int64).reshape(-1))


class PassAtK:
    """Unbiased pass@k: chance that k of n samples (c of them correct) contain a correct one.

        pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i),

    averaged over problems. The product form (in log space) never overflows, so n can be in the
    millions. c = 0 gives 0; n - c < k gives 1. The model-side counterpart for a known answer
    probability p is the coverage ``1 - (1 - p)^N`` that ``dco`` and ``pass-at-n`` optimise.

    Call ``est(num_samples, num_correct)``: ``num_samples`` an int or (P,) counts n per problem,
    ``num_correct`` (P,) counts c. Returns the mean pass@k over problems (for the first k when
    ``k`` is a list); ``details`` holds ``per_problem`` (P,) and ``pass_at`` ({k: mean}).

    Args:
        k: samples drawn at evaluation (an int >= 1, or a list of them); k > n is an error.

    Citation: Chen et al., "Evaluating Large Language Models Trained on Code" (arXiv:2107.03374).
    """

    citation = ("Evaluating Large Language Models Trained on Code", "arXiv:2107.03374")
    capabilities = {"devices": ("cpu",)}

    def __init__(self, k: int | list[int] = 1) -> None:
        ks = list(k) if isinstance(k, (list, tuple)) else [k]
        if not ks:
            raise BadParameterError("k must be an integer >= 1 or a non-empty list of them")
        self.k = [validate.integer("k", v, low=1) for v in ks]
        self.units = "probability"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("pass-at-k needs num_samples (x) and num_correct (y)")
        c = _counts(y, "num_correct")
        n = _counts(x, "num_samples")
        if n.size == 1:
            n = np.full_like(c, n[0])
        if n.shape != c.shape:
            raise BadInputError(
                f"num_samples has {n.size} entries but num_correct has {c.size} (one per problem)"
            )
        if c.size == 0:
            raise BadInputError("pass-at-k needs at least one problem")
        if np.any(c < 0) or np.any(c > n):
            raise BadInputError("num_correct must lie in [0, num_samples] for every problem")
        too_big = [k for k in self.k if np.any(k > n)]
        if too_big:
            raise BadInputError(
                f"k = {too_big[0]} exceeds the number of samples (min n = {int(n.min())}): pass@k "
                "is undefined for k > n"
            )
        if n.size and int(n.max()) == int(n.min()) and int(n[0]) <= 4 * c.size + 4096:
            # one n for every problem: a table over c = 0..n, then one lookup per problem
            tables = {k: pass_at_k_table(int(n[0]), k) for k in self.k}
            return self._finish({k: t[c] for k, t in tables.items()}, c.size, details)
        # problems share few distinct (n, c) pairs: evaluate each pair once, then index back
        # (pairs keyed by the ranks of n and c, small integers, so the key cannot overflow)
        un, rank_n = np.unique(n, return_inverse=True)
        uc, rank_c = np.unique(c, return_inverse=True)
        keys, where = np.unique(
            rank_n.reshape(-1) * uc.size + rank_c.reshape(-1), return_inverse=True
        )
        pairs = list(zip(un[keys // uc.size].tolist(), uc[keys % uc.size].tolist(), strict=True))
        table = {
            k: np.array([pass_at_k(ni, ci, k) for ni, ci in pairs])[where.reshape(-1)]
            for k in self.k
        }
        return self._finish(table, c.size, details)

    def _finish(self, table: dict[int, np.ndarray], problems: int, details: bool) -> Any:
        first = table[self.k[0]]
        info = {
            "per_problem": first,
            "pass_at": {k: float(v.mean()) for k, v in table.items()},
            "problems": int(problems),
        }
        return finish(float(first.mean()), info, details)
