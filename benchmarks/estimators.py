"""Estimator benchmarks: vendi dual vs n x n, dse vs a plain numpy DSE, kNN/KSG at n=1e5, and
token-entropy peak memory from hidden states vs materialised logits.

Run everything (minutes on a quiet machine; much longer on a loaded one)::

    python benchmarks/estimators.py
    python benchmarks/estimators.py --only vendi --vendi-n 20000 --vendi-gram-n 20000

Sections: ``vendi``, ``dse``, ``knn``, ``token``. Each prints a markdown table; ``--json PATH``
also writes every number. Memory is the peak RSS of a fresh subprocess per variant, minus the
same process's peak just before the measured region (CPU). Times are medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- helpers
def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (after one untimed warm-up) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def once(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def machine() -> dict[str, Any]:
    import scipy
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
    }


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak RSS growth over a region: resets the kernel's high-water mark (Linux
    ``/proc/self/clear_refs``), then reads ``VmHWM`` after the region minus ``VmRSS`` before.
    Falls back to ``ru_maxrss`` differences where the reset is not allowed."""

    def __enter__(self) -> PeakMemory:
        self.reset = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset = True
        except OSError:
            pass
        self.rss_before = _status_kib("VmRSS")
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kib("VmHWM")
        if self.reset and hwm is not None and self.rss_before is not None:
            self.mib = max(0, hwm - self.rss_before) / 1024
            self.method = "VmHWM after clear_refs"
        else:
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.mib = max(0, after - self.maxrss_before) / 1024
            self.method = "ru_maxrss delta (upper bound not reset)"


# --------------------------------------------------------------------------- vendi
def bench_vendi(n: int, d: int, gram_n: int, repeats: int) -> dict[str, Any]:
    import torch

    import xent_core

    rng = np.random.default_rng(0)
    # embeddings with a decaying spectrum, so the score is not trivially d
    x = rng.normal(size=(n, d)) * (np.arange(1, d + 1) ** -0.5)
    dual = xent_core.estimator("vendi", method="dual")
    gram = xent_core.estimator("vendi", method="gram")
    t_dual, v_dual = median_time(lambda: dual(x), repeats)
    rows = [{"n": n, "path": "dual (d x d)", "seconds": t_dual, "value": v_dual}]
    # the n x n path at gram_n (one run: O(n^3)); the dual at the same n for the value check
    xs = x[:gram_n]
    t_gram, v_gram = once(lambda: gram(xs))
    t_dual_s, v_dual_s = median_time(lambda: dual(xs), repeats)
    rows.append({"n": gram_n, "path": "gram (n x n)", "seconds": t_gram, "value": v_gram})
    if gram_n != n:
        rows.append({"n": gram_n, "path": "dual (d x d)", "seconds": t_dual_s, "value": v_dual_s})
    rel = abs(v_gram - v_dual_s) / abs(v_gram)
    del torch
    return {
        "rows": rows,
        "speedup_at_gram_n": t_gram / t_dual_s,
        "rel_diff_at_gram_n": rel,
        "d": d,
    }


# --------------------------------------------------------------------------- dse
def naive_dse_numpy(x: np.ndarray, sigma: float, t: float = 1.0) -> float:
    """The definition written plainly in float64 numpy: distances, P = D^-1 K, eigvals(P)."""
    from scipy.spatial.distance import cdist

    k = np.exp(-cdist(x, x, "sqeuclidean") / (2 * sigma**2))
    p = k / k.sum(axis=1, keepdims=True)
    lam = np.abs(np.linalg.eigvals(p).real) ** t
    a = lam / lam.sum()
    a = a[a > 0]
    return float(-(a * np.log2(a)).sum())


def symmetric_dse_numpy(x: np.ndarray, sigma: float, t: float = 1.0) -> float:
    """A careful numpy version: symmetric normalisation + eigvalsh (no GEMM trick)."""
    from scipy.spatial.distance import cdist

    k = np.exp(-cdist(x, x, "sqeuclidean") / (2 * sigma**2))
    r = 1 / np.sqrt(k.sum(axis=1))
    lam = np.abs(np.linalg.eigvalsh(k * r[:, None] * r[None, :])) ** t
    a = lam / lam.sum()
    a = a[a > 0]
    return float(-(a * np.log2(a)).sum())


