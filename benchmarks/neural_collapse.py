"""neural-collapse on 50k x 512 features, 100 classes: time and peak memory, xent vs the naive formula.

The naive formula (NC1 only) forms Sigma_W and Sigma_B (d x d) and takes the pseudo-inverse of Sigma_B;
xent projects on the pseudo-inverse of the (K, d) class-mean matrix instead. Each variant runs in
a fresh subprocess; memory is the peak RSS growth over the process's peak before the region.

    python benchmarks/neural_collapse.py [--n 50000] [--d 512] [--k 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
n, d, k, reps, variant = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(0)
y = rng.integers(0, k, size=n)
centres = rng.normal(size=(k, d))
x = np.empty((n, d))
for s in range(0, n, 2000):  # in chunks, so generating the data leaves a small RSS peak
    x[s : s + 2000] = centres[y[s : s + 2000]] + 0.5 * rng.normal(size=(len(y[s : s + 2000]), d))
w = rng.normal(size=(k, d))
import xent_core
est = xent_core.estimator("neural-collapse")
def naive():
    h, t = torch.from_numpy(x), torch.from_numpy(y)
    counts = torch.bincount(t, minlength=k).double()
    means = torch.zeros(k, d, dtype=h.dtype).index_add_(0, t, h) / counts[:, None]
    dev = h - means[t]
    sw = dev.T @ dev / n
    mc = means - h.mean(0)
    sb = mc.T @ mc / k
    return float(torch.trace(sw @ torch.linalg.pinv(sb, rtol=1e-10, hermitian=True)) / k)
fns = {"xent": lambda: est(x, y), "xent+classifier": lambda: est(x, y, classifier=w)}
fn = fns.get(variant, naive)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(reps):
    t0 = time.perf_counter(); value = fn(); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"variant": variant, "nc1": value, "median_s": sorted(times)[len(times) // 2], "peak_mib": peak / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for variant in ("xent", "xent+classifier", "naive"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(a.n), str(a.d), str(a.k), str(a.repeats), variant],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| variant | NC1 | median time (s) | peak RSS growth (MiB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['nc1']:.10g} | {r['median_s']:.3f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
