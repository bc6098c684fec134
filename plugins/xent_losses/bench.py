"""The ``xent bench losses`` suite: every loss against PyTorch or the plain torch formula.

Each case times forward + backward with input checks off (``--checks`` turns them on, to
measure their cost separately). Peers are what a user would write without xent: PyTorch's
``F.cross_entropy``, ``T^2 * F.kl_div`` for kd, the generalized JSD formula as TRL writes it
(re-written here, TRL is not imported), and the plain torch formula of every other loss (the
"no peer" rows: their naive formula is the baseline). The peer runs in the input dtype, as a
user would run it; xent computes half precision in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from xent_core.benchmarking import BenchCase, unlisted_components

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64"}
SIZE = {"rows": 2048, "cols": 32768}


def _inputs(
    size: dict[str, int], dtype: str, seed: int, ignore: float = 0.0, teacher_needed: bool = False
) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    n, c = size["rows"], size["cols"]
    dt = getattr(torch, _DTYPES[dtype])

    def draw() -> Any:
        # block by block: no transient float32 copy raises the memory floor of the worker
        out = torch.empty(n, c, dtype=dt)
        step = max(1, (1 << 20) // c)
        for r0 in range(0, n, step):
            out[r0 : r0 + step] = torch.randn(min(step, n - r0), c, generator=gen).mul_(2.0)
        return out

    x = draw().requires_grad_()
    y = torch.randint(0, c, (n,), generator=gen)
    if ignore:
        y[torch.rand(n, generator=gen) < ignore] = -100
    teacher = draw() if teacher_needed else None
    return {"x": x, "y": y, "teacher": teacher, "gen": gen, "n": n, "c": c}


def _case(
    component: str,
    peer: str,
    xent: Callable[[dict[str, Any]], Callable[[], Any]],
    naive: Callable[[dict[str, Any]], Callable[[], Any]],
    *,
    ignore: float = 0.0,
    compiled: bool = False,
    teacher: bool = False,
) -> BenchCase:
    """A case whose xent and peer functions take the inputs dict and return the loss."""

    def make(variant: str, size: dict[str, int], dtype: str, seed: int):  # type: ignore[no-untyped-def]
        d = _inputs(size, dtype, seed, ignore, teacher)
        fn = xent(d) if variant == "xent" else naive(d)
        x = d["x"]

        def step() -> Sequence[Any]:
            x.grad = None
            loss = fn()
            loss.backward()
            return (loss.detach(), x.grad)

        return step, [x]

    return BenchCase(component, peer, make, dict(SIZE), compiled)


def _loss(name: str, extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None, **params):  # type: ignore[no-untyped-def]
    """xent variant: ``xent_core.loss(name, **params)`` called with logits/targets (+ extra)."""

    def build(d: dict[str, Any]) -> Callable[[], Any]:
        import xent_core

        module = xent_core.loss(name, **params)
        kwargs = extra(d) if extra else {"targets": d["y"]}
        return lambda: module(logits=d["x"], **kwargs)

    return build


# ---------------------------------------------------------------- plain torch formulas (peers)
def _f_ce(**kw: Any) -> Callable[[dict[str, Any]], Callable[[], Any]]:
    def build(d: dict[str, Any]) -> Callable[[], Any]:
        import torch.nn.functional as F

        if kw.get("weight") == "random":
            import torch

            w = torch.rand(d["c"], generator=torch.Generator().manual_seed(1)) + 0.5
            kw2 = dict(kw, weight=w.to(d["x"].dtype))
        else:
            kw2 = kw
        return lambda: F.cross_entropy(d["x"], d["y"], **kw2)

    return build


def _weights(c: int) -> list[float]:
    import torch

    return (torch.rand(c, generator=torch.Generator().manual_seed(1)) + 0.5).tolist()


def _naive(
    formula: Callable[[Any, Any, Any], Any],
) -> Callable[[dict[str, Any]], Callable[[], Any]]:
    """Peer from ``formula(torch, logits, targets) -> loss``."""

    def build(d: dict[str, Any]) -> Callable[[], Any]:
        import torch

        return lambda: formula(torch, d["x"], d["y"])

    return build


def _lpt(t: Any, x: Any, y: Any) -> Any:
    return t.log_softmax(x, -1).gather(1, y[:, None]).squeeze(1)


def _dice(t: Any, x: Any, y: Any, alpha: float = 0.01, smooth: float = 1.0) -> Any:
    p = t.softmax(x, -1)
    q = (1 - p).pow(alpha) * p
    onehot = t.nn.functional.one_hot(y, x.shape[-1]).to(p.dtype)
    return (1 - (2 * q * onehot + smooth) / (q * q + onehot + smooth)).sum(-1).mean()


def _ldr_kl(t: Any, x: Any, y: Any, margin: float = 0.1, lam: float = 10.0) -> Any:
    s = t.nn.functional.softplus(x)
    s = s / s.mean(-1, keepdim=True)
    gaps = margin + s - s.gather(1, y[:, None])
    gaps = gaps.scatter(1, y[:, None], 0.0)
    return (lam * (t.logsumexp(gaps / lam, -1) - math.log(x.shape[-1]))).mean()


def _pass_at_n(t: Any, x: Any, y: Any, n: int = 4) -> Any:
    p = t.softmax(x, -1).gather(1, y[:, None]).squeeze(1)
    return (-t.log(1 - (1 - p).pow(n))).mean()


def _kd(d: dict[str, Any], temperature: float = 2.0) -> Callable[[], Any]:
    import torch.nn.functional as F

    def fn() -> Any:
        s = F.log_softmax(d["x"] / temperature, -1)
        tt = F.log_softmax(d["teacher"] / temperature, -1)
        return temperature**2 * F.kl_div(s, tt, reduction="batchmean", log_target=True)

    return fn


def _jsd_trl(d: dict[str, Any], beta: float = 0.5) -> Callable[[], Any]:
    """The generalized JSD as TRL's GKD trainer writes it (re-written, not imported)."""
    import torch
    import torch.nn.functional as F

    def fn() -> Any:
        s = F.log_softmax(d["x"], -1)
        tt = F.log_softmax(d["teacher"], -1)
        b = torch.tensor(beta, dtype=s.dtype)
        mix = torch.logsumexp(torch.stack([s + torch.log(1 - b), tt + torch.log(b)]), dim=0)
        kl_t = F.kl_div(mix, tt, reduction="none", log_target=True)
        kl_s = F.kl_div(mix, s, reduction="none", log_target=True)
        return (beta * kl_t + (1 - beta) * kl_s).sum() / s.shape[0]

    return fn