def bench_dse(n: int, d: int, sigma: float, repeats: int, naive: bool) -> dict[str, Any]:
    import xent_core

    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d))
    ours = xent_core.estimator("dse", sigma=sigma)
    fast = xent_core.estimator("dse", sigma=sigma, precision="float32")
    rows = []
    t64, v64 = median_time(lambda: ours(x), repeats)
    t32, v32 = median_time(lambda: fast(x), repeats)
    tsym, vsym = median_time(lambda: symmetric_dse_numpy(x, sigma), max(1, repeats // 2))
    ref_t, ref_v = once(lambda: naive_dse_numpy(x, sigma)) if naive else (math.nan, vsym)
    rows.append(
        {"variant": "numpy float64, eigvals(P) (straightforward)", "seconds": ref_t, "value": ref_v}
    )
    rows.append({"variant": "numpy float64, symmetric eigvalsh", "seconds": tsym, "value": vsym})
    rows.append({"variant": "xent dse float64 (GEMM + eigvalsh)", "seconds": t64, "value": v64})
    rows.append({"variant": "xent dse float32 (approximate)", "seconds": t32, "value": v32})
    for r in rows:
        r["rel_err_vs_reference"] = abs(r["value"] - ref_v) / abs(ref_v)
        r["time_vs_reference"] = r["seconds"] / ref_t if naive else math.nan
    return {"rows": rows, "n": n, "d": d, "sigma": sigma}


# --------------------------------------------------------------------------- knn / ksg
def bench_knn(n: int, d: int) -> dict[str, Any]:
    """Runs each estimator in a fresh subprocess to read its time and peak memory."""
    rows = []
    for name in ("knn-entropy", "ksg-mi"):
        out = _worker(["--knn-worker", name, "--n", str(n), "--d", str(d)])
        rows.append(out)
    return {"rows": rows, "n": n, "d": d}


def knn_worker(name: str, n: int, d: int) -> dict[str, Any]:
    import xent_core

    rng = np.random.default_rng(2)
    est = xent_core.estimator(name)
    if name == "knn-entropy":
        x = rng.normal(size=(n, d))
        truth = 0.5 * d * math.log(2 * math.pi * math.e)
        args: tuple[Any, ...] = (x,)
    else:  # x in R^{d/2}, y = x + noise in R^{d/2}: I = (d/2) * 0.5 log(1 + 1/s^2)
        h = d // 2
        x = rng.normal(size=(n, h))
        y = x + rng.normal(size=(n, h))
        truth = h * 0.5 * math.log(2.0)
        args = (x, y)
    est(*(a[:2000] for a in args))  # imports and warm-up outside the region
    with PeakMemory() as mem:
        t, value = once(lambda: est(*args))
    return {
        "estimator": name,
        "seconds": t,
        "value": value,
        "truth": truth,
        "peak_mib": mem.mib,
        "input_mib": sum(a.nbytes for a in args) / 2**20,
        "dense_nxn_gib": n * n * 8 / 2**30,
        "memory_method": mem.method,
    }


# --------------------------------------------------------------------------- token entropy
def bench_token(n: int, d: int, v: int) -> dict[str, Any]:
    rows = [
        _worker(["--token-worker", variant, "--n", str(n), "--d", str(d), "--v", str(v)])
        for variant in ("materialised", "categorical", "logits-chunked", "kernel")
    ]
    base = rows[0]
    for r in rows:
        if "peak_mib" in r and base.get("peak_mib"):
            r["memory_vs_materialised"] = r["peak_mib"] / base["peak_mib"]
            r["abs_diff_vs_materialised"] = abs(r["value"] - base["value"])
    return {"rows": rows, "n": n, "d": d, "v": v}


def token_worker(variant: str, n: int, d: int, v: int) -> dict[str, Any]:
    import torch

    import xent_core

    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(n, d, generator=g)
    classifier = torch.randn(v, d, generator=g) / math.sqrt(d) * 4
    if variant == "materialised":  # the textbook two-liner

        def run() -> float:
            logits = hidden @ classifier.T
            logp = torch.log_softmax(logits, dim=-1)
            return float(-(logp.exp() * logp).sum(-1).mean())

    elif variant == "categorical":  # torch.distributions

        def run() -> float:
            logits = hidden @ classifier.T
            return float(torch.distributions.Categorical(logits=logits).entropy().mean())

    elif variant == "logits-chunked":  # full logits, then token-entropy's row-chunked logits path
        est = xent_core.estimator("token-entropy")

        def run() -> float:
            return est(logits=hidden @ classifier.T)

    else:
        names = {s.name for s in xent_core.list_components("kernel")}
        if "cce-torch" not in names:
            return {"variant": variant, "skipped": "kernel cce-torch not registered"}
        est = xent_core.estimator("token-entropy")

        def run() -> float:
            return est(hidden=hidden, classifier=classifier)

    # warm-up on a slice outside the region (imports, allocator, thread pools)
    small_h, small_c = hidden[:64], classifier[:1024]
    if variant in ("materialised", "categorical"):
        torch.distributions.Categorical(logits=small_h @ small_c.T).entropy()
    elif variant == "logits-chunked":
        est(logits=small_h @ small_c.T)
    else:
        est(hidden=small_h, classifier=small_c)
    with PeakMemory() as mem:
        t, value = once(run)
    return {
        "variant": variant,
        "seconds": t,
        "value": value,
        "peak_mib": mem.mib,
        "logits_mib": n * v * 4 / 2**20,
        "memory_method": mem.method,
    }


# --------------------------------------------------------------------------- plumbing
def _worker(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"], "args": args}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            return f"{v:.3g}" if (abs(v) < 1e-3 or abs(v) >= 1e4) and v != 0 else f"{v:.4f}"
        return str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="vendi,dse,knn,token")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vendi-n", type=int, default=20000)
    ap.add_argument("--vendi-gram-n", type=int, default=20000)
    ap.add_argument("--vendi-d", type=int, default=256)
    ap.add_argument("--dse-n", type=int, default=4000)
    ap.add_argument("--dse-d", type=int, default=256)
    ap.add_argument("--dse-sigma", type=float, default=10.0)
    ap.add_argument("--no-naive", action="store_true", help="skip the slow eigvals(P) baseline")
    ap.add_argument("--json", default=None)
    ap.add_argument("--knn-worker", default=None)
    ap.add_argument("--token-worker", default=None)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--d", type=int, default=0)
    ap.add_argument("--v", type=int, default=0)
    a = ap.parse_args()
    if a.knn_worker:
        print(json.dumps(knn_worker(a.knn_worker, a.n, a.d)))
        return
    if a.token_worker:
        print(json.dumps(token_worker(a.token_worker, a.n, a.d, a.v)))
        return
    results: dict[str, Any] = {"machine": machine()}
    print(json.dumps(results["machine"]))
    only = set(a.only.split(","))
    if "vendi" in only:
        r = bench_vendi(a.vendi_n, a.vendi_d, a.vendi_gram_n, a.repeats)
        results["vendi"] = r
        print(f"\n### vendi, d={r['d']}\n")
        print(_table(r["rows"], ["n", "path", "seconds", "value"]))
        print(
            f"\nn x n / dual at n={a.vendi_gram_n}: {r['speedup_at_gram_n']:.1f}x; "
            f"relative difference {r['rel_diff_at_gram_n']:.2e}"
        )
    if "dse" in only:
        r = bench_dse(a.dse_n, a.dse_d, a.dse_sigma, a.repeats, not a.no_naive)
        results["dse"] = r
        print(f"\n### dse, n={r['n']}, d={r['d']}, sigma={r['sigma']}\n")
        print(
            _table(
                r["rows"],
                ["variant", "seconds", "time_vs_reference", "value", "rel_err_vs_reference"],
            )
        )
    if "knn" in only:
        r = bench_knn(100_000, 8)
        results["knn"] = r
        print(f"\n### knn-entropy / ksg-mi, n={r['n']}, d={r['d']}\n")
        print(
            _table(
                r["rows"],
                [
                    "estimator",
                    "seconds",
                    "value",
                    "truth",
                    "peak_mib",
                    "input_mib",
                    "dense_nxn_gib",
                ],
            )
        )
    if "token" in only:
        r = bench_token(4096, 512, 32768)
        results["token"] = r
        print(f"\n### token-entropy from hidden, N={r['n']}, D={r['d']}, V={r['v']}\n")
        print(
            _table(
                r["rows"],
                [
                    "variant",
                    "seconds",
                    "peak_mib",
                    "memory_vs_materialised",
                    "value",
                    "abs_diff_vs_materialised",
                    "skipped",
                    "error",
                ],
            )
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
