"""CPU benchmark of the linear cross-entropy kernels at the shape of issue 3.

N=4096 tokens, D=512, V=32768, fp32: ``naive``, PyTorch's ``F.linear_cross_entropy`` (reference
path and chunked), ``cce-torch`` (default and a 4M-element chunk), and Apple's
``cut-cross-entropy`` (``torch_compile`` implementation) when installed. Each kernel runs in a
fresh process; see ``xent bench linear-ce --help``.

    python benchmarks/linear_ce.py                      # print the table
    python benchmarks/linear_ce.py --append-docs        # also append to docs/benchmarks.md

On a 2-core machine this takes about 3 minutes (more the first time Apple's torch.compile runs:
run once to fill the inductor cache, so its compilation does not count in its peak memory).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

IMPLS = [
    "naive",
    "torch-native",
    "torch-native(chunked=True)",
    "cce-torch",
    "cce-torch(chunk_elements=4194304)",
]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--append-docs", action="store_true", help=f"append to {DOCS}")
    p.add_argument("--note", default="", help="a line under the Markdown heading")
    p.add_argument("--json", default=None, help="write the full report here")
    args = p.parse_args()

    from xent_cce.bench.cli import bench_app

    impls = list(IMPLS)
    if importlib.util.find_spec("cut_cross_entropy") is not None:
        impls.append("apple-cce")
    argv = ["linear-ce", "--device", "cpu", "--dtype", "fp32"]
    argv += ["--tokens", str(args.tokens), "--vocab", str(args.vocab), "--hidden", str(args.hidden)]
    argv += ["--repeats", str(args.repeats)]
    for impl in impls:
        argv += ["-i", impl]
    if args.json:
        argv += ["--json", args.json]
    if args.append_docs:
        argv += ["--append-docs", str(DOCS)]
    if args.note:
        argv += ["--note", args.note]
    bench_app(argv, standalone_mode=False)


if __name__ == "__main__":
    main()
