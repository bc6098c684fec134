"""Step Law: the optimal learning rate and batch size as power laws of model and data size.

    lr*(N, D)        = exp(i) * N^cN * D^cD
    batch_tokens*(D) = exp(j) * D^cB

Li et al., "Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large Language
Model Pretraining" (arXiv:2503.04715). The law is fitted from hyperparameter sweeps with the
paper's near-optimal selection rule: in every (N, D) group keep the runs whose (smoothed) final
loss is within ``threshold`` (0.25%) of the group's minimum, then regress ``log lr`` on
``(log N, log D)`` and ``log batch_tokens`` on ``log D`` by ordinary least squares, over
``bootstrap`` resamples of the kept runs; the parameters are the bootstrap means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, FitError
from xent_core.validate import integer, nonnegative

from .data import as_float_array, as_table, load_columns
from .engine import check_bootstrap_size
from .options import bootstrap_option
from .result import FitResult, summarise_samples

PARAM_NAMES = ("i", "cN", "cD", "j", "cB")
#: columns of the Step Law repository's bootstrap file, in PARAM_NAMES order
BOOTSTRAP_COLUMNS = ("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")


def step_law_predict(params: Mapping[str, float], *, N: Any, D: Any) -> tuple[Any, Any]:
    """``(lr, batch_tokens)`` at model size ``N`` and data size ``D`` (tokens)."""
    n = as_float_array("N", N, positive=True)
    d = as_float_array("D", D, positive=True)
    n, d = np.broadcast_arrays(n, d)
    log_lr = params["i"] + params["cN"] * np.log(n) + params["cD"] * np.log(d)
    log_bs = params["j"] + params["cB"] * np.log(d)
    lr, bs = np.exp(log_lr), np.exp(log_bs)
    if np.ndim(N) == 0 and np.ndim(D) == 0:
        return float(lr[0]), float(bs[0])
    return lr, bs


def _derived(params: Mapping[str, float]) -> dict[str, float]:
    return {"lr_scale": float(np.exp(params["i"])), "batch_scale": float(np.exp(params["j"]))}


@dataclass
class StepLawResult(FitResult):
    """A fitted Step Law: ``predict(N=, D=)`` returns ``(lr, batch_tokens)``."""

    def residuals(self) -> np.ndarray:
        """``(n, 2)`` log residuals (observed - predicted) of lr and batch on the kept runs."""
        if not self.data:
            raise FitError("this result does not keep its data; residuals are not available")
        lr, bs = self.predict(N=self.data["N"], D=self.data["D"])
        return np.stack(
            [
                np.log(self.data["lr"]) - np.log(lr),
                np.log(self.data["batch_tokens"]) - np.log(bs),
            ],
            axis=1,
        )


def _plot(result: FitResult, *, plt: Any, **_: Any) -> Any:
    if not result.data:
        raise FitError("this result does not keep its data; nothing to plot")
    lr_hat, bs_hat = result.predict(N=result.data["N"], D=result.data["D"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, obs, pred, label in (
        (axes[0], result.data["lr"], lr_hat, "learning rate"),
        (axes[1], result.data["batch_tokens"], bs_hat, "batch (tokens)"),
    ):
        sc = ax.scatter(pred, obs, c=np.log10(result.data["D"]), s=14, cmap="viridis")
        lo = float(min(np.min(pred), np.min(obs))) / 1.2
        hi = float(max(np.max(pred), np.max(obs))) * 1.2
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted optimal {label}")
        ax.set_ylabel(f"near-optimal {label} (kept runs)")
    fig.colorbar(sc, ax=axes[1], label="log10 D")
    p = result.params
    fig.suptitle(
        f"step-law: lr = {np.exp(p['i']):.3g} N^{p['cN']:.3f} D^{p['cD']:.3f}, "
        f"B = {np.exp(p['j']):.3g} D^{p['cB']:.3f} tokens"
    )
    fig.tight_layout()
    return fig


class StepLaw:
    """Step Law: optimal learning rate and batch size (tokens) as power laws of N and D.

    Formula::

        lr*(N, D) = exp(i) * N^cN * D^cD          batch_tokens*(D) = exp(j) * D^cB

    ``fit(data)`` takes a hyperparameter sweep with columns ``N``, ``D`` (tokens), ``lr``,
    ``batch_tokens`` (or ``bs`` in sequences of ``seq_len`` tokens) and ``loss`` (a ``smooth loss``
    column is preferred when present, as in the paper); a dict, a DataFrame or a CSV path;
    ``columns`` maps those names to other column names. In each (N, D) group the runs within
    ``threshold`` of the group's minimum loss are kept; ``log lr ~ 1 + log N + log D`` and
    ``log batch_tokens ~ 1 + log D`` are fitted by OLS on ``bootstrap`` resamples of the kept runs
    (seeded by ``seed``) and the parameters are the bootstrap means (plain OLS when
    ``bootstrap=0``). ``fit.predict(N=, D=)`` returns ``(lr, batch_tokens)``.
    ``StepLaw.from_bootstrap(path)`` loads published bootstrap fits (the Step Law repository's
    ``lr_intercept, lr_coefN, lr_coefD, bs_intercept, bs_coefD`` file).

    Args:
        threshold: keep the runs within this relative distance of each (N, D) group's minimum
            loss.
        seq_len: tokens per sequence, to turn a ``bs`` column into ``batch_tokens``.
        bootstrap: number of bootstrap resamples of the kept runs (0: plain OLS).
        seed: random seed of the bootstrap.
    """

    citation = (
        "Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large Language "
        "Model Pretraining",
        "arXiv:2503.04715",
    )
    param_names = PARAM_NAMES

    def __init__(
        self,
        threshold: float = 0.0025,
        seq_len: int = 2048,
        bootstrap: int = 1000,
        seed: int = 0,
    ) -> None:
        self.threshold = nonnegative("threshold", threshold)
        self.seq_len = integer("seq_len", seq_len, low=1)
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed = integer("seed", seed, low=0)

    # ------------------------------------------------------------------ results
    def _result(self, params: dict[str, float], **kw: Any) -> StepLawResult:
        return StepLawResult(
            model="step-law",
            params=params,
            derived=_derived(params),
            target="lr",
            predict_fn=step_law_predict,
            plot_fn=_plot,
            **kw,
        )

    def with_params(self, **params: float) -> StepLawResult:
        """A result holding given parameters ``i, cN, cD, j, cB``."""
        missing = [p for p in PARAM_NAMES if p not in params]
        unknown = [p for p in params if p not in PARAM_NAMES]
        if missing or unknown:
            raise BadParameterError(
                f"step-law parameters are {list(PARAM_NAMES)}; missing {missing}, unknown {unknown}"
            )
        values = {k: float(params[k]) for k in PARAM_NAMES}
        if not all(np.isfinite(v) for v in values.values()):
            raise BadParameterError(f"step-law parameters must be finite, got {values}")
        return self._result(values, extra={"source": "given parameters"})

    @classmethod
    def from_params(cls, **params: float) -> StepLawResult:
        """``StepLaw().with_params(**params)``."""
        return cls().with_params(**params)

    @classmethod
    def from_bootstrap(cls, data: Any, level: float = 0.95) -> StepLawResult:
        """A result from bootstrap fits (columns ``lr_intercept, lr_coefN, lr_coefD,
        bs_intercept, bs_coefD``): the mean of each column, with standard errors and intervals."""
        table = as_table(data)
        missing = [c for c in BOOTSTRAP_COLUMNS if c not in table]
        if missing:
            raise BadInputError(
                f"step-law bootstrap file: missing column(s) {missing}; columns found: "
                f"{[str(c) for c in table]}"
            )
        samples = np.stack([as_float_array(c, table[c]) for c in BOOTSTRAP_COLUMNS], axis=1)
        return cls()._from_samples(samples, level, extra={"source": "bootstrap file"})

    def _from_samples(self, samples: np.ndarray, level: float, **kw: Any) -> StepLawResult:
        params = dict(zip(PARAM_NAMES, map(float, samples.mean(axis=0))))
        derived_samples = np.exp(samples[:, [0, 3]])
        names = (*PARAM_NAMES, "lr_scale", "batch_scale")
        stderr, intervals = summarise_samples(names, np.c_[samples, derived_samples], level)
        return self._result(
            params,
            stderr=stderr,
            intervals=intervals,
            level=level,
            bootstrap=samples,
            bootstrap_names=PARAM_NAMES,
            **kw,
        )

    # ------------------------------------------------------------------ fitting
    def select(
        self, data: Any, columns: Mapping[str, str] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The near-optimal runs of a sweep (columns ``N, D, lr, batch_tokens, loss``) and a
        summary (``n_runs``, ``n_groups``, ``loss_column``, ``batch_from_sequences_of``)."""
        mapping = dict(columns or {})
        table = as_table(data)
        if "loss" not in mapping and "smooth loss" in table:
            mapping["loss"] = "smooth loss"
        batch_in_sequences = False
        if "batch_tokens" not in mapping and "batch_tokens" not in table and "bs" in table:
            mapping["batch_tokens"] = "bs"
            batch_in_sequences = True
        cols = load_columns(
            table, ("N", "D", "lr", "batch_tokens", "loss"), columns=mapping, law="step-law"
        )
        if batch_in_sequences:
            cols["batch_tokens"] = cols["batch_tokens"] * self.seq_len
        groups: dict[tuple[float, float], list[int]] = {}
        for idx, key in enumerate(zip(cols["N"], cols["D"])):
            groups.setdefault(key, []).append(idx)
        keep = np.zeros(len(cols["N"]), dtype=bool)
        for rows in groups.values():
            r = np.asarray(rows)
            best = cols["loss"][r].min()
            keep[r[cols["loss"][r] <= best * (1.0 + self.threshold)]] = True
        info = {
            "n_runs": len(keep),
            "n_groups": len(groups),
            "loss_column": mapping.get("loss", "loss"),
            "batch_from_sequences_of": self.seq_len if batch_in_sequences else None,
        }
        return {k: v[keep] for k, v in cols.items()}, info

    def fit(self, data: Any, columns: Mapping[str, str] | None = None) -> StepLawResult:
        """Fit the Step Law to a hyperparameter sweep (see the class doc for the columns)."""
        sel, info = self.select(data, columns)
        logN, logD = np.log(sel["N"]), np.log(sel["D"])
        n = len(logN)
        if len(np.unique(sel["N"])) < 2 or len(np.unique(sel["D"])) < 2:
            raise FitError(
                "step-law: the sweep needs at least two model sizes N and two data sizes D "
                f"(found {len(np.unique(sel['N']))} N and {len(np.unique(sel['D']))} D values)"
            )
        if n < 4:
            raise FitError(f"step-law: only {n} near-optimal runs were kept; at least 4 are needed")
        X_lr = np.stack([np.ones(n), logN, logD], axis=1)
        X_bs = np.stack([np.ones(n), logD], axis=1)
        y_lr, y_bs = np.log(sel["lr"]), np.log(sel["batch_tokens"])
        coef_lr = np.linalg.lstsq(X_lr, y_lr, rcond=None)[0]
        coef_bs = np.linalg.lstsq(X_bs, y_bs, rcond=None)[0]
        ols = np.r_[coef_lr, coef_bs]
        extra = {
            "threshold": self.threshold,
            "selection": "runs within threshold of the (N, D) group's minimum loss",
            "ols": dict(zip(PARAM_NAMES, map(float, ols))),
            **info,
        }
        if self.bootstrap:
            # resample indices and the gathered (B, n, 3) designs: about 64 bytes per point
            check_bootstrap_size(self.bootstrap, 64.0 * n + 80.0, "step-law")
            rng = np.random.default_rng(self.seed)
            idx = rng.integers(0, n, size=(self.bootstrap, n))
            samples = np.c_[_batched_ols(X_lr[idx], y_lr[idx]), _batched_ols(X_bs[idx], y_bs[idx])]
            result = self._from_samples(samples, 0.95, extra=extra)
        else:
            result = self._result(dict(zip(PARAM_NAMES, map(float, ols))), extra=extra)
        res_lr = y_lr - X_lr @ coef_lr
        res_bs = y_bs - X_bs @ coef_bs
        result.metrics = {
            "r2_lr": float(1 - res_lr @ res_lr / np.sum((y_lr - y_lr.mean()) ** 2)),
            "r2_batch": float(1 - res_bs @ res_bs / np.sum((y_bs - y_bs.mean()) ** 2)),
            "rmse_log_lr": float(np.sqrt(np.mean(res_lr**2))),
            "rmse_log_batch": float(np.sqrt(np.mean(res_bs**2))),
            "n_points": float(n),
            "n_runs": float(info["n_runs"]),
            "n_groups": float(info["n_groups"]),
        }
        result.data = {k: sel[k] for k in ("N", "D", "lr", "batch_tokens", "loss")}
        return result


def _batched_ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS coefficients of each resample: X (B, n, p), y (B, n) -> (B, p)."""
    XtX = np.einsum("bni,bnj->bij", X, X)
    Xty = np.einsum("bni,bn->bi", X, y)
    try:
        return np.linalg.solve(XtX, Xty[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a degenerate resample (all rows from one group)
        return np.einsum("bij,bj->bi", np.linalg.pinv(XtX), Xty)
