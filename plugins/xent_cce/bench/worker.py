"""One benchmark run of one linear cross-entropy kernel, in a fresh process.

``python -m xent_cce.bench.worker --impl cce-torch --tokens 4096 --vocab 32768 --hidden 512``
prints JSON lines on stdout: ``{"event": "progress", ...}`` after each forward+backward, then one
``{"event": "result", ...}``. Inputs come from a seeded CPU generator, so every process (and
every device) sees the same numbers.

Memory: on CUDA, ``max_memory_allocated`` over the inputs; on the CPU, the peak resident set
(``getrusage``) over a floor measured in this process after creating the inputs and buffers the
size of the gradients (then freed). So the CPU figure is what the loss needs beyond inputs and
gradients, and the CUDA figure ``peak_over_inputs_mb`` includes the gradients themselves
(``grad_mb`` says how much that is).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
from typing import Any

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64"}


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _rss_mb() -> float:
    """Peak resident set of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def make_inputs(
    tokens: int, vocab: int, hidden: int, dtype: Any, device: str, seed: int
) -> tuple[Any, Any, Any]:
    """``hidden ~ N(0, 1)``, ``classifier ~ N(0, 1/D)`` (logits ~ N(0, 1)), uniform targets."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=gen)
    w = torch.randn(vocab, hidden, generator=gen).mul_(1.0 / math.sqrt(hidden))
    y = torch.randint(0, vocab, (tokens,), generator=gen)
    return (
        h.to(device=device, dtype=dtype).requires_grad_(),
        w.to(device=device, dtype=dtype).requires_grad_(),
        y.to(device),
    )


def _rel_err(got: Any, ref: Any) -> float:
    got, ref = got.double().cpu(), ref.double().cpu()
    scale = ref.abs().max().item()
    return float((got - ref).abs().max().item() / (scale if scale > 0 else 1.0))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from xent_cce.selection import create_kernel
    from xent_cce.semantics import LinearCEOptions, run_kernel

    result: dict[str, Any] = {"event": "result", "impl": args.impl, "status": "ok"}
    kernel = create_kernel(args.impl)
    ok, reason = kernel.available()
    result["reason"] = reason
    if not ok:
        result["status"] = "unavailable"
        return result
    dtype = getattr(torch, DTYPES[args.dtype])
    cuda = args.device.startswith("cuda")
    h, w, y = make_inputs(args.tokens, args.vocab, args.hidden, dtype, args.device, args.seed)
    if args.float64:
        h = h.detach().double().requires_grad_()
        w = w.detach().double().requires_grad_()
    grad_bytes = h.numel() * h.element_size() + w.numel() * w.element_size()
    result["grad_mb"] = grad_bytes / 2**20
    filter_eps = None if args.filter_eps == "none" else args.filter_eps
    if filter_eps not in (None, "auto"):
        filter_eps = float(filter_eps)
    opts = LinearCEOptions(filter_eps=filter_eps, return_lse=False)

    def step() -> Any:
        h.grad, w.grad = None, None
        loss, _ = run_kernel(kernel, h, w, y, None, opts)
        loss.backward()
        return loss

    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        buffers = [torch.zeros_like(h), torch.zeros_like(w)]  # the gradients' own footprint
        floor = _rss_mb()
        del buffers
        gc.collect()
    times: list[float] = []
    total = args.warmup + args.repeats
    loss = None
    for i in range(total):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
        _emit({"event": "progress", "impl": args.impl, "done": i + 1, "total": total, "s": dt})
    if cuda:
        result["peak_over_inputs_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        result["peak_mb"] = result["peak_over_inputs_mb"] - result["grad_mb"]
    else:
        result["peak_mb"] = _rss_mb() - floor
        result["floor_mb"] = floor
    times.sort()
    result["times_s"] = times
    result["median_s"] = (
        times[len(times) // 2]
        if len(times) % 2
        else sum(times[len(times) // 2 - 1 : len(times) // 2 + 1]) / 2
    )
    assert loss is not None and h.grad is not None and w.grad is not None
    outputs = {"loss": loss.detach(), "d_hidden": h.grad, "d_classifier": w.grad}
    result["loss"] = float(loss.detach())
    if args.save:
        torch.save({k: v.detach().float().cpu() for k, v in outputs.items()}, args.save)
    if args.reference:
        ref = torch.load(args.reference)
        errs = {k: _rel_err(outputs[k], ref[k]) for k in outputs}
        result["errors"] = errs
        result["max_rel_err"] = max(errs.values())
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", required=True, help="kernel spec, e.g. torch-native(chunked=True)")
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--filter-eps", default="auto", help="'auto', 'none' or a number")
    p.add_argument("--float64", action="store_true", help="upcast the inputs to float64")
    p.add_argument("--save", default=None, help="save loss and gradients here (reference)")
    p.add_argument("--reference", default=None, help="compare with outputs saved by --save")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = run(args)
    except Exception as exc:  # reported to the parent as a failed row, not a traceback
        result = {
            "event": "result",
            "impl": args.impl,
            "status": "failed",
            "reason": f"{type(exc).__name__}: {exc}",
        }
    _emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
