"""More rows of ``xent bench losses``: every other registered loss against its plain formula.

Each baseline is the loss's formula written plainly in torch from its docstring (it imports
nothing from xent), or the library function a user would call where one exists
(``F.binary_cross_entropy_with_logits``, ``F.kl_div``, ``F.cross_entropy(h @ W.T, y)``).
Losses whose inputs are not (N, C) logits map the suite's ``rows`` x ``cols`` size onto their
own shapes (noted per input builder) so that one call stays well under a second at the peer
table's 512 x 8192. :mod:`xent_losses.bench` merges these cases into its suite; the formulas
live in :mod:`xent_losses._bench_plain`. (Over 450 lines: most of it is the one table of
cases in :func:`cases`, kept together so a missing row is easy to see.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from xent_core.benchmarking import BenchCase

from ._bench_plain import (
    _CLIP_SEED,
    _SEQ,
    _VMAX,
    _VMIN,
    _aldr_kl,
    _attention_entropy,
    _bce,
    _bias_loss,
    _binary_kd,
    _brier,
    _clip_cov,
    _correctness,
    _cs_ib,
    _dco,
    _dcov,
    _dist,
    _dkd,
    _emo,
    _hl_gauss,
    _implicit_prm,
    _kl_cov,
    _koleo,
    _lce,
    _ljsd,
    _lkd,
    _matrix_entropy,
    _mmcr,
    _nt_xent,
    _skew_kl,
    _skew_reverse_kl,
    _symmetric_ce,
    _two_hot,
)
from .bench import _DTYPES, SIZE, _inputs

Builder = Callable[[dict[str, Any]], Callable[[], Any]]
NAIVE = "no peer: naive formula"


def _row(
    component: str,
    peer: str,
    inputs: Callable[[dict[str, int], str, int], dict[str, Any]],
    xent: Builder,
    naive: Builder,
) -> BenchCase:
    """A case over any named inputs; ``inputs`` returns them with ``"leaves"`` (the tensors
    with gradients): the step returns the loss and every leaf's gradient."""

    def make(variant: str, size: dict[str, int], dtype: str, seed: int):  # type: ignore[no-untyped-def]
        d = inputs(size, dtype, seed)
        fn = xent(d) if variant == "xent" else naive(d)
        leaves = d["leaves"]

        def step() -> Sequence[Any]:
            for t in leaves:
                t.grad = None
            loss = fn()
            loss.backward()
            return (loss.detach(), *(t.grad for t in leaves))

        return step, list(leaves)

    return BenchCase(component, peer, make, dict(SIZE))


def _x(
    name: str,
    keys: Sequence[str],
    *,
    eval_mode: bool = False,
    sized: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    **params: Any,
) -> Builder:
    """xent variant: ``xent_core.loss(name, **params, **sized(inputs))`` called with the
    inputs in ``keys``."""

    def build(d: dict[str, Any]) -> Callable[[], Any]:
        import xent_core

        module = xent_core.loss(name, **params, **(sized(d) if sized else {}))
        if eval_mode:
            module.eval()
        kw = {k: d[k] for k in keys}
        return lambda: module(**kw)

    return build


def _p(formula: Callable[[Any, dict[str, Any]], Any]) -> Builder:
    """Baseline from ``formula(torch, inputs) -> loss``."""

    def build(d: dict[str, Any]) -> Callable[[], Any]:
        import torch

        return lambda: formula(torch, d)

    return build


# ---------------------------------------------------------------------------- input builders
def _dt(dtype: str) -> Any:
    import torch

    return getattr(torch, _DTYPES[dtype])


