"""Distillation losses vs the plain PyTorch formula they replace, forward + backward on the CPU.

Each (loss, implementation) pair runs in a fresh subprocess, so its peak resident memory is its
own: the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` once the inputs exist) of
the first forward+backward minus the RSS at that reset. Time is the median of ``--repeats`` forward+backward passes (input checks off,
as in a training loop that validated its data once; ``--checks`` times them on).

Baselines (student logits ``s`` require grad, teacher ``t`` does not, ``T`` the temperature):

- ``kd``: ``T^2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, "batchmean")``.
- ``jsd``: TRL's ``GKDTrainer.generalized_jsd_loss`` (the raw JSD_beta, so xent runs with
  ``normalize=False``), imported from TRL itself.
- ``reverse-kl``: ``F.kl_div`` with the roles swapped.
- ``skew-kl`` / ``skew-reverse-kl``: the mixture's log-probabilities as a ``logsumexp`` over the
  stacked, weighted pair, then ``F.kl_div``.
- ``tvd``: ``0.5 * |softmax(s/T) - softmax(t/T)|.sum(-1).mean()``.

Usage::

    python benchmarks/distill_losses.py                  # 4 x 256 x 32768, fp32
    python benchmarks/distill_losses.py --losses jsd,kd --markdown

The CPU may be shared with other jobs: compare ratios from one side-by-side run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

LOSSES = ("kd", "jsd", "reverse-kl", "skew-kl", "skew-reverse-kl", "tvd", "dkd", "dist", "pld")
NEEDS_TARGETS = ("dkd", "pld")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); returns the current RSS."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    return _status_mib("VmHWM")


def _baseline(name: str, temp: float, beta: float, alpha: float):  # type: ignore[no-untyped-def]
    import math

    import torch
    import torch.nn.functional as F

    def logs(s, t):  # type: ignore[no-untyped-def]
        return F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1)

    def mixture(la, lb, w):  # type: ignore[no-untyped-def]
        return torch.logsumexp(torch.stack([la + math.log(w), lb + math.log1p(-w)]), 0)

    def flat(x):  # type: ignore[no-untyped-def]
        return x.reshape(-1, x.shape[-1])

    if name == "kd":
        return lambda s, t: (
            temp**2 * F.kl_div(*logs(flat(s), flat(t)), log_target=True, reduction="batchmean")
        )
    if name == "jsd":
        from trl.experimental.gkd.gkd_trainer import GKDTrainer

        def trl_jsd(s, t):  # type: ignore[no-untyped-def]
            labels = torch.zeros(s.shape[:-1], dtype=torch.long)  # mean over tokens, not rows
            return GKDTrainer.generalized_jsd_loss(s, t, labels, beta=beta, temperature=temp)

        return trl_jsd
    if name == "reverse-kl":

        def rkl(s, t):  # type: ignore[no-untyped-def]
            lq, lp = logs(flat(s), flat(t))
            return F.kl_div(lp, lq, log_target=True, reduction="batchmean")

        return rkl
    if name == "skew-kl":

        def skl(s, t):  # type: ignore[no-untyped-def]
            lq, lp = logs(flat(s), flat(t))
            return F.kl_div(mixture(lp, lq, alpha), lp, log_target=True, reduction="batchmean")

        return skl
    if name == "skew-reverse-kl":

        def srkl(s, t):  # type: ignore[no-untyped-def]
            lq, lp = logs(flat(s), flat(t))
            return F.kl_div(mixture(lq, lp, alpha), lq, log_target=True, reduction="batchmean")

        return srkl
    if name == "tvd":

        def tvd(s, t):  # type: ignore[no-untyped-def]
            q, p = F.softmax(flat(s) / temp, -1), F.softmax(flat(t) / temp, -1)
            return 0.5 * (q - p).abs().sum(-1).mean()

        return tvd
    if name == "dkd":  # alpha = 1, beta = 8 (the defaults), as its authors write it

        def dkd(s, t, y):  # type: ignore[no-untyped-def]
            s, t, y = flat(s) / temp, flat(t) / temp, y.reshape(-1)
            gt = F.one_hot(y, s.shape[-1]).bool()
            ps, pt = F.softmax(s, -1), F.softmax(t, -1)
            qy, py = ps.gather(1, y[:, None]), pt.gather(1, y[:, None])
            bs, bt = torch.cat([qy, 1 - qy], 1), torch.cat([py, 1 - py], 1)
            tckd = F.kl_div(torch.log(bs), bt, reduction="batchmean")
            lq2 = F.log_softmax(s - 1000.0 * gt, -1)
            lp2 = F.log_softmax(t - 1000.0 * gt, -1)
            nckd = F.kl_div(lq2, lp2, log_target=True, reduction="batchmean")
            return temp**2 * (tckd + 8.0 * nckd)

        return dkd
    if name == "dist":  # beta = gamma = 1

        def pearson(a, b, dim):  # type: ignore[no-untyped-def]
            a = a - a.mean(dim, keepdim=True)
            b = b - b.mean(dim, keepdim=True)
            return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + 1e-8)

        def dist(s, t):  # type: ignore[no-untyped-def]
            q, p = F.softmax(flat(s) / temp, -1), F.softmax(flat(t) / temp, -1)
            inter = (1 - pearson(q, p, 1)).mean()
            intra = (1 - pearson(q, p, 0)).mean()
            return temp**2 * (inter + intra)

        return dist
    if name == "pld":

        def pld(s, t, y):  # type: ignore[no-untyped-def]
            s, t, y = flat(s), flat(t), y.reshape(-1)
            order = t.scatter(1, y[:, None], float("inf")).argsort(-1, descending=True)
            ranked = s.gather(1, order)
            weight = F.softmax(t / temp, -1).gather(1, order)
            suffix = ranked.flip(-1).logcumsumexp(-1).flip(-1)
            return (weight * (suffix - ranked)).sum(-1).mean()

        return pld
    raise SystemExit(f"no baseline for {name}")


def child(args: argparse.Namespace) -> dict:
    import torch

    import xent_core

    torch.manual_seed(0)
    shape = (args.batch, args.seq, args.vocab)
    dtype = getattr(torch, args.dtype)
    student = torch.randn(shape, dtype=dtype).mul_(3).requires_grad_()  # no temporaries, so
    teacher = torch.randn(shape, dtype=dtype).mul_(3)  # the floor is the inputs' own peak
    name, impl = args.child.split("/")
    params = {"temperature": args.temperature}
    if name == "jsd":
        params.update(beta=args.beta, normalize=False)
    if name.startswith("skew"):
        params.update(alpha=args.alpha)
    extra = {}
    if name in NEEDS_TARGETS:
        extra["targets"] = torch.randint(0, args.vocab, shape[:-1])
    if impl == "xent":
        if name == "dkd":
            params.update(alpha=1.0, beta=8.0)
        loss_fn = xent_core.loss(name, **params)

        def step() -> torch.Tensor:
            return loss_fn(student, teacher_logits=teacher, **extra)

    else:
        base = _baseline(name, args.temperature, args.beta, args.alpha)

        def step() -> torch.Tensor:
            return base(student, teacher, *extra.values())

    torch.set_num_threads(args.threads)
    with xent_core.input_checks(args.checks):
        floor = _reset_peak()
        loss = step()
        loss.backward()
        peak = _peak_mib()
        grad = student.grad.detach().clone().double()
        times = []
        for _ in range(args.repeats):
            student.grad = None
            t0 = time.perf_counter()
            step().backward()
            times.append(time.perf_counter() - t0)
    out = {
        "loss": name,
        "impl": impl,
        "extra_mib": peak - floor,
        "median_s": statistics.median(times),
        "value": float(loss.detach()),
        "threads": torch.get_num_threads(),
    }
    if args.grad_file:
        torch.save(grad, args.grad_file)
    return out


def run(args: argparse.Namespace, name: str, impl: str, grad_file: str) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        f"{name}/{impl}",
        *("--batch", str(args.batch), "--seq", str(args.seq), "--vocab", str(args.vocab)),
        *("--temperature", str(args.temperature), "--beta", str(args.beta)),
        *("--alpha", str(args.alpha), "--repeats", str(args.repeats), "--dtype", args.dtype),
        *("--grad-file", grad_file, "--threads", str(args.threads)),
    ]
    if args.checks:
        cmd.append("--checks")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} logical CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (1: stable ratios)")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--checks", action="store_true", help="time with the input checks on")
    p.add_argument("--json", help="write full results here")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--grad-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    import tempfile

    import torch

    env = environment()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.losses.split(","):
            gx, gb = os.path.join(tmp, "x.pt"), os.path.join(tmp, "b.pt")
            x = run(args, name, "xent", gx)
            b = run(args, name, "torch", gb)
            ga, gr = torch.load(gx), torch.load(gb)
            grad_diff = float((ga - gr).abs().max() / gr.abs().max().clamp(min=1e-30))
            rows.append(
                {
                    "loss": name,
                    "xent": x,
                    "torch": b,
                    "time_ratio": x["median_s"] / b["median_s"],
                    "mem_ratio": x["extra_mib"] / max(b["extra_mib"], 1e-9),
                    "value_rel_diff": abs(x["value"] - b["value"]) / max(abs(b["value"]), 1e-30),
                    "grad_rel_diff": grad_diff,
                }
            )
            print(
                f"{name:<16} time {x['median_s']:.3f}/{b['median_s']:.3f} s = "
                f"{rows[-1]['time_ratio']:.2f}x  mem {x['extra_mib']:.0f}/{b['extra_mib']:.0f} MiB"
                f" = {rows[-1]['mem_ratio']:.2f}x  value diff {rows[-1]['value_rel_diff']:.1e}"
                f"  grad diff {grad_diff:.1e}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "env": env, "rows": rows}, fh, indent=2)
    if args.markdown:
        print()
        print(
            f"{args.batch} x {args.seq} x {args.vocab}, {args.dtype}, T={args.temperature}, "
            f"forward+backward, {args.threads} thread(s), input checks {'on' if args.checks else 'off'}, median of "
            f"{args.repeats}; {env['date']}, {env['machine']}, Python {env['python']}, torch "
            f"{env['torch']}, 1-min load average {env['load_avg_1m']:.1f} at the start."
        )
        print()
        print("| loss | baseline | time xent / baseline (s) | time ratio | peak MiB xent / baseline "
              "| memory ratio | max rel. diff (loss, grad) |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            x, b = r["xent"], r["torch"]
            print(
                f"| `{r['loss']}` | {_BASE_NAMES[r['loss']]} | {x['median_s']:.3f} / "
                f"{b['median_s']:.3f} | {r['time_ratio']:.2f} | {x['extra_mib']:.0f} / "
                f"{b['extra_mib']:.0f} | {r['mem_ratio']:.2f} | {r['value_rel_diff']:.0e}, "
                f"{r['grad_rel_diff']:.0e} |"
            )


_BASE_NAMES = {
    "kd": "T^2 F.kl_div",
    "jsd": "TRL generalized_jsd_loss",
    "reverse-kl": "F.kl_div (swapped)",
    "skew-kl": "logsumexp mixture + F.kl_div",
    "skew-reverse-kl": "logsumexp mixture + F.kl_div",
    "tvd": "softmax, abs, sum",
    "dkd": "softmax, gather, kl_div (masks as its authors)",
    "dist": "softmax, Pearson by rows and columns",
    "pld": "argsort, gather, logcumsumexp",
}


if __name__ == "__main__":
    main()
