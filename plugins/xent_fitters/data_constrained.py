"""Muennighoff et al.'s data-constrained law: Chinchilla's law with repeated data and excess
parameters discounted by exponential decay."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, FitError

from .chinchilla import ChinchillaLaw
from .data import load_columns
from .diagnostics import regression_metrics
from .engine import Problem, bootstrap_counts, bootstrap_fit, global_search, polish
from .law import HuberLaw, as_output, make_grid
from .result import FitResult, summarise_samples

BASE_NAMES = ("E", "A", "B", "alpha", "beta")
_R_STARTS = [float(np.log(v)) for v in (0.5, 2.0, 5.0, 15.0, 50.0, 200.0)]


def _effective_inputs(
    base: Mapping[str, float], N: np.ndarray, D: np.ndarray, U: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``U_N, R_N, U_D, R_D``: unique parameters/tokens and their repetitions beyond the first.

    ``U_D = min(U, D)``, ``R_D = D/U_D - 1``; ``U_N = min(N_opt(U_D), N)`` where
    ``N_opt(D) = (alpha A / (beta B))^(1/alpha) D^(beta/alpha)`` is the compute-optimal size for
    ``D`` tokens under the base law, and ``R_N = N/U_N - 1``.
    """
    U_D = np.minimum(U, D)
    R_D = D / U_D - 1.0
    al, be = base["alpha"], base["beta"]
    n_opt = (al * base["A"] / (be * base["B"])) ** (1.0 / al) * U_D ** (be / al)
    U_N = np.minimum(n_opt, N)
    R_N = N / U_N - 1.0
    return U_N, R_N, U_D, R_D


def _decayed(U: Any, R: Any, R_star: Any) -> Any:
    """``U + U R* (1 - exp(-R/R*))``: repeated units count less and less."""
    return U + U * R_star * (-np.expm1(-R / R_star))


def predict_data_constrained(params: Mapping[str, float], *, N: Any, D: Any, U: Any) -> Any:
    """``E + A / N'^alpha + B / D'^beta`` with effective ``N'``, ``D'`` (see the class doc)."""
    N, D, U = (np.asarray(v, dtype=np.float64) for v in (N, D, U))
    U_N, R_N, U_D, R_D = _effective_inputs(params, N, D, U)
    Np = _decayed(U_N, R_N, params["R_N_star"])
    Dp = _decayed(U_D, R_D, params["R_D_star"])
    out = params["E"] + params["A"] * Np ** -params["alpha"] + params["B"] * Dp ** -params["beta"]
    return as_output(out)


