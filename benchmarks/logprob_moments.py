"""Peak memory and time of ``logprob-moments`` vs the same moments from materialised logits.

Each variant runs in a fresh subprocess on the same seeded inputs (``N`` tokens, ``V`` classes,
``D`` hidden, fp32) and reports its peak RSS over a floor taken in the same process after the
inputs exist (CPU) or ``torch.cuda.max_memory_allocated`` over the allocated bytes before the
region (CUDA), plus the median time of ``--repeats`` runs. The materialised variant is what a
user writes without the kernel: ``log_softmax(hidden @ classifier.T)`` then the target gather,
``-sum p log p`` and ``sum p (log p)^2 - H^2`` (forward only, under ``torch.no_grad``, like the
kernel's forward). Both results are checked against each other.

    python benchmarks/logprob_moments.py --tokens 2048 --vocab 32768 --hidden 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _materialised(h, w, y):  # type: ignore[no-untyped-def]
    import torch

    logp = torch.log_softmax(h @ w.T, -1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    var = (p * logp.square()).sum(-1) - ent.square()
    return logp.gather(-1, y[:, None])[:, 0], ent, var


def worker(args: argparse.Namespace) -> dict:
    import torch
    from xent_cce.torch.moments import logprob_moments

    g = torch.Generator().manual_seed(0)
    h = torch.randn(args.tokens, args.hidden, generator=g)
    w = torch.randn(args.vocab, args.hidden, generator=g) / args.hidden**0.5
    y = torch.randint(0, args.vocab, (args.tokens,), generator=g)
    cuda = args.device == "cuda"
    if cuda:
        h, w, y = h.cuda(), w.cuda(), y.cuda()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    floor = _rss_mb()

    def run():  # type: ignore[no-untyped-def]
        with torch.no_grad():
            if args.variant == "materialised":
                return _materialised(h, w, y)
            return tuple(logprob_moments(h, w, y))

    times = []
    out = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _rss_mb() - floor
    assert out is not None
    return {
        "variant": args.variant,
        "peak_mb": peak,
        "median_s": statistics.median(times),
        "values": [t.double().sum().item() for t in out],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(worker(args)))
        return
    rows = {}
    for variant in ("materialised", "logprob-moments"):
        cmd = [sys.executable, __file__, "--variant", variant]
        for k in ("tokens", "vocab", "hidden", "repeats", "device"):
            cmd += [f"--{k}", str(getattr(args, k))]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows[variant] = json.loads(out.strip().splitlines()[-1])
    a, b = rows["materialised"], rows["logprob-moments"]
    agree = all(abs(x - z) <= 1e-3 * max(1.0, abs(x)) for x, z in zip(a["values"], b["values"]))
    import torch

    print(
        f"N={args.tokens} V={args.vocab} D={args.hidden} fp32 {args.device}, torch {torch.__version__}"
    )
    print("| variant | peak MiB | x materialised | median s | x materialised |")
    print("|---|---:|---:|---:|---:|")
    for r in (a, b):
        print(
            f"| {r['variant']} | {r['peak_mb']:.0f} | {r['peak_mb'] / a['peak_mb']:.2f} | "
            f"{r['median_s']:.3f} | {r['median_s'] / a['median_s']:.2f} |"
        )
    print(f"results agree (sums within 1e-3 relative): {agree}")


if __name__ == "__main__":
    main()
