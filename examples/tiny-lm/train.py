"""Tiny Llama-style language models on CPU: xent loss, estimator callback, a scaling-law fit.

    python examples/tiny-lm/train.py            # the full sweep (prints how long it took)
    python examples/tiny-lm/train.py --quick    # a short run (the test suite runs this)

Each model size is trained with ``transformers.Trainer`` on a byte-level tokenisation of the
generated corpus (see README.md), its loss computed by xent (``xhf.patch``, no logits formed),
with ``EstimatorCallback`` logging RankMe and token entropy; the final held-out losses of the
sweep are fitted with ``xent_core.scaling_model("power-law")`` and plotted.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

import xent_core
from xent_core.integrations import transformers as xhf

SUBJECTS = ["the miller", "a sailor", "the old queen", "my cousin", "the clerk", "a fox"]
VERBS = ["found", "carried", "painted", "sold", "watched", "lost", "mended"]
OBJECTS = ["a lantern", "the red boat", "seven apples", "the letter", "a silver key", "bread"]
PLACES = ["by the river", "at dawn", "in the market", "under the bridge", "near the mill"]


def corpus(n_sentences: int, seed: int = 0) -> str:
    """A generated corpus: sentences of a small grammar with agreement and repetition."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_sentences):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if rng.random() < 0.6:
            s += f" {rng.choice(PLACES)}"
        out.append(s[0].upper() + s[1:] + ".")
    return " ".join(out)


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


def model_of(width: int, layers: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 16),
        num_key_value_heads=max(1, width // 16),
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    return xhf.patch(model, loss="linear-cross-entropy(z_loss=1e-4)")


def train_one(width: int, layers: int, steps: int, data: Bytes, held: Bytes, out: Path) -> dict:
    from transformers import Trainer, TrainingArguments

    model = model_of(width, layers)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    args = TrainingArguments(
        output_dir=str(out / f"w{width}"),
        per_device_train_batch_size=8,
        max_steps=steps,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        logging_steps=max(1, steps // 4),
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    callback = xhf.EstimatorCallback(["rankme", "token-entropy"], every_n_steps=max(1, steps // 4))
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    model.eval()
    with torch.no_grad():
        batch = held.rows[:32]
        loss = float(model(input_ids=batch, labels=batch).loss)
    logged = [h for h in trainer.state.log_history if "xent/rankme" in h]
    return {"width": width, "N": n_params, "loss": loss, "logged": logged}


def main(quick: bool = False, out: str = "tiny-lm-out") -> dict:
    start = time.perf_counter()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = corpus(300 if quick else 20000)
    cut = int(len(text) * 0.9)
    data, held = Bytes(text[:cut], 64), Bytes(text[cut:], 64)
    widths = [8, 16, 24, 32] if quick else [16, 32, 64, 96, 128]
    steps = 12 if quick else 600
    runs = [train_one(w, 2, steps, data, held, out_dir) for w in widths]
    law = xent_core.scaling_model("power-law", x="N")
    fit = law.fit({"N": [r["N"] for r in runs], "loss": [r["loss"] for r in runs]})
    plot = out_dir / "scaling.png"
    fit.plot(str(plot))
    result = {
        "runs": [{k: r[k] for k in ("width", "N", "loss")} for r in runs],
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
    ns = parser.parse_args()
    res = main(ns.quick, ns.out)
    for r in res["runs"]:
        print(f"width {r['width']:4d}  N {r['N']:8d}  held-out loss {r['loss']:.4f} nats/byte")
    print("power-law fit:", res["fit"], "plot:", res["plot"])
    print(f"took {res['seconds']:.1f} s")
