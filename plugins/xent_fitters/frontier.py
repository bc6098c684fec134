"""``compute-frontier``: the compute-efficient frontier of training curves (Chinchilla approach 1).

Every run (one model size) gives a curve of loss against compute. On a common grid of log C each
curve is interpolated linearly in log C (inside its own range, never extrapolated); the frontier
is the lowest loss over the runs at each C, and N*(C) the size of the run that reaches it:

    L*(C) = min_runs L_run(C) = E + A C^-gamma        (fitted with the power-law engine)
    N*(C) = G C^a  (log-log least squares),   D*(C) = C / (6 N*(C))

Following Henighan et al., E estimates the entropy of the data S(True) (the irreducible loss)
and L*(C) - E the KL divergence D_KL(True || Model) still to be removed (the reducible loss), in
the loss's units per token; ``units_per_sample`` converts both to units per sample (an image).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, FitError
from xent_core.validate import integer, positive

from .data import as_float_array, as_table
from .options import bootstrap_option, level_option, seed_option
from .result import FitResult, summarise_samples

PARAM_NAMES = ("E", "A", "gamma", "G", "a")


def frontier_predict(params: Mapping[str, float], *, C: Any) -> Any:
    """``L*(C) = E + A C^-gamma``."""
    c = np.asarray(C, dtype=np.float64)
    out = params["E"] + params["A"] * c ** -params["gamma"]
    return float(out) if out.ndim == 0 else out


def frontier_optimal(params: Mapping[str, float], C: Any) -> tuple[Any, Any]:
    """``(N*(C), D*(C)) = (G C^a, C / (6 N*))``."""
    c = np.asarray(C, dtype=np.float64)
    n = params["G"] * c ** params["a"]
    d = c / (6.0 * n)
    return (float(n), float(d)) if n.ndim == 0 else (n, d)


def chinchilla_frontier(params: Mapping[str, float]) -> dict[str, float]:
    """Closed form of the frontier of ``L = E + A/N^alpha + B/D^beta`` under ``C = 6ND``.

    ``L*(C) = E + K (C/6)^-gamma`` with ``gamma = alpha beta / (alpha + beta)``, and
    ``N*(C) = G (C/6)^a`` with ``a = beta / (alpha + beta)``,
    ``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``K = A G^-alpha + B G^beta``.
    """
    al, be, A, B = params["alpha"], params["beta"], params["A"], params["B"]
    G = (al * A / (be * B)) ** (1.0 / (al + be))
    return {
        "gamma": al * be / (al + be),
        "a": be / (al + be),
        "G": G,
        "K": A * G**-al + B * G**be,
    }


def extract_frontier(
    runs: list[tuple[float, np.ndarray, np.ndarray]], grid_points: int, min_runs: int
) -> dict[str, np.ndarray]:
    """The envelope of ``runs`` ``[(N, C sorted, loss), ...]`` on a log-C grid.

    Grid points covered by fewer than ``min_runs`` runs are dropped. Returns ``C``, ``loss``
    (the frontier), ``N`` (the argmin run's size) and ``n_runs`` (runs covering each point).
    """
    log_lo = min(np.log(c[0]) for _, c, _ in runs)
    log_hi = max(np.log(c[-1]) for _, c, _ in runs)
    grid = np.linspace(log_lo, log_hi, grid_points)
    table = np.full((len(runs), grid_points), np.inf)
    for i, (_, c, loss) in enumerate(runs):
        lc = np.log(c)
        inside = (grid >= lc[0]) & (grid <= lc[-1])
        if len(c) == 1:
            inside = np.isclose(grid, lc[0], rtol=0, atol=1e-12)
        table[i, inside] = np.interp(grid[inside], lc, loss)
    covering = np.isfinite(table).sum(axis=0)
    keep = covering >= min_runs
    if keep.sum() < 4:
        raise FitError(
            f"compute-frontier: only {int(keep.sum())} grid points are covered by at least "
            f"{min_runs} runs (4 are needed to fit E, A, gamma); give runs whose compute ranges "
            "overlap, or lower min_runs_on_frontier"
        )
    best = np.argmin(table[:, keep], axis=0)
    sizes = np.array([n for n, _, _ in runs])
    return {
        "C": np.exp(grid[keep]),
        "loss": table[best, np.flatnonzero(keep)],
        "N": sizes[best],
        "n_runs": covering[keep].astype(float),
    }


class ComputeFrontier:
    """Compute-efficient frontier of training curves: L*(C) = E + A C^-gamma and N*(C) = G C^a.

    Formula: each run's loss is interpolated in log C on a common grid; the frontier
    ``L*(C) = min_runs L(C)`` is fitted as ``E + A C^-gamma`` (the ``power-law`` engine, Huber
    loss on log residuals) and the size of the argmin run as ``N*(C) = G C^a`` (log-log least
    squares), ``D*(C) = C / (6 N*)``. ``E`` is the irreducible loss (the data's entropy
    S(True)) and ``L*(C) - E`` the reducible loss (D_KL(True || Model)), per token, or per sample
    when ``units_per_sample`` is given. Chinchilla's approach 1 (Hoffmann et al.).

    Columns: ``N`` (model size), ``C`` (compute, or the column named by ``x``), ``loss``; an
    optional ``run`` column groups rows into runs (default: one run per distinct ``N``).

    Args:
        x: name of the compute column (``C``; any positive, increasing budget such as FLOPs).
        grid_points: number of points of the common log-C grid.
        min_runs_on_frontier: keep only grid points covered by at least this many runs.
        bootstrap: resamples of the runs for standard errors and intervals (0: off).
        seed: random seed of the bootstrap.
        level: coverage of the percentile intervals, in (0, 1).
        units_per_sample: tokens per sample (e.g. per image), to report the irreducible and
            reducible losses per sample too (None: per token only).
    """

    citation = (
        ("Scaling Laws for Autoregressive Generative Modeling", "arXiv:2010.14701"),
        ("Training Compute-Optimal Large Language Models", "arXiv:2203.15556"),
    )
    law_name = "compute-frontier"
    target = "loss"

    def __init__(
        self,
        x: str = "C",
        grid_points: int = 50,
        min_runs_on_frontier: int = 2,
        bootstrap: int = 0,
        seed: int | None = 0,
        level: float = 0.95,
        units_per_sample: float | None = None,
    ) -> None:
        if not isinstance(x, str) or not x:
            raise BadParameterError(f"x must name the compute column, got {x!r}")
        self.x = x
        self.grid_points = integer("grid_points", grid_points, low=8)
        self.min_runs = integer("min_runs_on_frontier", min_runs_on_frontier, low=1)
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed = seed_option(seed)
        self.level = level_option(level)
        self.units_per_sample = (
            None if units_per_sample is None else positive("units_per_sample", units_per_sample)
        )

    def _runs(
        self, data: Any, columns: Mapping[str, str] | None = None
    ) -> list[tuple[float, np.ndarray, np.ndarray]]:
        table = dict(as_table(data))
        for name, column in (columns or {}).items():
            if column not in table:
                raise BadInputError(
                    f"compute-frontier: column {column!r} (for {name}) not found; columns "
                    f"found: {sorted(table)}"
                )
            table[name] = table[column]
        missing = [k for k in ("N", self.x, "loss") if k not in table]
        if missing:
            raise BadInputError(
                f"compute-frontier: missing column(s) {', '.join(missing)}; columns found: "
                f"{sorted(table)}"
            )
        N = as_float_array("N", table["N"], positive=True)
        C = as_float_array(self.x, table[self.x], positive=True)
        loss = as_float_array("loss", table["loss"], positive=True)
        if not len(N) == len(C) == len(loss):
            raise BadInputError("compute-frontier: columns N, C and loss differ in length")
        ids = np.asarray(table["run"]).astype(str) if "run" in table else N.astype(str)
        runs = []
        for rid in dict.fromkeys(ids.tolist()):
            m = ids == rid
            sizes = np.unique(N[m])
            if len(sizes) != 1:
                raise BadInputError(f"compute-frontier: run {rid!r} has several model sizes")
            order = np.argsort(C[m], kind="stable")
            runs.append((float(sizes[0]), C[m][order], loss[m][order]))
        if len(runs) < 2:
            raise FitError("compute-frontier: a frontier needs at least two runs")
        if np.all(loss == loss[0]):
            raise FitError(
                f"compute-frontier: the loss is constant ({loss[0]:g} in every row); a frontier "
                "needs losses that fall with compute"
            )
        if len({n for n, _, _ in runs}) < 2:
            raise FitError(
                "compute-frontier: all runs have the same model size; N*(C) is undefined"
            )
        return runs

    def _fit_frontier(self, frontier: Mapping[str, np.ndarray]) -> dict[str, float]:
        import warnings

        from .identify import BoundWarning
        from .power_law import PowerLaw

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundWarning)
            loss_fit = PowerLaw(x="C").fit({"C": frontier["C"], "loss": frontier["loss"]})
        self._loss_fit = loss_fit
        if len(np.unique(frontier["N"])) < 2:
            a, log_g = 0.0, float(np.log(frontier["N"][0]))
        else:
            a, log_g = np.polyfit(np.log(frontier["C"]), np.log(frontier["N"]), 1)
        p = loss_fit.params
        return {"E": p["E"], "A": p["A"], "gamma": p["alpha"], "G": float(np.exp(log_g)), "a": a}

    def fit(self, data: Any, columns: Mapping[str, str] | None = None) -> FitResult:
        """Fit the frontier of ``data`` (dict of columns, DataFrame or CSV path); ``columns``
        maps the law's names (``N``, ``C``, ``loss``, ``run``) to yours."""
        runs = self._runs(data, columns)
        frontier = extract_frontier(runs, self.grid_points, self.min_runs)
        params = {k: float(v) for k, v in self._fit_frontier(frontier).items()}
        loss_fit = self._loss_fit
        derived = {"irreducible": params["E"]}
        if self.units_per_sample is not None:
            derived["irreducible_per_sample"] = params["E"] * self.units_per_sample
        result = FitResult(
            model=self.law_name,
            params=params,
            metrics={
                **{k: loss_fit.metrics[k] for k in ("objective", "r2", "mae", "rmse")},
                "n_points": float(len(frontier["C"])),
                "n_runs": float(len(runs)),
                "n_sizes_on_frontier": float(len(np.unique(frontier["N"]))),
            },
            derived=derived,
            level=self.level,
            data={"C": frontier["C"], "loss": frontier["loss"]},
            extra={
                "frontier_N": frontier["N"].tolist(),
                "runs_per_point": frontier["n_runs"].tolist(),
                "units_per_sample": self.units_per_sample,
            },
            warnings=list(loss_fit.warnings),
            predict_fn=frontier_predict,
            compute_optimal_fn=frontier_optimal,
            plot_fn=plot_frontier,
        )
        result.extra["runs"] = [(n, c.tolist(), y.tolist()) for n, c, y in runs]
        if self.bootstrap:
            self._bootstrap(result, runs)
        return result

    def _bootstrap(self, result: FitResult, runs: list[Any]) -> None:
        rng = np.random.default_rng(self.seed)
        names = (*result.params, *result.derived)
        rows = []
        for _ in range(self.bootstrap):
            pick = [runs[i] for i in rng.integers(0, len(runs), len(runs))]
            try:
                if len({n for n, _, _ in pick}) < 2:
                    raise FitError("one size")
                p = self._fit_frontier(extract_frontier(pick, self.grid_points, self.min_runs))
            except FitError:
                continue  # a resample without two sizes or overlap has no frontier
            d = [p["E"]] + ([p["E"] * self.units_per_sample] if self.units_per_sample else [])
            rows.append([*p.values(), *d])
        if len(rows) < 2:
            raise FitError("compute-frontier: fewer than two bootstrap resamples had a frontier")
        arr = np.asarray(rows, dtype=np.float64)
        result.bootstrap, result.bootstrap_names = arr, tuple(names)
        result.stderr, result.intervals = summarise_samples(names, arr, result.level)
        result.metrics["n_bootstrap"] = float(len(rows))


def reducible_loss(result: FitResult, C: Any) -> Any:
    """``L*(C) - E``: the reducible loss (D_KL(True || Model)) of a frontier fit at ``C``."""
    return frontier_predict(result.params, C=C) - result.params["E"]


def plot_frontier(result: FitResult, *, plt: Any, **_: Any) -> Any:
    """The runs' curves, the frontier and its fit; N*(C) with its power law."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for _n, c, y in result.extra.get("runs", []):
        ax1.plot(c, y, lw=0.8, alpha=0.5)
    C, L = result.data["C"], result.data["loss"]
    ax1.plot(C, L, "k.", ms=4, label="frontier L*(C)")
    grid = np.logspace(np.log10(C.min()), np.log10(C.max()), 100)
    p = result.params
    ax1.plot(grid, result.predict(C=grid), "r-", label=f"E + A C^-{p['gamma']:.3f}")
    ax1.axhline(p["E"], color="k", ls=":", lw=1, label=f"irreducible E = {p['E']:.3f}")
    ax1.set_xscale("log")
    ax1.set_xlabel("compute C")
    ax1.set_ylabel("loss")
    ax1.legend(fontsize=8)
    ax2.plot(C, result.extra["frontier_N"], "k.", ms=4, label="N*(C) (argmin run)")
    ax2.plot(grid, result.compute_optimal(grid)[0], "r-", label=f"G C^{p['a']:.3f}")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("compute C")
    ax2.set_ylabel("N*")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