def _reverse_kl(d: dict[str, Any]) -> Callable[[], Any]:
    import torch.nn.functional as F

    def fn() -> Any:
        s = F.log_softmax(d["x"], -1)
        tt = F.log_softmax(d["teacher"], -1)
        return F.kl_div(tt, s, reduction="batchmean", log_target=True)

    return fn


def _tvd(d: dict[str, Any]) -> Callable[[], Any]:
    import torch

    def fn() -> Any:
        diff = torch.softmax(d["x"], -1) - torch.softmax(d["teacher"], -1)
        return 0.5 * diff.abs().sum(-1).mean()

    return fn


def _pld(d: dict[str, Any]) -> Callable[[], Any]:
    """Plackett-Luce distillation written plainly (label first, then by teacher logit)."""
    import torch.nn.functional as F

    def fn() -> Any:
        s, t, y = d["x"], d["teacher"], d["y"]
        order = t.scatter(1, y[:, None], float("inf")).argsort(-1, descending=True)
        ranked = s.gather(1, order)
        weight = F.softmax(t, -1).gather(1, order)
        suffix = ranked.flip(-1).logcumsumexp(-1).flip(-1)
        return (weight * (suffix - ranked)).sum(-1).mean()

    return fn


def _teacher_and_targets(d: dict[str, Any]) -> dict[str, Any]:
    return {"teacher_logits": d["teacher"], "targets": d["y"]}


def _teacher(d: dict[str, Any]) -> dict[str, Any]:
    return {"teacher_logits": d["teacher"]}