def _stage2_log_predict(
    base: Mapping[str, float], cols: Mapping[str, np.ndarray]
) -> Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    U_N, R_N, U_D, R_D = _effective_inputs(base, cols["N"], cols["D"], cols["U"])
    a, b, e = np.log(base["A"]), np.log(base["B"]), np.log(base["E"])
    al, be = base["alpha"], base["beta"]

    def log_predict(theta: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        rn, rd = np.exp(theta[:, 0, None]), np.exp(theta[:, 1, None])
        xn, xd = R_N / rn, R_D / rd
        en, ed = np.exp(-xn), np.exp(-xd)
        Np = U_N * (1.0 + rn * (1.0 - en))
        Dp = U_D * (1.0 + rd * (1.0 - ed))
        tA = a - al * np.log(Np)
        tB = b - be * np.log(Dp)
        tE = np.full_like(tA, e)
        top = np.maximum(np.maximum(tA, tB), tE)
        eA, eB, eE = np.exp(tA - top), np.exp(tB - top), np.exp(tE - top)
        tot = eA + eB + eE
        lp = top + np.log(tot)
        # d log N' / d log R_N* = R* U_N (1 - e^-x - x e^-x) / N'
        dn = rn * U_N * (1.0 - en - xn * en) / Np
        dd = rd * U_D * (1.0 - ed - xd * ed) / Dp

        def vjp(u: np.ndarray) -> np.ndarray:
            v = u / tot
            g = np.empty((theta.shape[0], 2))
            g[:, 0] = -al * (v * eA * dn).sum(axis=1)
            g[:, 1] = -be * (v * eB * dd).sum(axis=1)
            return g

        return lp, vjp

    return log_predict


class DataConstrainedLaw(HuberLaw):
    """Data-constrained scaling law: Chinchilla's law with repeated tokens and excess parameters.

    Formula: ``L = E + A / N'^alpha + B / D'^beta`` with effective data and parameters
    ``D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))`` and ``N' = U_N + U_N R_N* (1 - exp(-R_N /
    R_N*))``, where ``U_D = min(U, D)`` unique tokens are seen ``R_D = D/U_D - 1`` extra times,
    ``U_N = min(N_opt(U_D), N)`` is the compute-optimal size for ``U_D`` tokens under the base
    law and ``R_N = N/U_N - 1``. Fitted in two stages as in the paper: ``E, A, B, alpha, beta``
    by the ``chinchilla`` fit of the single-epoch rows (``D <= U``), unless ``base`` gives them;
    then ``R_N*``, ``R_D*`` (log-parametrised) with the base fixed, Huber on log residuals.
    The paper finds R_D* = 15.4 and R_N* = 5.3.

    Columns: ``N``, ``D`` (tokens trained), ``U`` (unique tokens available), ``loss``.
    Parameters: ``E``, ``A``, ``B``, ``alpha``, ``beta``, ``R_N_star``, ``R_D_star``.
    Options: ``base`` dict of the five base parameters (fixed), others as for ``chinchilla``.

    Muennighoff et al., "Scaling Data-Constrained Language Models", arXiv:2305.16264.
    """

    citation = ("Scaling Data-Constrained Language Models", "arXiv:2305.16264")
    inputs = ("N", "D", "U")

    law_name = "data-constrained"
    input_names = ("N", "D", "U")
    internal_names = ("r_n", "r_d")
    param_names = (*BASE_NAMES, "R_N_star", "R_D_star")

    def __init__(
        self,
        base: dict | None = None,
        delta: float = 1e-3,
        grid: Any = None,
        bootstrap: int = 0,
        seed: int | None = 0,
        level: float = 0.95,
        search: str = "halving",
        n_polish: int = 8,
        progress: bool = False,
    ) -> None:
        if base is not None:
            missing = [k for k in BASE_NAMES if k not in base]
            if missing:
                raise BadParameterError(f"base must give {list(BASE_NAMES)}; missing {missing}")
            bad = [k for k in BASE_NAMES if not float(base[k]) > 0]
            if bad:
                raise BadParameterError(f"base parameters must be > 0: {bad}")
            base = {k: float(base[k]) for k in BASE_NAMES}
        self.base = base
        self._setup(
            delta=delta,
            grid=grid,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            search=search,
            n_polish=n_polish,
            progress=progress,
        )

    predict_fn = staticmethod(predict_data_constrained)

    def load(self, data: Any, columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        return load_columns(
            data, ("N", "D", "U", "loss"), columns=columns, min_rows=3, law=self.law_name
        )

    # ------------------------------------------------------------------ stages
    def _base_law(self) -> ChinchillaLaw:
        return ChinchillaLaw(delta=self.delta, search=self.search, n_polish=self.n_polish)

    def _single_epoch(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return cols["D"] <= cols["U"] * (1.0 + 1e-9)

    def _fit_base(self, cols: Mapping[str, np.ndarray]) -> tuple[dict[str, float], Any]:
        if self.base is not None:
            return dict(self.base), None
        single = self._single_epoch(cols)
        if single.sum() < 6:
            raise BadInputError(
                f"data-constrained: {int(single.sum())} single-epoch rows (D <= U); at least 6 "
                "are needed to fit E, A, B, alpha, beta first, or pass base={'E':..., 'A':..., "
                "'B':..., 'alpha':..., 'beta':...}"
            )
        law = self._base_law()
        sub = {k: v[single] for k, v in cols.items() if k in ("N", "D", "loss")}
        problem = law.problem(sub)
        theta, _f, ok, info, _ = law._search(problem, sub)
        if not ok:
            raise FitError(
                f"data-constrained: the base (single-epoch) fit did not converge: {info}"
            )
        return law.to_params(theta), (law, problem, single, theta)

    def _stage2_problem(self, base: Mapping[str, float], cols: Mapping[str, np.ndarray]) -> Problem:
        return Problem(
            _stage2_log_predict(base, cols),
            np.log(cols["loss"]),
            self.internal_names,
            np.array([-7.0, -7.0]),
            np.array([10.0, 10.0]),
            self.delta,
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return make_grid({"r_n": _R_STARTS, "r_d": _R_STARTS}, self.internal_names)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        data: Any,
        *,
        columns: Mapping[str, str] | None = None,
        heldout: Any = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        progress: bool | None = None,
    ) -> FitResult:
        """Fit both stages; see the class docstring. Arguments as for ``chinchilla``."""
        B = self.bootstrap if bootstrap is None else int(bootstrap)
        if B < 0 or B == 1:
            raise BadParameterError(f"bootstrap must be 0 (off) or >= 2, got {B}")
        cols = self.load(data, columns)
        repeated = cols["D"] > cols["U"] * (1.0 + 1e-9)
        if not repeated.any():
            raise BadInputError(
                "data-constrained: no row repeats data (D > U), so R_D* and R_N* cannot be "
                "fitted; use the 'chinchilla' law for single-epoch data"
            )
        base, stage1 = self._fit_base(cols)
        problem = self._stage2_problem(base, cols)
        grid = self.grid if self.grid is not None else self.default_grid(cols)
        sr = global_search(problem, grid, n_polish=self.n_polish)
        params = {
            **base,
            "R_N_star": float(np.exp(sr.theta[0])),
            "R_D_star": float(np.exp(sr.theta[1])),
        }
        _, R_N, _, _ = _effective_inputs(base, cols["N"], cols["D"], cols["U"])
        notes = []
        if not (R_N > 1e-12).any():
            notes.append("no run has N > U_N: R_N_star is not determined by the data")
        pred = np.asarray(predict_data_constrained(params, N=cols["N"], D=cols["D"], U=cols["U"]))
        metrics: dict[str, float] = {
            "objective": sr.f,
            **regression_metrics(cols["loss"], pred),
            "n_points": float(len(pred)),
            "n_single_epoch": float((~repeated).sum()),
            "converged": 1.0,
            "delta": self.delta,
        }
        if heldout is not None:
            h = self.load(heldout, columns)
            hp = predict_data_constrained(params, N=h["N"], D=h["D"], U=h["U"])
            metrics.update(
                {f"heldout_{k}": v for k, v in regression_metrics(h["loss"], hp).items()}
            )
        result = FitResult(
            model=self.law_name,
            params=params,
            metrics=metrics,
            level=self.level,
            data=dict(cols),
            extra={"base_fixed": self.base is not None, "notes": notes},
            predict_fn=predict_data_constrained,
        )
        if B:
            self._bootstrap_two_stage(result, cols, stage1, sr.theta, B, seed, progress)
        return result

    def _bootstrap_two_stage(
        self,
        result: FitResult,
        cols: Mapping[str, np.ndarray],
        stage1: Any,
        theta2: np.ndarray,
        B: int,
        seed: int | None,
        progress: bool | None,
    ) -> None:
        from .engine import _progress

        rng = np.random.default_rng(self.seed if seed is None else seed)
        counts = bootstrap_counts(len(cols["loss"]), B, rng)
        show = self.progress if progress is None else bool(progress)
        if stage1 is not None:  # the base law's refits, all replicates at once
            law, p1, single, th1 = stage1
            base_samples, _ = bootstrap_fit(p1, th1[None, :], B, counts=counts[:, single])
            bases = [law.to_params(t) for t in base_samples]
        else:
            bases = [dict(self.base or {})] * B
        rows = []
        with _progress(show, B, "bootstrap") as adv:
            for w, base in zip(counts, bases):
                p2 = self._stage2_problem(base, cols)
                t2, _, _, _ = polish(p2, theta2, weights=w, ftol=1e-12, gtol=1e-9)
                rows.append([*(base[k] for k in BASE_NAMES), *np.exp(t2)])
                adv(1)
        arr = np.asarray(rows)
        names = tuple(result.params)
        result.bootstrap, result.bootstrap_names = arr, names
        result.stderr, result.intervals = summarise_samples(names, arr, result.level)
        result.metrics["n_bootstrap"] = float(B)
