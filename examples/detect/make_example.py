"""Write the small ``xent detect`` example: a bigram "model", its training documents, and more.

Deterministic (numpy's PCG64 with a fixed seed, values rounded to 5 decimals), so running it
again rewrites the same bytes. Every document is drawn from one true bigram process over a
vocabulary of V = 32 tokens:

* ``corpus.jsonl``: 40 reference documents, for the token-frequency table (DC-PDD);
* the "model" is a bigram table fitted (add-0.05 smoothing) on 6 training documents: those are
  the members; 6 fresh documents are the non-members. A small model fitted on little data
  memorises it, so members get higher log-probs: what the detection scores look for;
* ``tokens.jsonl``: the 12 scored documents (ids and label, 1 = member);
* ``logprobs.jsonl``: per document, the model's target log-probs of tokens 1..L-1 (the first
  token is not scored), the entropy and the variance of log p of each next-token distribution.

Run: ``python examples/detect/make_example.py [--out DIR]`` (default: this folder).
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

import numpy as np

V, LENGTH, SEED = 32, 20, 20261204


def sample(rng: np.random.Generator, trans: np.ndarray, n: int) -> list[list[int]]:
    """``n`` documents of LENGTH tokens from the bigram process ``trans`` (V, V)."""
    docs = []
    for _ in range(n):
        doc = [int(rng.integers(V))]
        for _ in range(LENGTH - 1):
            doc.append(int(rng.choice(V, p=trans[doc[-1]])))
        docs.append(doc)
    return docs


def fit(docs: list[list[int]], alpha: float = 0.05) -> np.ndarray:
    """Log-probabilities (V, V) of the add-``alpha`` bigram model of ``docs``."""
    counts = np.full((V, V), alpha)
    for doc in docs:
        for prev, nxt in pairwise(doc):
            counts[prev, nxt] += 1
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def rows(logp: np.ndarray, doc: list[int]) -> dict[str, list[float]]:
    """Target log-probs, entropy and variance of log p at positions 1..L-1 of ``doc``."""
    out: dict[str, list[float]] = {"logprobs": [], "entropy": [], "var_logp": []}
    for prev, nxt in pairwise(doc):
        row = logp[prev]
        p = np.exp(row)
        mu = float(p @ row)
        out["logprobs"].append(round(float(row[nxt]), 5))
        out["entropy"].append(round(-mu, 5))
        out["var_logp"].append(round(float(p @ (row - mu) ** 2), 5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    trans = rng.dirichlet(np.full(V, 0.3), size=V)  # peaked rows: a few likely successors
    corpus = sample(rng, trans, 40)
    members, others = sample(rng, trans, 6), sample(rng, trans, 6)
    model = fit(members)
    docs = [(d, 1) for d in members] + [(d, 0) for d in others]
    order = rng.permutation(len(docs))
    docs = [docs[i] for i in order]

    def write(name: str, lines: list[object]) -> None:
        text = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
        (out / name).write_text(text, encoding="utf-8")

    write("corpus.jsonl", corpus)
    write("tokens.jsonl", [{"ids": d, "label": lab} for d, lab in docs])
    write("logprobs.jsonl", [rows(model, d) for d, _ in docs])


if __name__ == "__main__":
    main()