def _logits(extra: Callable[[Any, Any, int, int, Any], dict[str, Any]] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    """(rows, cols) logits and class ids (+ a teacher), plus ``extra(torch, gen, n, c, dt)``."""

    def inputs(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
        import torch

        d = _inputs(size, dtype, seed, teacher_needed=kw.get("teacher", False))
        out = {"logits": d["x"], "targets": d["y"], "leaves": [d["x"]]}
        if d["teacher"] is not None:
            out["teacher_logits"] = d["teacher"]
        if extra is not None:
            out.update(extra(torch, d["gen"], d["n"], d["c"], _dt(dtype)))
        return out

    return inputs


def _embeddings(*names: str, rows: int = 1, max_dim: int = 512):  # type: ignore[no-untyped-def]
    """Embeddings (rows * ``rows`` / len(names), min(cols, max_dim)) per name, all leaves."""

    def inputs(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        n, d = max(2, size["rows"] * rows // len(names)), min(size["cols"], max_dim)
        out = {k: torch.randn(n, d, generator=gen).to(_dt(dtype)).requires_grad_() for k in names}
        out["leaves"] = [out[k] for k in names]
        return out

    return inputs


def _policy(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """(B, T) = (rows, cols) token log-probabilities, old ones, advantages, a 90% mask."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    shape = (size["rows"], size["cols"])
    dt = _dt(dtype)
    lp = (-3 * torch.rand(shape, generator=gen)).to(dt).requires_grad_()
    old = (lp.detach().float() + 0.3 * torch.randn(shape, generator=gen)).clamp(max=0).to(dt)
    adv = (2 * torch.randn(shape, generator=gen)).to(dt)
    mask = torch.rand(shape, generator=gen) < 0.9
    labels = (torch.rand(shape[0], generator=gen) < 0.5).to(dt)
    return {
        "logprobs": lp,
        "old_logprobs": old,
        "ref_logprobs": old,
        "advantages": adv,
        "mask": mask,
        "labels": labels,
        "leaves": [lp],
    }


def _linear(teacher: bool, dim: int = 128):  # type: ignore[no-untyped-def]
    """hidden (rows, D) and classifier (cols, D), D = 128 (+ a teacher's, no gradient)."""

    def inputs(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        n, v, dt = size["rows"], size["cols"], _dt(dtype)

        def draw(*shape: int, scale: float) -> Any:
            return (scale * torch.randn(*shape, generator=gen)).to(dt)

        h = draw(n, dim, scale=1.0).requires_grad_()
        w = draw(v, dim, scale=2 / math.sqrt(dim)).requires_grad_()
        out = {"hidden": h, "classifier": w, "leaves": [h, w]}
        out["targets"] = torch.randint(0, v, (n,), generator=gen)
        if teacher:
            out["teacher_hidden"] = draw(n, dim, scale=1.0)
            out["teacher_classifier"] = draw(v, dim, scale=2 / math.sqrt(dim))
        return out

    return inputs


# ------------------------------------------------------------------------- plain formulas


def _features(t: Any, gen: Any, n: int, c: int, dt: Any) -> dict[str, Any]:
    scale = t.rand(n, 1, generator=gen) + 0.5  # per-item spread: the variances differ
    return {"features": (scale * t.randn(n, 64, generator=gen)).to(dt)}


def _classifier(t: Any, gen: Any, n: int, c: int, dt: Any) -> dict[str, Any]:
    return {"classifier": t.randn(c, 64, generator=gen).to(dt)}  # (V, D = 64) cost embedding


def _values(t: Any, gen: Any, n: int, c: int, dt: Any) -> dict[str, Any]:
    span = _VMAX - _VMIN  # a few values fall outside the support (clamped)
    return {"values": (_VMIN - 0.1 * span + 1.2 * span * t.rand(n, generator=gen)).to(dt)}


def _bins(d: dict[str, Any]) -> dict[str, Any]:
    return {"num_bins": d["logits"].shape[-1]}


def _dco_in(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """dco: (rows / 4, 4, cols) logits of answers of 4 tokens over a vocabulary of cols."""
    d = _logits()(size, dtype, seed)
    n = d["logits"].shape[0] // _SEQ * _SEQ
    x = d["logits"]
    d["logits_3d"] = x[:n].view(-1, _SEQ, x.shape[-1])
    d["targets"] = d["targets"][:n].view(-1, _SEQ)
    return d


def _dco_x(d: dict[str, Any]) -> Callable[[], Any]:
    import xent_core

    module = xent_core.loss("dco")
    return lambda: module(logits=d["logits_3d"], targets=d["targets"])


def _cape_in(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """cape: one logit per item, rows * cols items, soft targets in [0, 1]."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    m = size["rows"] * size["cols"]
    x = (2 * torch.randn(m, generator=gen)).to(_dt(dtype)).requires_grad_()
    return {"logits": x, "targets": torch.rand(m, generator=gen).to(_dt(dtype)), "leaves": [x]}


def _clip_cov_x(d: dict[str, Any]) -> Callable[[], Any]:
    import torch

    import xent_core

    gen = torch.Generator()
    module = xent_core.loss("clip-cov", generator=gen)
    keys = ("logprobs", "old_logprobs", "advantages", "mask")

    def fn() -> Any:
        gen.manual_seed(_CLIP_SEED)  # every call picks the same tokens as the baseline
        return module(**{k: d[k] for k in keys})

    return fn


def _dcov_in(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """dcov-reg: a batch of rows scalar predictions and two protected attributes."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    n = size["rows"]
    pred = torch.randn(n, generator=gen).to(_dt(dtype)).requires_grad_()
    prot = (torch.randn(n, 2, generator=gen) + pred.detach().float()[:, None]).to(_dt(dtype))
    return {"predictions": pred, "protected": prot, "leaves": [pred]}


def _cs_ib_in(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """cs-ib: a batch of rows / 2 items (O(n^2)), 16 input and 8 latent features, scalar y."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    n, dt = max(2, size["rows"] // 2), _dt(dtype)
    x = 0.3 * torch.randn(n, 16, generator=gen)
    y = x[:, :2].sum(1) + 0.1 * torch.randn(n, generator=gen)
    z = (x[:, :8] + 0.1 * torch.randn(n, 8, generator=gen)).to(dt).requires_grad_()
    y_hat = (y + 0.3 * torch.randn(n, generator=gen)).to(dt).requires_grad_()
    return {
        "features": x.to(dt),
        "latent": z,
        "predictions": y_hat,
        "values": y.to(dt),
        "leaves": [z, y_hat],
    }


def _attention_in(size: dict[str, int], dtype: str, seed: int) -> dict[str, Any]:
    """attention-entropy-reg: (1, 8 heads, rows queries, min(cols, 1024) keys) probabilities."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    shape = (1, 8, size["rows"], min(size["cols"], 1024))
    a = torch.softmax(3 * torch.randn(shape, generator=gen), -1).to(_dt(dtype)).requires_grad_()
    return {"attentions": a, "leaves": [a]}


def cases() -> dict[str, BenchCase]:
    """The rows added to :func:`xent_losses.bench.bench_cases`."""
    import xent_core

    teacher = _logits(teacher=True)
    bce = "F.binary_cross_entropy_with_logits"
    policy = ("logprobs", "old_logprobs", "advantages", "mask")
    out = {
        "aldr-kl": _row(
            "aldr-kl",
            NAIVE,
            _logits(lambda t, g, n, c, dt: {"sample_ids": t.arange(n), "num_samples": n}),
            _x(
                "aldr-kl",
                ("logits", "targets", "sample_ids"),
                eval_mode=True,  # the temperatures stay at lam0: every call is the same
                sized=lambda d: {"num_samples": d["num_samples"]},
            ),
            _p(_aldr_kl),
        ),
        "bias-loss": _row(
            "bias-loss",
            "F.cross_entropy x plain weights",
            _logits(_features),
            _x("bias-loss", ("logits", "targets", "features")),
            _p(_bias_loss),
        ),
        "binary-kd": _row(
            "binary-kd", bce, teacher, _x("binary-kd", ("logits", "teacher_logits")), _p(_binary_kd)
        ),
        "correctness-aware": _row(
            "correctness-aware",
            NAIVE,
            _logits(),
            _x("correctness-aware", ("logits", "targets")),
            _p(_correctness),
        ),
        "dist": _row("dist", NAIVE, teacher, _x("dist", ("logits", "teacher_logits")), _p(_dist)),
        "dkd": _row(
            "dkd", NAIVE, teacher, _x("dkd", ("logits", "targets", "teacher_logits")), _p(_dkd)
        ),
        "emo": _row(
            "emo",
            NAIVE,
            _logits(_classifier),
            _x("emo", ("logits", "targets", "classifier")),
            _p(_emo),
        ),
        "hl-gauss": _row(
            "hl-gauss",
            NAIVE,
            _logits(_values),  # rows items, cols bins
            _x("hl-gauss", ("logits", "values"), vmin=_VMIN, vmax=_VMAX, sized=_bins),
            _p(_hl_gauss),
        ),
        "two-hot": _row(
            "two-hot",
            NAIVE,
            _logits(_values),  # rows items, cols atoms
            _x("two-hot", ("logits", "values"), vmin=_VMIN, vmax=_VMAX, sized=_bins),
            _p(_two_hot),
        ),
        "skew-kl": _row(
            "skew-kl",
            "F.kl_div(log mix, teacher)",
            teacher,
            _x("skew-kl", ("logits", "teacher_logits")),
            _p(_skew_kl),
        ),
        "skew-reverse-kl": _row(
            "skew-reverse-kl",
            "F.kl_div(log mix, student)",
            teacher,
            _x("skew-reverse-kl", ("logits", "teacher_logits")),
            _p(_skew_reverse_kl),
        ),
        "symmetric-ce": _row(
            "symmetric-ce",
            NAIVE,
            teacher,
            _x("symmetric-ce", ("logits", "teacher_logits")),
            _p(_symmetric_ce),
        ),
        "dco": _row("dco", NAIVE, _dco_in, _dco_x, _p(_dco)),
        "cape": _row("cape", bce, _cape_in, _x("cape", ("logits", "targets")), _p(_bce)),
        "implicit-prm": _row(
            "implicit-prm",
            bce + " of the summed ratios",
            _policy,
            _x("implicit-prm", ("logprobs", "ref_logprobs", "labels", "mask")),
            _p(_implicit_prm),
        ),
        "kl-cov": _row("kl-cov", NAIVE, _policy, _x("kl-cov", policy), _p(_kl_cov)),
        "clip-cov": _row("clip-cov", NAIVE, _policy, _clip_cov_x, _p(_clip_cov)),
        "linear-cross-entropy": _row(
            "linear-cross-entropy",
            "F.cross_entropy(h @ W.T, y)",
            _linear(teacher=False),
            _x("linear-cross-entropy", ("hidden", "classifier", "targets")),
            _p(_lce),
        ),
        "linear-kd": _row(
            "linear-kd",
            "F.kl_div on h @ W.T",
            _linear(teacher=True),
            _x("linear-kd", ("hidden", "classifier", "teacher_hidden", "teacher_classifier")),
            _p(_lkd),
        ),
        "linear-jsd": _row(
            "linear-jsd",
            "TRL generalized JSD on h @ W.T",
            _linear(teacher=True),
            _x("linear-jsd", ("hidden", "classifier", "teacher_hidden", "teacher_classifier")),
            _p(_ljsd),
        ),
        "matrix-entropy-reg": _row(
            "matrix-entropy-reg",
            NAIVE,
            _embeddings("embeddings"),
            _x("matrix-entropy-reg", ("embeddings",)),
            _p(_matrix_entropy),
        ),
        "mmcr": _row(
            "mmcr", NAIVE, _embeddings("embeddings"), _x("mmcr", ("embeddings",)), _p(_mmcr)
        ),
        "nn-entropy-reg": _row(
            "nn-entropy-reg",
            NAIVE,
            _embeddings("embeddings"),
            _x("nn-entropy-reg", ("embeddings",)),
            _p(_koleo),
        ),
        "nt-xent": _row(
            "nt-xent",
            "F.cross_entropy over cosine similarities",
            _embeddings("view_a", "view_b"),
            _x("nt-xent", ("view_a", "view_b")),
            _p(_nt_xent),
        ),
        "dcov-reg": _row(
            "dcov-reg", NAIVE, _dcov_in, _x("dcov-reg", ("predictions", "protected")), _p(_dcov)
        ),
        "cs-ib": _row(
            "cs-ib",
            NAIVE,
            _cs_ib_in,
            _x("cs-ib", ("features", "latent", "predictions", "values")),
            _p(_cs_ib),
        ),
        "attention-entropy-reg": _row(
            "attention-entropy-reg",
            NAIVE,
            _attention_in,
            _x("attention-entropy-reg", ("attentions",)),
            _p(_attention_entropy),
        ),
    }
    if "brier" in {s.name for s in xent_core.list_components("loss")}:  # the example plugin
        out["brier"] = _row(
            "brier", NAIVE, _logits(), _x("brier", ("logits", "targets")), _p(_brier)
        )
    return out
