"""Chinchilla's approach 2: IsoFLOP parabolas, then power laws N*(C) and D*(C)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, FitError
from xent_core.validate import flag, integer, nonnegative

from .data import as_table, load_columns
from .options import bootstrap_option, level_option, seed_option
from .result import FitResult, summarise_samples


def budgets(C: np.ndarray, rtol: float) -> np.ndarray:
    """Group labels: values of ``C`` within relative ``rtol`` of each other share a budget."""
    order = np.argsort(C, kind="stable")
    labels = np.empty(len(C), dtype=np.int64)
    group, ref = 0, C[order[0]]
    for i in order:
        if abs(C[i] - ref) > rtol * ref:
            group, ref = group + 1, C[i]
        labels[i] = group
    return labels


def parabola_minimum(x: np.ndarray, loss: np.ndarray, w: np.ndarray | None = None) -> float:
    """``argmin`` of the least-squares parabola ``loss ~ c0 + c1 x + c2 x^2`` (NaN if c2 <= 0)."""
    X = np.column_stack([np.ones_like(x), x, x * x])
    if w is not None:
        sw = np.sqrt(w)
        X, loss = X * sw[:, None], loss * sw
    coef, *_ = np.linalg.lstsq(X, loss, rcond=None)
    # a curvature at round-off level (a flat loss) has no minimum either
    flat = 1e-12 * max(float(np.max(np.abs(loss))), 1e-300) / max(float(np.ptp(x)) ** 2, 1e-300)
    if not coef[2] > flat:
        return float("nan")
    return float(-coef[1] / (2.0 * coef[2]))


def ols_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """``(slope, intercept, se_slope, se_intercept)`` of the OLS line ``y ~ intercept + slope x``."""
    n = len(x)
    X = np.column_stack([np.ones(n), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    if n > 2:
        resid = y - X @ coef
        s2 = float(resid @ resid) / (n - 2)
        cov = s2 * np.linalg.inv(X.T @ X)
        se = np.sqrt(np.diag(cov))
    else:
        se = np.array([np.nan, np.nan])
    return float(coef[1]), float(coef[0]), float(se[1]), float(se[0])


def predict_optimal(params: Mapping[str, float], *, C: Any) -> tuple[Any, Any]:
    """``(N_opt, D_opt) = (k_N C^a, k_D C^b)``."""
    C = np.asarray(C, dtype=np.float64)
    n = params["k_N"] * C ** params["a"]
    d = params["k_D"] * C ** params["b"]
    if n.ndim == 0:
        return float(n), float(d)
    return n, d


def compute_optimal_isoflop(params: Mapping[str, float], C: Any) -> tuple[Any, Any]:
    """``compute_optimal(C)``: the fitted ``(N*(C), D*(C))``."""
    return predict_optimal(params, C=C)


def plot_isoflop(result: Any, *, plt: Any, **_: Any) -> Any:
    opt = result.extra["optima"]
    C, n_opt = np.asarray(opt["C"]), np.asarray(opt["N_opt"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    if "N" in result.data:
        labels = budgets(result.data["C"], result.extra["budget_rtol"])
        for g in np.unique(labels):
            m = labels == g
            ax.scatter(result.data["N"][m], result.data["loss"][m], s=10)
        ax.set_xscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("loss")
        ax.set_title("IsoFLOP profiles")
    else:
        ax.axis("off")
    ax = axes[1]
    grid = np.logspace(np.log10(C.min()), np.log10(C.max()) + 1, 50)
    n_fit, d_fit = result.compute_optimal(grid)
    ax.scatter(C, n_opt, s=14, color="C0", label="N* per budget")
    ax.plot(grid, n_fit, color="C0", label=f"N* ~ C^{result.params['a']:.3f}")
    if "D_opt" in opt:
        ax.scatter(C, np.asarray(opt["D_opt"]), s=14, color="C1", label="D* per budget")
        ax.plot(grid, d_fit, color="C1", label=f"D* ~ C^{result.params['b']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOP)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class IsoFLOPLaw:
    """IsoFLOP fit (Chinchilla approach 2): per-budget parabolas, then N*(C), D*(C) power laws.

    For each compute budget ``C`` the loss is fitted by a parabola in ``log N`` (and in
    ``log D``); its minimum gives ``N*`` (``D*``; ``C/(6 N*)`` when there is no ``D`` column).
    Then ordinary least squares in log space gives ``N*(C) = k_N C^a`` and ``D*(C) = k_D C^b``.
    Data that already hold one optimum per budget (columns ``C``, ``N_opt`` and optionally
    ``D_opt``) skip the parabola stage, so the exponent is the OLS slope of log N* on log C.
    Intervals: bootstrap (runs resampled within each budget, or budgets resampled for optima
    data) when ``bootstrap > 0``, else the OLS t-intervals.

    Columns: ``C``, ``N``, ``loss`` and optionally ``D``; or ``C``, ``N_opt`` [, ``D_opt``].
    Fitted parameters: ``a``, ``b`` (exponents of N* and D*), ``k_N``, ``k_D``.

    Args:
        budget_rtol: relative tolerance grouping C values into one budget.
        min_points: fewest runs per budget for its parabola (>= 3).
        bootstrap: number of bootstrap resamples (0: OLS t-intervals).
        seed: random seed of the bootstrap.
        level: coverage of the intervals, in (0, 1).
        progress: show a progress bar during the bootstrap.
    """

    citation = ("Training Compute-Optimal Large Language Models", "arXiv:2203.15556")
    inputs = ("C",)
    law_name = "isoflop"
    target = "loss"

    def __init__(
        self,
        budget_rtol: float = 1e-3,
        min_points: int = 3,
        bootstrap: int = 0,
        seed: int | None = 0,
        level: float = 0.95,
        progress: bool = False,
    ) -> None:
        self.budget_rtol = nonnegative("budget_rtol", budget_rtol)
        if integer("min_points", min_points) < 3:
            raise BadParameterError(f"a parabola needs min_points >= 3, got {min_points}")
        self.min_points = int(min_points)
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed = seed_option(seed)
        self.level = level_option(level)
        self.progress = flag("progress", progress)

    # ------------------------------------------------------------------ stages
    def _optima(
        self, cols: Mapping[str, np.ndarray], weights: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Per-budget ``C``, ``N_opt`` (and ``D_opt``) from the runs; budgets without a valid
        parabola (too few points or not convex) are left out."""
        labels = budgets(cols["C"], self.budget_rtol)
        out: dict[str, list[float]] = {"C": [], "N_opt": [], "D_opt": []}
        for g in np.unique(labels):
            m = labels == g
            w = None if weights is None else weights[m]
            # the budgets of the fit only: a bootstrap replicate must not add budgets that
            # min_points left out (then its intervals would describe another estimator)
            if m.sum() < self.min_points or (w is not None and (w > 0).sum() < 3):
                continue
            lo = parabola_minimum(np.log(cols["N"][m]), cols["loss"][m], w)
            if not np.isfinite(lo):
                continue
            C = float(np.exp(np.mean(np.log(cols["C"][m]))))
            out["C"].append(C)
            out["N_opt"].append(float(np.exp(lo)))
            if "D" in cols:
                ld = parabola_minimum(np.log(cols["D"][m]), cols["loss"][m], w)
                out["D_opt"].append(float(np.exp(ld)) if np.isfinite(ld) else np.nan)
            else:
                out["D_opt"].append(C / (6.0 * float(np.exp(lo))))
        return {k: np.asarray(v) for k, v in out.items()}

    @staticmethod
    def _power_laws(opt: Mapping[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
        lc = np.log(opt["C"])
        a, ia, se_a, _ = ols_line(lc, np.log(opt["N_opt"]))
        params = {"a": a, "k_N": float(np.exp(ia))}
        se = {"a": se_a}
        d = opt.get("D_opt")
        if d is not None and len(d) and np.isfinite(d).all():
            b, ib, se_b, _ = ols_line(lc, np.log(d))
            params.update({"b": b, "k_D": float(np.exp(ib))})
            se["b"] = se_b
        return params, se

    # ------------------------------------------------------------------ fit
    def load(self, data: Any, columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        table = as_table(data)
        mapping = dict(columns or {})
        if mapping.get("N_opt", "N_opt") in table:
            return load_columns(
                table,
                ("C", "N_opt"),
                optional=("D_opt",),
                columns=mapping,
                min_rows=3,
                law="isoflop (optima)",
            )
        return load_columns(
            table,
            ("C", "N", "loss"),
            optional=("D",),
            columns=mapping,
            min_rows=9,
            law="isoflop",
        )

    def fit(
        self,
        data: Any,
        *,
        columns: Mapping[str, str] | None = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        progress: bool | None = None,
    ) -> FitResult:
        """Fit per-budget optima and the power laws N*(C), D*(C)."""
        B = self.bootstrap if bootstrap is None else int(bootstrap)
        if B < 0 or B == 1:
            raise BadParameterError(f"bootstrap must be 0 (off) or >= 2, got {B}")
        cols = self.load(data, columns)
        if "loss" in cols and np.all(cols["loss"] == cols["loss"][0]):
            raise FitError(
                f"isoflop: the loss is constant ({cols['loss'][0]:g} in every row), so no budget "
                "has a minimum; fit runs whose loss varies with N"
            )
        runs = "N" in cols
        opt = (
            self._optima(cols)
            if runs
            else {
                "C": cols["C"],
                "N_opt": cols["N_opt"],
                "D_opt": cols.get("D_opt", cols["C"] / (6.0 * cols["N_opt"])),
            }
        )
        if len(opt["C"]) < 3:
            raise BadInputError(
                f"isoflop: {len(opt['C'])} budget(s) with a convex parabola over >= "
                f"{self.min_points} runs; at least 3 are needed for the power laws"
            )
        if runs and not np.isfinite(opt["D_opt"]).all():
            raise BadInputError("isoflop: a loss parabola in log D is not convex for some budget")
        params, ols_se = self._power_laws(opt)
        pred = np.log(params["k_N"]) + params["a"] * np.log(opt["C"])
        resid = np.log(opt["N_opt"]) - pred
        ss_tot = float(np.sum((np.log(opt["N_opt"]) - np.log(opt["N_opt"]).mean()) ** 2))
        metrics = {
            "r2_log_N_opt": 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else float("nan"),
            "rmse_log_N_opt": float(np.sqrt(np.mean(resid**2))),
            "n_budgets": float(len(opt["C"])),
            "n_points": float(len(cols["C"])),
            "converged": 1.0,
        }
        result = FitResult(
            model=self.law_name,
            params=params,
            metrics=metrics,
            level=self.level,
            data=dict(cols),
            target="loss" if runs else "N_opt",
            extra={
                "optima": {k: v.tolist() for k, v in opt.items()},
                "ols_stderr": ols_se,
                "budget_rtol": self.budget_rtol,
                "interval_method": "ols-t",
            },
            predict_fn=predict_optimal,
            compute_optimal_fn=compute_optimal_isoflop,
            plot_fn=plot_isoflop,
        )
        if B:
            self._bootstrap(result, cols, opt, B, self.seed if seed is None else seed, progress)
        else:
            from scipy.stats import t as student_t

            q = float(student_t.ppf(0.5 + self.level / 2.0, max(len(opt["C"]) - 2, 1)))
            result.stderr = dict(ols_se)
            result.intervals = {
                k: (params[k] - q * s, params[k] + q * s) for k, s in ols_se.items()
            }
        return result

    def _bootstrap(
        self,
        result: FitResult,
        cols: Mapping[str, np.ndarray],
        opt: Mapping[str, np.ndarray],
        B: int,
        seed: int | None,
        progress: bool | None,
    ) -> None:
        from .engine import _progress, check_bootstrap_size

        names = tuple(result.params)
        check_bootstrap_size(B, 120.0 + 40.0 * len(names), "isoflop")  # a list of float rows
        rng = np.random.default_rng(seed)
        rows = []
        runs = "N" in cols
        labels = budgets(cols["C"], self.budget_rtol) if runs else None
        with _progress(
            self.progress if progress is None else bool(progress), B, "bootstrap"
        ) as adv:
            for _ in range(B):
                if runs:
                    w = np.zeros(len(cols["C"]))
                    for g in np.unique(labels):
                        idx = np.flatnonzero(labels == g)
                        np.add.at(w, rng.choice(idx, size=len(idx)), 1.0)
                    o = self._optima(cols, weights=w)
                else:
                    pick = rng.integers(0, len(opt["C"]), len(opt["C"]))
                    o = {k: np.asarray(v)[pick] for k, v in opt.items()}
                ok = len(o["C"]) >= 3 and len(np.unique(o["C"])) >= 2
                if ok:
                    p, _ = self._power_laws(o)
                    rows.append([p.get(k, np.nan) for k in names])
                else:
                    rows.append([np.nan] * len(names))
                adv(1)
        arr = np.asarray(rows, dtype=np.float64)
        result.bootstrap, result.bootstrap_names = arr, names
        result.stderr, result.intervals = summarise_samples(names, arr, result.level)
        result.metrics["n_bootstrap"] = float(B)
        result.extra["interval_method"] = "bootstrap-percentile"
