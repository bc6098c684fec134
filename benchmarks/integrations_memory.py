"""Memory and time of one training step: transformers/TRL native paths vs the xent integrations.

Two comparisons, each variant in a fresh subprocess (peak RSS from ``resource.getrusage`` after
one step minus the peak after the model, inputs and gradient buffers were built: what the step
needs beyond them). On the CPU the models are tiny Llama-style backbones (one layer, small hidden
size) with the full vocabulary, so the output head dominates, as it does in a real step.

- ``patch``: one forward+backward of a causal LM with labels: the HF-native forward (logits,
  ``ForCausalLMLoss``) vs ``xhf.patch(model)`` (linear cross-entropy, no logits).
- ``gkd``: one GKD step: TRL's path (student and teacher logits, then
  ``GKDTrainer.generalized_jsd_loss``) vs ``xhf.model_distill_loss`` (``linear-jsd`` on hidden
  states), beta 0.5.

Usage::

    python benchmarks/integrations_memory.py patch --n 2048
    python benchmarks/integrations_memory.py gkd --n 512 --n 1024 --markdown

The one GKD cell that needs a quiet machine (TRL's path holds about 17 GiB at V=128256, N=2048),
side by side with xent's, each in a fresh process, the results kept in a JSON file::

    python benchmarks/integrations_memory.py gkd --n 2048 --repeats 0 --min-free-gib 20 \
        --markdown --json gkd-n2048.json

A variant whose process fails (killed for memory, say) is reported as failed with its exit
status, and the others still run; ``--min-free-gib`` skips a variant, saying so, when the machine
has less memory available (``MemAvailable``) than that just before it starts. The CPU may be
shared with other jobs: compare ratios from one side-by-side run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linear_kd import environment

VARIANTS = {"patch": ("hf-native", "xent-patch"), "gkd": ("trl-gkd", "xent-gkd")}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _model(vocab: int, hidden: int, seed: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(
        "llama", vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(cfg).float()


def child(args: argparse.Namespace) -> dict:
    import torch

    torch.manual_seed(0)
    student = _model(args.v, args.d, 1).train()
    for p in student.parameters():
        p.grad = torch.zeros_like(p)
    ids = torch.randint(3, args.v, (1, args.n))
    labels = ids.clone()
    labels[:, : args.n // 8] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if args.variant in ("hf-native", "xent-patch"):
        if args.variant == "xent-patch":
            from xent_core.integrations import transformers as xhf

            xhf.patch(student, verify=False, stats=False)

        def step() -> torch.Tensor:
            return student(**batch, labels=labels).loss

    else:
        teacher = _model(args.v, args.teacher_d, 2).eval()
        if args.variant == "trl-gkd":
            from trl.experimental.gkd import GKDTrainer

            def step() -> torch.Tensor:  # GKDTrainer.compute_loss, line for line
                s = student(**batch)
                with torch.no_grad():
                    t = teacher(**batch)
                return GKDTrainer.generalized_jsd_loss(
                    s.logits[:, :-1, :], t.logits[:, :-1, :], labels=labels[:, 1:], beta=0.5
                )

        else:
            from xent_core.integrations import transformers as xhf

            spec = xhf.gkd_loss_spec(0.5)
            if args.chunk_size:
                spec = spec[:-1] + f", chunk_size={args.chunk_size})"

            def step() -> torch.Tensor:
                return xhf.model_distill_loss(
                    student, teacher, ids, batch["attention_mask"], labels,
                    loss=spec,
                )  # fmt: skip

    floor = _peak_mib()
    t0 = time.perf_counter()
    loss = step()
    loss.backward()
    first = time.perf_counter() - t0
    peak = _peak_mib()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - t0)
    return {
        "variant": args.variant,
        "n": args.n,
        "extra_mib": peak - floor,
        "floor_mib": floor,
        "first_s": first,
        "median_s": statistics.median(times) if times else first,
        "loss": float(loss.detach()),
    }


def available_mib() -> float | None:
    """``MemAvailable`` of ``/proc/meminfo`` in MiB (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def run_variant(args: argparse.Namespace, variant: str, n: int) -> dict:
    free = available_mib()
    row = {"variant": variant, "n": n, "available_mib": free}
    if args.min_free_gib and free is not None and free < args.min_free_gib * 1024:
        print(
            f"skipped {variant} N={n}: {free / 1024:.1f} GiB available < --min-free-gib "
            f"{args.min_free_gib}",
            file=sys.stderr,
        )
        return {**row, "failed": "skipped: not enough free memory"}
    cmd = [
        sys.executable, os.path.abspath(__file__), args.what, "--child", variant,
        "--n", str(n), "--d", str(args.d), "--teacher-d", str(args.teacher_d),
        "--v", str(args.v), "--repeats", str(args.repeats),
        *(("--chunk-size", str(args.chunk_size)) if args.chunk_size else ()),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:  # -9: killed, usually for memory
        print(
            f"{variant} N={n} failed (exit {out.returncode}):\n{out.stderr[-2000:]}",
            file=sys.stderr,
        )
        return {**row, "failed": f"exit status {out.returncode}"}
    return {**row, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=sorted(VARIANTS))
    p.add_argument("--n", type=int, action="append", help="tokens per step (repeatable)")
    p.add_argument("--d", type=int, default=64, help="student hidden size")
    p.add_argument("--teacher-d", type=int, default=96, help="teacher hidden size (gkd)")
    p.add_argument("--v", type=int, default=128256)
    p.add_argument("--repeats", type=int, default=1, help="timed steps after the measured one")
    p.add_argument("--variants", help="comma-separated subset")
    p.add_argument(
        "--chunk-size", type=int, help="linear-jsd chunk_size (xent-gkd; default: its own)"
    )
    p.add_argument(
        "--min-free-gib", type=float, help="skip a variant when less memory is available"
    )
    p.add_argument("--json", help="write full results here")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variant, args.n = args.child, args.n[0]
        print(json.dumps(child(args)))
        return
    env = environment()
    free = available_mib()
    env["mem_available_gib"] = round(free / 1024, 1) if free is not None else None
    ns = args.n or [2048]
    variants = args.variants.split(",") if args.variants else VARIANTS[args.what]
    rows = [run_variant(args, v, n) for n in ns for v in variants]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "env": env, "rows": rows}, fh, indent=2)
    base = {r["n"]: r for r in rows if r["variant"] == variants[0] and "failed" not in r}
    print(f"{'variant':<12} {'N':>6} {'extra MiB':>10} {'ratio':>7} {'median s':>9} {'loss':>12}")
    for r in rows:
        if "failed" in r:
            print(f"{r['variant']:<12} {r['n']:>6} {r['failed']}")
            continue
        b = base.get(r["n"])
        ratio = r["extra_mib"] / b["extra_mib"] if b else float("nan")
        print(
            f"{r['variant']:<12} {r['n']:>6} {r['extra_mib']:>10.0f} {ratio:>7.3f} "
            f"{r['median_s']:>9.2f} {r['loss']:>12.6f}"
        )
    if args.markdown:
        print(f"\nV={args.v}, D={args.d} (teacher {args.teacher_d}), fp32, {env}")
    if any("failed" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
