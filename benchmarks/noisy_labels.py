"""Noisy-label training check for the xent_losses plugin.

A fixed synthetic task: 4 classes in 10 dimensions, each class a mixture of 3 Gaussian clusters
(so a linear model is not enough); 40% symmetric label noise on the training set (a noisy label
is a uniformly drawn *other* class); a clean test set. A small MLP (10-64-64-4, tanh) is
trained full-batch with Adam for a few hundred steps with each loss, and the clean test accuracy
at the end is reported. Everything is seeded; one seed controls data, noise and initialisation.

Run ``python benchmarks/noisy_labels.py`` for the full table (all losses, several seeds); the
test ``tests/plugins/losses/test_losses_training.py`` imports :func:`make_task` and
:func:`train` from here and checks a few robust facts on fewer seeds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass

import torch

import xent_core
from xent_core.base_loss import loss_inputs

NUM_CLASSES = 4
DIM = 10
CLUSTERS_PER_CLASS = 3
NUM_TRAIN = 500
NUM_TEST = 4000
NOISE = 0.4
STEPS = 300
LR = 3e-3
HIDDEN = 64

#: (label, factory) for every loss trained in the table; factories take the training-set size
LOSSES: list[tuple[str, str]] = [
    ("cross-entropy", "cross-entropy"),
    ("cross-entropy(label_smoothing=0.1)", "cross-entropy(label_smoothing=0.1)"),
    ("generalized-ce(q=0.7)", "generalized-ce(q=0.7)"),
    ("mae", "mae"),
    ("comp-sum(tau=0.5)", "comp-sum(tau=0.5)"),
    ("focal(gamma=2)", "focal(gamma=2.0)"),
    ("poly1(epsilon=1)", "poly1(epsilon=1.0)"),
    ("ldr-kl", "ldr-kl"),
    ("aldr-kl", "aldr-kl(num_samples={n})"),
    ("dice", "dice"),
    ("bias-loss", "bias-loss"),
    ("pass-at-n(n=4)", "pass-at-n(n=4)"),
    ("emo", "emo"),
]


@dataclass
class Task:
    x_train: torch.Tensor
    y_train: torch.Tensor  # noisy labels
    y_train_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def make_task(seed: int, noise: float = NOISE) -> Task:
    """The synthetic mixture task with ``noise`` symmetric label noise on the training set."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(NUM_CLASSES, CLUSTERS_PER_CLASS, DIM, generator=gen) * 1.6

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
        k = torch.randint(0, CLUSTERS_PER_CLASS, (n,), generator=gen)
        x = centers[y, k] + torch.randn(n, DIM, generator=gen)
        return x, y

    x_train, y_clean = sample(NUM_TRAIN)
    x_test, y_test = sample(NUM_TEST)
    flip = torch.rand(NUM_TRAIN, generator=gen) < noise
    shift = torch.randint(1, NUM_CLASSES, (NUM_TRAIN,), generator=gen)
    y_noisy = torch.where(flip, (y_clean + shift) % NUM_CLASSES, y_clean)
    return Task(x_train, y_noisy, y_clean, x_test, y_test)


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(DIM, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, HIDDEN),
            torch.nn.Tanh(),
        )
        self.head = torch.nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.head(hidden), hidden


def train(spec: str, task: Task, seed: int, steps: int = STEPS) -> float:
    """Train a fresh MLP with the loss ``spec`` (a stack string); return clean test accuracy."""
    torch.manual_seed(seed)
    model = MLP()
    loss = xent_core.stack(spec.format(n=NUM_TRAIN))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    wanted = set()
    for required, optional in loss.inputs().values():
        wanted.update(required)
        wanted.update(optional)
    sample_ids = torch.arange(NUM_TRAIN)
    model.train()
    loss.train()
    for _ in range(steps):
        logits, hidden = model(task.x_train)
        available = {
            "logits": logits,
            "targets": task.y_train,
            "features": hidden,
            "classifier": model.head.weight,
            "sample_ids": sample_ids,
        }
        value = loss(**{k: v for k, v in available.items() if k in wanted})
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(task.x_test)[0].argmax(-1)
    return float((pred == task.y_test).float().mean())


def _input_names(spec: str) -> set[str]:
    stack = xent_core.stack(spec.format(n=NUM_TRAIN))
    return {name for term in stack.terms for group in loss_inputs(term) for name in group}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--noise", type=float, default=NOISE)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    tasks = {s: make_task(s, args.noise) for s in seeds}
    rows = []
    start = time.perf_counter()
    for label, spec in LOSSES:
        accs = [train(spec, tasks[s], s, args.steps) for s in seeds]
        rows.append((label, accs))
        print(f"{label:36s} " + " ".join(f"{a:.3f}" for a in accs), flush=True)
    elapsed = time.perf_counter() - start
    ce = dict(rows)["cross-entropy"]
    print()
    print(
        f"clean test accuracy, {args.noise:.0%} symmetric noise, {args.steps} full-batch Adam steps, "
        f"seeds {seeds}; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{elapsed:.0f} s"
    )
    print("| loss | mean | min | max | wins vs CE (same seed) |")
    print("| --- | --- | --- | --- | --- |")
    for label, accs in rows:
        wins = sum(a > c for a, c in zip(accs, ce))
        print(
            f"| {label} | {statistics.mean(accs):.3f} | {min(accs):.3f} | {max(accs):.3f} | "
            f"{wins}/{len(accs)} |"
        )


if __name__ == "__main__":
    main()
