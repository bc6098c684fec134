"""Tiny Llama-style language models on CPU: xent loss, estimator callback, a scaling-law fit.

    python examples/tiny-lm/train.py            # the full sweep (prints how long it took)
    python examples/tiny-lm/train.py --quick    # a short run (the test suite runs this)

Each model size is trained with ``transformers.Trainer`` on a byte-level tokenisation of Jane
Austen's *Northanger Abbey* (``data/``, public domain, see ``data/README.md``), its loss computed
by xent (``xhf.patch``, no logits formed), with ``EstimatorCallback`` logging RankMe and token
entropy; the final held-out losses of the sweep are fitted with
``xent_core.scaling_model("power-law")`` and plotted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import xent_core
from xent_core.integrations import transformers as xhf

TEXT = Path(__file__).resolve().parent / "data" / "northanger_abbey.txt"

# widths (hidden size; 2 layers each), optimiser steps, sequences per step, bytes per sequence
QUICK = {"widths": [8, 16, 24, 32], "steps": 12, "batch": 8, "length": 64, "eval_rows": 64}
FULL = {"widths": [16, 32, 48, 64, 96], "steps": 400, "batch": 8, "length": 128, "eval_rows": 0}


def load_text(path: Path = TEXT) -> str:
    """The shipped corpus as one string (ASCII, so one byte is one character)."""
    return path.read_text(encoding="utf-8")


class Bytes(torch.utils.data.Dataset):
    """Fixed-length windows of the UTF-8 bytes of a text (token ids 0..255)."""

    def __init__(self, text: str, length: int) -> None:
        ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
        self.rows = ids[: len(ids) // length * length].view(-1, length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.rows[i]
        return {"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row}


def model_of(width: int, layers: int, length: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 16),
        num_key_value_heads=max(1, width // 16),
        max_position_embeddings=length,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    return xhf.patch(model, loss="linear-cross-entropy(z_loss=1e-4)")


def held_out_loss(model: torch.nn.Module, held: Bytes, rows: int) -> float:
    """Mean next-byte loss (nats) over the held-out windows (``rows`` of them; 0: all)."""
    data = held.rows[:rows] if rows else held.rows
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in data.split(32):
            n = batch.numel() - len(batch)  # predicted positions
            total += float(model(input_ids=batch, labels=batch).loss) * n
            count += n
    return total / count


def train_one(width: int, cfg: dict, data: Bytes, held: Bytes, out: Path) -> dict:
    from transformers import Trainer, TrainingArguments

    start = time.perf_counter()
    steps = cfg["steps"]
    model = model_of(width, 2, cfg["length"])
    # non-embedding parameters: the input embedding and the output layer are not counted
    n_params = sum(
        p.numel()
        for n, p in model.named_parameters()
        if "embed_tokens" not in n and "lm_head" not in n
    )
    args = TrainingArguments(
        output_dir=str(out / f"w{width}"),
        per_device_train_batch_size=cfg["batch"],
        max_steps=steps,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 20),
        logging_steps=max(1, steps // 4),
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    xhf.EstimatorCallback(["rankme", "token-entropy"], every_n_steps=max(1, steps // 4)).attach(
        trainer
    )
    trainer.train()
    history = trainer.state.log_history
    return {
        "width": width,
        "N": n_params,
        "loss": held_out_loss(model, held, cfg["eval_rows"]),
        "train_losses": [h["loss"] for h in history if "loss" in h],
        "logged": [h for h in history if "xent/rankme" in h],
        "seconds": time.perf_counter() - start,
    }


def main(quick: bool = False, out: str = "tiny-lm-out", threads: int = 1) -> dict:
    """Train the sweep, fit and plot it; returns what ``result.json`` holds.

    Args:
        quick: the short configuration (``QUICK``) instead of ``FULL``.
        out: the output folder (``scaling.png``, ``result.json``).
        threads: torch CPU threads while training (models this small run fastest on one,
            several times faster than on two when other processes share the cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _sweep(QUICK if quick else FULL, Path(out))
    finally:
        torch.set_num_threads(previous)


def _sweep(cfg: dict, out_dir: Path) -> dict:
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    text = load_text()
    cut = int(len(text) * 0.9)  # the last 10% of the novel is held out
    data, held = Bytes(text[:cut], cfg["length"]), Bytes(text[cut:], cfg["length"])
    runs = []
    for width in cfg["widths"]:
        runs.append(train_one(width, cfg, data, held, out_dir))
        r = runs[-1]
        print(f"width {width:4d}  N {r['N']:8d}  held-out {r['loss']:.4f}  ({r['seconds']:.0f} s)")
    law = xent_core.scaling_model("power-law", x="N")
    fit = law.fit({"N": [r["N"] for r in runs], "loss": [r["loss"] for r in runs]})
    plot = out_dir / "scaling.png"
    fit.plot(str(plot))
    result = {
        "config": cfg,
        "runs": [
            {k: r[k] for k in ("width", "N", "loss", "train_losses", "seconds")} for r in runs
        ],
        "estimators": {r["width"]: r["logged"][-1] for r in runs if r["logged"]},
        "fit": {k: float(v) for k, v in dict(fit.params).items()},
        "plot": str(plot),
        "seconds": time.perf_counter() - start,
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run of the test suite")
    parser.add_argument("--out", default="tiny-lm-out", help="output folder (plot, result.json)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ns = parser.parse_args()
    res = main(ns.quick, ns.out, ns.threads)
    print("power-law fit:", res["fit"], "plot:", res["plot"])
    print(f"took {res['seconds']:.1f} s")
