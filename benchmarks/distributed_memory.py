"""Peak memory per rank of vocab-parallel linear cross-entropy vs world size (CPU, gloo).

For each world size W, W processes (torch.multiprocessing, gloo on 127.0.0.1) each build ONLY
their contiguous rows of a (V, D) classifier (uneven when V % W != 0), then run forward and
backward of ``vocab_parallel_linear_cross_entropy`` on the same N tokens. Per rank we read the peak
RSS (``resource.getrusage``) before the region (after imports, process-group set-up and the
replicated hidden/targets) and after it; the difference is the region's peak. Expected: the
classifier rows and their gradient, 2 * V * D * 4 / W bytes, plus chunk buffers and d_hidden that
do not depend on W.

    python benchmarks/distributed_memory.py                      # N=4096 D=512 V=131072, W=1,2,4
    python benchmarks/distributed_memory.py --worlds 1 2 --n 512 --v 8192 --json out.json

GPU/NCCL: ``--backend nccl`` runs one rank per GPU and reads ``torch.cuda.max_memory_allocated``;
on a single GPU only ``--worlds 1`` is possible (a sanity check of the same code path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _classifier_rows(start: int, stop: int, d: int, block: int = 4096) -> torch.Tensor:
    """Rows [start, stop) of a classifier that is the same for every world size.

    Rows come in seeded blocks, so a rank draws only the blocks it overlaps (never all V rows).
    """
    out = torch.empty(stop - start, d)
    for b0 in range(start - start % block, stop, block):
        seed = 1_000_003 + b0  # not 0: hidden and targets are drawn from seed 0
        rows = torch.randn(block, d, generator=torch.Generator().manual_seed(seed)) * d**-0.5
        lo, hi = max(start, b0), min(stop, b0 + block)
        out[lo - start : hi - start] = rows[lo - b0 : hi - b0]
    return out


def _worker(rank: int, world: int, port: int, cfg: dict[str, Any], outdir: str) -> None:
    import torch.distributed as dist
    from xent_cce.distributed import (
        ChunkedShardKernel,
        resolve_local_kernel,
        vocab_parallel_linear_cross_entropy,
        vocab_shard_range,
    )

    torch.set_num_threads(cfg["threads"])
    cuda = cfg["backend"] == "nccl"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(
        cfg["backend"], init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    n, d, v = cfg["n"], cfg["d"], cfg["v"]
    g = torch.Generator().manual_seed(0)  # hidden and targets: identical on every rank
    hidden = torch.randn(n, d, generator=g).to(device).requires_grad_(True)
    targets = torch.randint(0, v, (n,), generator=g).to(device)
    start, stop = vocab_shard_range(v)
    if cfg["kernel"] == "builtin":
        kernel = ChunkedShardKernel()
    else:
        kernel = resolve_local_kernel(cfg["kernel"])
    dist.barrier()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    rss_before = _peak_rss_bytes()
    t0 = time.perf_counter()

    # --- region: this rank's rows only, forward and backward ---
    shard = _classifier_rows(start, stop, d).to(device).requires_grad_(True)
    loss = vocab_parallel_linear_cross_entropy(
        hidden, shard, targets, group=None, vocab_start=start, local_kernel=kernel
    )
    loss.backward()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    rss_after = _peak_rss_bytes()
    result = dict(
        rank=rank, rows=stop - start, kernel=getattr(kernel, "name", type(kernel).__name__), loss=float(loss.detach()), seconds=seconds,
        peak_delta_bytes=rss_after - rss_before, rss_before_bytes=rss_before,
    )  # fmt: skip
    if cuda:
        result["cuda_peak_delta_bytes"] = torch.cuda.max_memory_allocated() - base
    dist.destroy_process_group()
    (Path(outdir) / f"rank{rank}.json").write_text(json.dumps(result))


def run_world(world: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as outdir:
        mp.spawn(_worker, args=(world, _free_port(), cfg, outdir), nprocs=world, join=True)
        return [json.loads((Path(outdir) / f"rank{r}.json").read_text()) for r in range(world)]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--v", type=int, default=131072)
    p.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    p.add_argument("--threads", type=int, default=0, help="torch threads per rank (0: cores/W)")
    p.add_argument(
        "--kernel",
        default=None,
        help="local kernel: a registry name or 'builtin' (default: cce-torch if registered)",
    )
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    args = p.parse_args()

    cores = os.cpu_count() or 1
    header = dict(
        date=str(date.today()), torch=torch.__version__, python=platform.python_version(),
        cpu=_cpu_model(), cores=cores, load_avg=os.getloadavg(), backend=args.backend,
        n=args.n, d=args.d, v=args.v,
    )  # fmt: skip
    if args.backend == "nccl":
        header["gpu"] = torch.cuda.get_device_name(0)
    runs = []
    for world in args.worlds:
        threads = args.threads or max(1, cores // world)
        cfg = dict(n=args.n, d=args.d, v=args.v, backend=args.backend, threads=threads,
                   kernel=args.kernel)  # fmt: skip
        ranks = run_world(world, cfg)
        runs.append(dict(world=world, threads=threads, ranks=ranks))
        print(f"world {world}: done (kernel {ranks[0]['kernel']})", flush=True)
    header["load_avg_after"] = os.getloadavg()

    full = args.v * args.d * 4
    print(f"\n{json.dumps(header)}\n")
    print("| world | rows per rank | peak RSS delta per rank (MiB, max over ranks) "
          "| vs world 1 | rows+grad 2*rows*D*4 (MiB) | fwd+bwd s (max) | loss (same at every W) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    first = None
    for run in runs:
        peak = max(r["peak_delta_bytes"] for r in run["ranks"])
        first = first or peak
        rows = sorted({r["rows"] for r in run["ranks"]})
        est = 2 * max(rows) * args.d * 4
        print(
            f"| {run['world']} | {'/'.join(map(str, rows))} | {peak / MIB:.0f} "
            f"| {peak / first:.2f} | {est / MIB:.0f} "
            f"| {max(r['seconds'] for r in run['ranks']):.1f} | {run['ranks'][0]['loss']:.4f} |"
        )
    print(f"\nfull classifier: {full / MIB:.0f} MiB; full fp32 logits: "
          f"{args.n * args.v * 4 / MIB:.0f} MiB (never allocated)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(dict(header=header, runs=runs), indent=1))


if __name__ == "__main__":
    main()