def bench_cases() -> dict[str, BenchCase]:
    """The suite: case name -> :class:`BenchCase`."""
    from .bench_rows import cases

    F_CE = "F.cross_entropy"
    return {
        "cross-entropy": _case(
            "cross-entropy", F_CE, _loss("cross-entropy"), _f_ce(), compiled=True
        ),
        "cross-entropy(ignore 10%)": _case(
            "cross-entropy", F_CE, _loss("cross-entropy"), _f_ce(), ignore=0.1
        ),
        "cross-entropy(label_smoothing)": _case(
            "cross-entropy",
            F_CE,
            _loss("cross-entropy", label_smoothing=0.1),
            _f_ce(label_smoothing=0.1),
        ),
        "cross-entropy(weight)": _case(
            "cross-entropy",
            F_CE,
            lambda d: _loss("cross-entropy", weight=_weights(d["c"]))(d),
            _f_ce(weight="random"),
        ),
        "cross-entropy(z_loss)": _case(
            "cross-entropy",
            "F.cross_entropy + z * lse^2",
            _loss("cross-entropy", z_loss=1e-4),
            _naive(
                lambda t, x, y: (
                    t.nn.functional.cross_entropy(x, y) + 1e-4 * t.logsumexp(x, -1).square().mean()
                )
            ),
        ),
        "cross-entropy(softcap)": _case(
            "cross-entropy",
            "F.cross_entropy(30 tanh(x/30))",
            _loss("cross-entropy", softcap=30.0),
            _naive(lambda t, x, y: t.nn.functional.cross_entropy(30 * t.tanh(x / 30), y)),
        ),
        "z-loss": _case(
            "z-loss",
            "no peer: 1e-4 * lse^2",
            _loss("z-loss"),
            _naive(lambda t, x, y: 1e-4 * t.logsumexp(x, -1).square().mean()),
        ),
        "focal": _case(
            "focal",
            "plain formula",
            _loss("focal"),
            _naive(lambda t, x, y: (-((1 - _lpt(t, x, y).exp()) ** 2) * _lpt(t, x, y)).mean()),
            compiled=True,
        ),
        "poly1": _case(
            "poly1",
            "plain formula",
            _loss("poly1"),
            _naive(lambda t, x, y: (-_lpt(t, x, y) + 1 - _lpt(t, x, y).exp()).mean()),
        ),
        "generalized-ce": _case(
            "generalized-ce",
            "plain formula",
            _loss("generalized-ce"),
            _naive(lambda t, x, y: ((1 - _lpt(t, x, y).exp().pow(0.7)) / 0.7).mean()),
        ),
        "comp-sum": _case(
            "comp-sum",
            "plain formula",
            _loss("comp-sum", tau=0.5),
            _naive(lambda t, x, y: ((1 - _lpt(t, x, y).exp().pow(-0.5)) / -0.5).mean()),
        ),
        "mae": _case(
            "mae",
            "plain formula",
            _loss("mae"),
            _naive(lambda t, x, y: (1 - _lpt(t, x, y).exp()).mean()),
        ),
        "dice": _case("dice", "no peer: naive formula", _loss("dice"), _naive(_dice)),
        "ldr-kl": _case("ldr-kl", "no peer: naive formula", _loss("ldr-kl"), _naive(_ldr_kl)),
        "pass-at-n": _case(
            "pass-at-n", "no peer: naive formula", _loss("pass-at-n"), _naive(_pass_at_n)
        ),
        "kd": _case(
            "kd",
            "T^2 * F.kl_div",
            _loss("kd", extra=_teacher, temperature=2.0),
            _kd,
            compiled=True,
            teacher=True,
        ),
        "jsd": _case(
            "jsd",
            "TRL generalized JSD",
            # TRL's raw JSD_beta: xent's default divides it by beta (1 - beta)
            _loss("jsd", extra=_teacher, beta=0.5, normalize=False),
            _jsd_trl,
            teacher=True,
        ),
        "reverse-kl": _case(
            "reverse-kl",
            "F.kl_div (reversed)",
            _loss("reverse-kl", extra=_teacher),
            _reverse_kl,
            teacher=True,
        ),
        "tvd": _case(
            "tvd", "no peer: naive formula", _loss("tvd", extra=_teacher), _tvd, teacher=True
        ),
        "pld": _case(
            "pld",
            "argsort, gather, logcumsumexp",
            _loss("pld", extra=_teacher_and_targets),
            _pld,
            teacher=True,
        ),
        **cases(),
    }


#: registered losses with no row in this suite, and why (listed under the table)
NOT_BENCHMARKED: dict[str, str] = {}


def unlisted() -> dict[str, str]:
    """Every registered loss without a row here (any plugin), with the reason shown."""
    return unlisted_components("loss", bench_cases(), NOT_BENCHMARKED)
