"""Muennighoff et al.'s data-constrained law: Chinchilla's law with repeated data and excess
parameters discounted by exponential decay."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError

from .chinchilla import ChinchillaLaw
from .data import load_columns
from .engine import Problem, global_search
from .law import HuberLaw, as_output, make_grid

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
    """Batched log-prediction over ``theta = (log R_N*, log R_D*)`` with the base law fixed."""
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


def _joint_log_predict(
    cols: Mapping[str, np.ndarray],
) -> Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """Batched log-prediction over all seven parameters
    ``theta = (a, b, e, alpha, beta, log R_N*, log R_D*)`` (A = e^a, B = e^b, E = e^e).

    ``U_N = min(N_opt(U_D), N)`` depends on the base parameters through
    ``log N_opt = (log(alpha/beta) + a - b)/alpha + (beta/alpha) log U_D``; the VJP carries
    that dependence (the loss is continuous where ``N_opt = N``, its gradient jumps there).
    """
    lN = np.log(cols["N"])
    U_D = np.minimum(cols["U"], cols["D"])
    lUD = np.log(U_D)
    R_D = cols["D"] / U_D - 1.0

    def log_predict(theta: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        a, b, e, al, be, rn, rd = (theta[:, i, None] for i in range(7))
        Rn, Rd = np.exp(rn), np.exp(rd)
        L = np.log(al) + a - np.log(be) - b
        lnopt = L / al + (be / al) * lUD
        m = lnopt < lN  # more parameters than compute-optimal for the unique data: excess
        lUN = np.where(m, lnopt, lN)
        UN = np.exp(lUN)
        ratio = np.exp(lN - lUN)  # N / U_N
        RN = ratio - 1.0
        xn = RN / Rn
        en = np.exp(-xn)
        Np = UN * (1.0 + Rn * (1.0 - en))
        xd = R_D / Rd
        ed = np.exp(-xd)
        Dp = U_D * (1.0 + Rd * (1.0 - ed))
        lNp, lDp = np.log(Np), np.log(Dp)
        tA = a - al * lNp
        tB = b - be * lDp
        tE = np.broadcast_to(e, tA.shape)
        top = np.maximum(np.maximum(tA, tB), tE)
        eA, eB, eE = np.exp(tA - top), np.exp(tB - top), np.exp(tE - top)
        tot = eA + eB + eE
        lp = top + np.log(tot)
        # d log N' / d log R_N*, d log D' / d log R_D*, d log N' / d log N_opt (0 where U_N = N)
        dNp_rn = Rn * UN * (1.0 - en - xn * en) / Np
        dDp_rd = Rd * U_D * (1.0 - ed - xd * ed) / Dp
        dNp_lnopt = np.where(m, UN / Np * (1.0 + Rn * (1.0 - en) - en * ratio), 0.0)
        # d log N_opt / d (a, b, alpha, beta)
        d_al = (1.0 - L - be * lUD) / (al * al)
        d_be = (lUD - 1.0 / be) / al

        def vjp(u: np.ndarray) -> np.ndarray:
            v = u / tot
            wA, wB = v * eA, v * eB
            k = wA * dNp_lnopt
            g = np.empty((theta.shape[0], 7))
            g[:, 0] = wA.sum(axis=1) - k.sum(axis=1)
            g[:, 1] = wB.sum(axis=1) + k.sum(axis=1)
            g[:, 2] = (v * eE).sum(axis=1)
            g[:, 3] = -(wA * lNp).sum(axis=1) - al[:, 0] * (k * d_al).sum(axis=1)
            g[:, 4] = -(wB * lDp).sum(axis=1) - al[:, 0] * (k * d_be).sum(axis=1)
            g[:, 5] = -al[:, 0] * (wA * dNp_rn).sum(axis=1)
            g[:, 6] = -be[:, 0] * (wB * dDp_rd).sum(axis=1)
            return g

        return lp, vjp

    return log_predict


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


class DataConstrainedLaw(HuberLaw):
    """Data-constrained scaling law: Chinchilla's law with repeated tokens and excess parameters.

    Formula: ``L = E + A / N'^alpha + B / D'^beta`` with effective data and parameters
    ``D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))`` and ``N' = U_N + U_N R_N* (1 - exp(-R_N /
    R_N*))``, where ``U_D = min(U, D)`` unique tokens are seen ``R_D = D/U_D - 1`` extra times,
    ``U_N = min(N_opt(U_D), N)`` is the compute-optimal size for ``U_D`` tokens under the base
    law (``N_opt(D) = (alpha A / (beta B))^(1/alpha) D^(beta/alpha)``) and ``R_N = N/U_N - 1``.
    All seven parameters are fitted jointly (log space, Huber ``delta``, analytic gradients),
    from starts built in two stages as in the paper: the ``chinchilla`` fit of the single-epoch
    rows (``D <= U``), then ``R_N*``, ``R_D*`` with that base fixed. With ``base`` given, only
    ``R_N*`` and ``R_D*`` are fitted. The paper finds R_D* = 15.4 and R_N* = 5.3.

    Columns: ``N``, ``D`` (tokens trained), ``U`` (unique tokens available), ``loss``.
    Fitted parameters: ``E``, ``A``, ``B``, ``alpha``, ``beta``, ``R_N_star``, ``R_D_star``.

    Args:
        base: the five base parameters ``E, A, B, alpha, beta``, held fixed (None: fitted).
        **engine: the engine options of ``chinchilla`` (``delta``, ``grid``, ``bootstrap``, ...).
    """

    citation = ("Scaling Data-Constrained Language Models", "arXiv:2305.16264")
    inputs = ("N", "D", "U")

    law_name = "data-constrained"
    input_names = ("N", "D", "U")
    param_names = (*BASE_NAMES, "R_N_star", "R_D_star")

    def __init__(
        self,
        base: dict | None = None,
        **engine: Any,
    ) -> None:
        if base is not None:
            if not isinstance(base, Mapping):
                raise BadParameterError(
                    f"base must be a dict of {list(BASE_NAMES)} or None, got {base!r}"
                )
            missing = [k for k in BASE_NAMES if k not in base]
            if missing:
                raise BadParameterError(f"base must give {list(BASE_NAMES)}; missing {missing}")
            bad = [k for k in BASE_NAMES if not (_is_number(base[k]) and float(base[k]) > 0)]
            if bad:
                raise BadParameterError(f"base parameters must be > 0: {bad}")
            base = {k: float(base[k]) for k in BASE_NAMES}
        self.base = base
        self.internal_names = (
            ("r_n", "r_d") if base is not None else ("a", "b", "e", "alpha", "beta", "r_n", "r_d")
        )
        super().__init__(**engine)

    predict_fn = staticmethod(predict_data_constrained)

    def varying_inputs(self) -> tuple[str, ...]:
        # U may be one corpus size for every run (D and N vary the repetition); with the base
        # law given, only the repetition constants are fitted
        return () if self.base is not None else ("N", "D")

    def load(self, data: Any, columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        cols = load_columns(
            data,
            ("N", "D", "U", "loss"),
            columns=columns,
            min_rows=len(self.internal_names) + 1,
            law=self.law_name,
        )
        if not (cols["D"] > cols["U"] * (1.0 + 1e-9)).any():
            raise BadInputError(
                "data-constrained: no row repeats data (D > U), so R_D* and R_N* cannot be "
                "fitted; use the 'chinchilla' law for single-epoch data"
            )
        single = cols["D"] <= cols["U"] * (1.0 + 1e-9)
        if self.base is None and single.sum() < 6:
            raise BadInputError(
                f"data-constrained: {int(single.sum())} single-epoch rows (D <= U); at least 6 "
                "are needed to start the fit of E, A, B, alpha, beta, or pass base={'E':..., "
                "'A':..., 'B':..., 'alpha':..., 'beta':...}"
            )
        return cols

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        if self.base is not None:
            return self._stage2_problem(self.base, cols)
        return Problem(
            _joint_log_predict(cols),
            np.log(cols["loss"]),
            self.internal_names,
            np.array([-50.0, -50.0, -50.0, 1e-3, 1e-3, -7.0, -7.0]),
            np.array([80.0, 80.0, 80.0, 5.0, 5.0, 10.0, 10.0]),
            self.delta,
        )

    def _stage2_problem(self, base: Mapping[str, float], cols: Mapping[str, np.ndarray]) -> Problem:
        return Problem(
            _stage2_log_predict(base, cols),
            np.log(cols["loss"]),
            ("r_n", "r_d"),
            np.array([-7.0, -7.0]),
            np.array([10.0, 10.0]),
            self.delta,
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Starts: the R* grid (base given), else each of the best distinct single-epoch
        ``chinchilla`` optima combined with its best R* from a stage-2 fit."""
        r_grid = make_grid({"r_n": _R_STARTS, "r_d": _R_STARTS}, ("r_n", "r_d"))
        if self.base is not None:
            return r_grid
        single = cols["D"] <= cols["U"] * (1.0 + 1e-9)
        law = ChinchillaLaw(delta=self.delta, search=self.search, n_polish=self.n_polish)
        sub = {k: cols[k][single] for k in ("N", "D", "loss")}
        sr = global_search(law.problem(sub), law.default_grid(sub), n_polish=self.n_polish)
        starts = []
        for th in sr.candidates[:3]:
            base = law.to_params(th)
            r = global_search(self._stage2_problem(base, cols), r_grid, n_polish=2)
            starts.append([*th, *r.theta])
        return np.asarray(starts)

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        if self.base is not None:
            rn, rd = map(float, theta)
            return {**self.base, "R_N_star": float(np.exp(rn)), "R_D_star": float(np.exp(rd))}
        a, b, e, al, be, rn, rd = map(float, theta)
        return {
            "E": float(np.exp(e)),
            "A": float(np.exp(a)),
            "B": float(np.exp(b)),
            "alpha": al,
            "beta": be,
            "R_N_star": float(np.exp(rn)),
            "R_D_star": float(np.exp(rd)),
        }
