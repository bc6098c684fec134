"""One test case per registered loss (and a few parameter variants): inputs and references.

``Case.make_inputs`` draws fresh random inputs for a leading shape; ``Case.reference`` computes
the float64 reference value of those inputs (see ``losses_refs``). The tests in this folder run
every case through the same checks (values, gradients, reductions, ignored items, dtypes,
(B, T, C) shapes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import losses_refs as R
import numpy as np
import torch

NUM_SAMPLES = 40  # size of the "training set" for aldr-kl sample ids


@dataclass
class Case:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "ids"  # "ids", "soft" (probability targets), "values" (regression)
    extras: tuple[str, ...] = ()  # "sample_ids", "features", "classifier"
    per_item: Callable[..., Any] | None = None  # (z, y, inputs, module) -> (N,) float64
    denom: Callable[..., Any] | None = None  # custom mean denominator (class weights)
    gradcheck: bool = True  # False where a value is deliberately not differentiated
    classes: int = 5

    @property
    def id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params.items() if k != "embedding")
        return f"{self.name}({args})" if args else self.name

    def num_classes(self) -> int:
        return int(self.params.get("num_bins", self.classes))

    def make_inputs(
        self,
        lead: tuple[int, ...],
        dtype=torch.float64,
        gen: torch.Generator | None = None,
        ignore: bool = True,
    ) -> dict[str, torch.Tensor]:
        gen = gen or torch.Generator().manual_seed(0)
        c = self.num_classes()
        n = int(np.prod(lead)) if lead else 1
        logits = (torch.randn(*lead, c, generator=gen, dtype=torch.float64) * 2.0).to(dtype)
        out: dict[str, torch.Tensor] = {"logits": logits}
        if self.kind == "values":
            lo, hi = self.params["vmin"], self.params["vmax"]
            values = (
                torch.rand(*lead, generator=gen, dtype=torch.float64) * (hi - lo) * 1.2
                + lo
                - 0.1 * (hi - lo)
            )
            if ignore and n > 2:
                values.view(-1)[1] = float("nan")
            out["values"] = values.to(dtype)
        elif self.kind == "soft":
            out["targets"] = torch.softmax(
                torch.randn(*lead, c, generator=gen, dtype=torch.float64), -1
            ).to(dtype)
        else:
            targets = torch.randint(0, c, lead, generator=gen)
            if ignore and n > 2:
                targets.view(-1)[1] = -100
            out["targets"] = targets
        if "sample_ids" in self.extras:
            out["sample_ids"] = torch.randperm(NUM_SAMPLES, generator=gen)[:n].reshape(lead)
        if "features" in self.extras:
            scale = torch.rand(*lead, 1, 1, generator=gen, dtype=torch.float64) * 3 + 0.1
            out["features"] = (
                torch.randn(*lead, 4, 3, generator=gen, dtype=torch.float64) * scale
            ).to(dtype)
        if "classifier" in self.extras:
            out["classifier"] = torch.randn(c, 6, generator=gen, dtype=torch.float64).to(dtype)
        return out

    def build(self, reduction: str = "mean") -> torch.nn.Module:
        import xent_core

        params = dict(self.params)
        if self.name == "aldr-kl":
            params.setdefault("num_samples", NUM_SAMPLES)
        return xent_core.loss(self.name, reduction=reduction, **params)

    def valid(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind == "values":
            return ~torch.isnan(inputs["values"].reshape(-1))
        if self.kind == "soft":
            return torch.ones(
                inputs["targets"].reshape(-1, self.num_classes()).shape[0], dtype=torch.bool
            )
        return inputs["targets"].reshape(-1) != -100

    def reference(
        self, inputs: dict[str, torch.Tensor], reduction: str, module=None
    ) -> torch.Tensor:
        """Float64 reference of ``module(**inputs)``; ``inputs`` must be float64 already."""
        c = self.num_classes()
        z = inputs["logits"].reshape(-1, c)
        valid = self.valid(inputs)
        lead = inputs["logits"].shape[:-1]
        if self.kind == "values":
            y = inputs["values"].reshape(-1)
        elif self.kind == "soft":
            y = inputs["targets"].reshape(-1, c)
        else:
            y = torch.where(
                valid, inputs["targets"].reshape(-1), torch.zeros_like(valid, dtype=torch.long)
            )
        assert self.per_item is not None
        per = self.per_item(z, y, inputs, module, valid)
        denom = self.denom(y, valid) if self.denom is not None else None
        return R.reduce_ref(per, valid, reduction, lead, denom)


# ------------------------------------------------------------------ per-item reference adaptors
def _ce(**kw):
    return lambda z, y, inputs, module, valid: R.ref_cross_entropy(z, y, **kw)


def _ce_z(coef, **kw):
    return lambda z, y, inputs, module, valid: (
        R.ref_cross_entropy(z, y, **kw) + coef * R.ref_lse_squared(z)
    )


def _weight_denom(weight):
    w = torch.tensor(weight, dtype=torch.float64)
    return lambda y, valid: w[y][valid].sum()


def _aldr(params):
    def per(z, y, inputs, module, valid):
        ids = inputs["sample_ids"].reshape(-1)
        lam_old = (
            module.lambdas.detach().numpy()[ids.numpy()]
            if module is not None
            else np.full(len(ids), params.get("lam0", 10.0))
        )
        value, _ = R.ref_aldr_kl(
            z,
            y,
            params.get("margin", 0.1),
            params.get("lam0", 10.0),
            params.get("alpha", 2.0),
            params.get("normalize", "abs-mean"),
            lam_old,
        )
        return value

    return per


def _hl(params):
    def per(z, y, inputs, module, valid):
        target = R.ref_hl_gauss_target(
            np.nan_to_num(y.numpy()),
            params["vmin"],
            params["vmax"],
            params["num_bins"],
            params.get("sigma_ratio", 0.75),
        )
        return R.ref_histogram_ce(z, target)

    return per


def _two_hot(params):
    def per(z, y, inputs, module, valid):
        target = R.ref_two_hot_target(
            np.nan_to_num(y.numpy()), params["vmin"], params["vmax"], params["num_bins"]
        )
        return R.ref_histogram_ce(z, target)

    return per


def _emo(mix, max_ratio=None, fixed=None):
    def per(z, y, inputs, module, valid):
        emb = fixed if fixed is not None else inputs["classifier"]
        return R.ref_emo(z, y, emb.to(torch.float64), mix, max_ratio)

    return per


WEIGHTS = [0.5, 2.0, 1.0, 0.0, 3.0]
FIXED_EMBEDDING = torch.randn(5, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)

CASES: list[Case] = [
    Case("cross-entropy", per_item=_ce()),
    Case(
        "cross-entropy",
        {"weight": WEIGHTS, "label_smoothing": 0.2},
        per_item=_ce(weight=WEIGHTS, label_smoothing=0.2),
        denom=_weight_denom(WEIGHTS),
    ),
    Case(
        "cross-entropy",
        {"z_loss": 0.01, "softcap": 3.0, "temperature": 2.0},
        per_item=lambda z, y, i, m, v: (
            R.ref_cross_entropy(z, y, softcap=3.0, temperature=2.0)
            + 0.01 * R.ref_lse_squared(3.0 * torch.tanh(z / 3.0) / 2.0)
        ),
    ),
    Case(
        "cross-entropy",
        {"weight": WEIGHTS, "label_smoothing": 0.1},
        kind="soft",
        per_item=_ce(weight=WEIGHTS, label_smoothing=0.1),
    ),
    Case("z-loss", {"coefficient": 0.3}, per_item=lambda z, y, i, m, v: 0.3 * R.ref_lse_squared(z)),
    Case("comp-sum", {"tau": 0.0}, per_item=lambda z, y, i, m, v: R.ref_comp_sum(z, y, 0.0)),
    Case("comp-sum", {"tau": 1.5}, per_item=lambda z, y, i, m, v: R.ref_comp_sum(z, y, 1.5)),
    Case("generalized-ce", {"q": 0.7}, per_item=lambda z, y, i, m, v: R.ref_comp_sum(z, y, 1.7)),
    Case("mae", per_item=lambda z, y, i, m, v: 1 - R.p_target(z, y)),
    Case("focal", {"gamma": 2.0}, per_item=lambda z, y, i, m, v: R.ref_focal(z, y, 2.0)),
    Case(
        "focal",
        {"gamma": 0.5, "alpha": [0.25, 1.0, 0.5, 2.0, 1.5]},
        per_item=lambda z, y, i, m, v: R.ref_focal(z, y, 0.5, [0.25, 1.0, 0.5, 2.0, 1.5]),
    ),
    Case("poly1", {"epsilon": 2.0}, per_item=lambda z, y, i, m, v: R.ref_poly1(z, y, 2.0)),
    Case(
        "poly1",
        {"epsilon": -0.5},
        kind="soft",
        per_item=lambda z, y, i, m, v: R.ref_poly1(z, y, -0.5),
    ),
    Case("ldr-kl", per_item=lambda z, y, i, m, v: R.ref_ldr_kl(z, y, 0.1, 10.0, "softplus-mean")),
    Case(
        "ldr-kl",
        {"margin": 0.5, "lam": 0.7, "normalize": "none"},
        per_item=lambda z, y, i, m, v: R.ref_ldr_kl(z, y, 0.5, 0.7, "none"),
    ),
    Case("aldr-kl", extras=("sample_ids",), per_item=_aldr({}), gradcheck=False),
    Case(
        "aldr-kl",
        {"margin": 0.3, "lam0": 1.5, "alpha": 3.0, "normalize": "softplus-mean"},
        extras=("sample_ids",),
        per_item=_aldr({"margin": 0.3, "lam0": 1.5, "alpha": 3.0, "normalize": "softplus-mean"}),
        gradcheck=False,
    ),
    Case("dice", per_item=lambda z, y, i, m, v: R.ref_dice(z, y, 0.01, 1.0, True)),
    Case(
        "dice",
        {"alpha": 1.0, "smooth": 0.5, "square_denominator": False},
        kind="soft",
        per_item=lambda z, y, i, m, v: R.ref_dice(z, y, 1.0, 0.5, False),
    ),
    Case(
        "bias-loss",
        extras=("features",),
        per_item=lambda z, y, i, m, v: R.ref_bias_loss(
            z, y, i["features"].reshape(z.shape[0], -1), v, 0.3, 0.3
        ),
    ),
    Case("pass-at-n", {"n": 1}, per_item=lambda z, y, i, m, v: R.ref_pass_at_n(z, y, 1)),
    Case("pass-at-n", {"n": 8}, per_item=lambda z, y, i, m, v: R.ref_pass_at_n(z, y, 8)),
    Case("emo", {"mix": "none"}, extras=("classifier",), per_item=_emo("none")),
    Case("emo", extras=("classifier",), per_item=_emo("dynamic"), gradcheck=False),
    Case(
        "emo",
        {"embedding": FIXED_EMBEDDING, "max_ratio": 1.5},
        kind="soft",
        per_item=_emo("dynamic", 1.5, FIXED_EMBEDDING),
        gradcheck=False,
    ),
    Case(
        "hl-gauss",
        {"vmin": -2.0, "vmax": 3.0, "num_bins": 9},
        kind="values",
        per_item=_hl({"vmin": -2.0, "vmax": 3.0, "num_bins": 9}),
    ),
    Case(
        "hl-gauss",
        {"vmin": 0.0, "vmax": 1.0, "num_bins": 6, "sigma_ratio": 2.0},
        kind="values",
        per_item=_hl({"vmin": 0.0, "vmax": 1.0, "num_bins": 6, "sigma_ratio": 2.0}),
    ),
    Case(
        "two-hot",
        {"vmin": -2.0, "vmax": 3.0, "num_bins": 7},
        kind="values",
        per_item=_two_hot({"vmin": -2.0, "vmax": 3.0, "num_bins": 7}),
    ),
]

CLASSIFICATION_NAMES = sorted({c.name for c in CASES if c.kind != "values"})
