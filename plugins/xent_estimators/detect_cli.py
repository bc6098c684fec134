"""``xent detect``: pretraining-data detection scores of documents from a model's log-probs.

Only typer is imported at module level; numpy, torch and the estimators load when the command
runs. File formats: :mod:`xent_estimators.token_freq` (token ids) and
:mod:`xent_estimators.detect_files` (log-probs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

METHODS = ("dc-pdd", "min-k", "min-k++")


def _table(
    ref_counts: Path | None,
    ref_corpus: list[Path],
    vocab_size: int | None,
    max_doc_tokens: int | None,
    save_counts: Path | None,
    max_id: int,
) -> tuple[Any, dict[str, Any] | None]:
    """The reference token counts (or None) and a description of where they came from."""
    import numpy as np

    from xent_core import BadInputError

    from ._io import load_data
    from .token_freq import counts_from_files

    if ref_counts is not None and ref_corpus:
        raise BadInputError("give --ref-counts or --ref-corpus, not both")
    if save_counts is not None and not ref_corpus:
        raise BadInputError("--save-counts needs --ref-corpus (the files to count)")
    if ref_counts is not None:
        if ref_counts.suffix.lower() != ".npy":
            raise BadInputError(f"--ref-counts must be a .npy table of counts; got {ref_counts}")
        counts = load_data(ref_counts)
        if not isinstance(counts, np.ndarray) or counts.ndim != 1:
            raise BadInputError(f"{ref_counts} must hold a (V,) array of counts")
        if vocab_size is not None and counts.size != vocab_size:
            raise BadInputError(
                f"{ref_counts} has {counts.size} entries but --vocab-size is {vocab_size}"
            )
        return counts, {
            "source": str(ref_counts),
            "vocab_size": int(counts.size),
            "inferred": False,
        }
    if not ref_corpus:
        return None, None
    counts = counts_from_files(ref_corpus, vocab_size, max_doc_tokens=max_doc_tokens)
    inferred = vocab_size is None
    if inferred and counts.size <= max_id:  # the table must cover the scored documents' ids
        counts = np.pad(counts, (0, max_id + 1 - counts.size))
    if save_counts is not None:
        if save_counts.suffix.lower() != ".npy":
            raise BadInputError(f"--save-counts must name a .npy file; got {save_counts}")
        try:
            np.save(save_counts, counts)
        except OSError as exc:
            raise BadInputError(f"cannot write {save_counts}: {exc.strerror or exc}") from exc
    info = {
        "source": [str(p) for p in ref_corpus],
        "vocab_size": int(counts.size),
        "inferred": inferred,
        "tokens_counted": int(counts.sum()),
    }
    return counts, info


def detect(
    tokens: Annotated[
        Path,
        typer.Argument(help="Token ids of the documents: .jsonl (a list per line) or .npy (B, T)."),
    ],
    logprobs: Annotated[
        Path,
        typer.Argument(
            help="The model's target log-probs per document: .jsonl, .npz or .npy; "
            "entropy and var_logp too for Min-K%++."
        ),
    ],
    ref_counts: Annotated[
        Path | None,
        typer.Option("--ref-counts", metavar="NPY", help="A (V,) token-count table (DC-PDD)."),
    ] = None,
    ref_corpus: Annotated[
        list[Path] | None,
        typer.Option(
            "--ref-corpus",
            metavar="FILE",
            help="Token-id files (.jsonl/.npy) to count for DC-PDD; repeatable.",
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option("--vocab-size", help="The tokenizer's V (default: largest id + 1)."),
    ] = None,
    max_doc_tokens: Annotated[
        int | None,
        typer.Option("--max-doc-tokens", help="Count only each reference document's first N."),
    ] = None,
    save_counts: Annotated[
        Path | None,
        typer.Option("--save-counts", metavar="NPY", help="Save the counted table for reuse."),
    ] = None,
    k: Annotated[float, typer.Option("--k", help="Share of tokens Min-K% averages.")] = 0.2,
    a: Annotated[float, typer.Option("--a", help="DC-PDD's clipping threshold.")] = 0.01,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Score documents for pretraining-data membership: DC-PDD, Min-K% and Min-K%++."""
    import numpy as np

    import xent_core
    from xent_core import validate
    from xent_core.jsonout import dumps

    from .detect_files import auroc, pair, read_logprob_docs
    from .token_freq import read_token_docs

    validate.optional(validate.integer, "--vocab-size", vocab_size, low=1)
    validate.optional(validate.integer, "--max-doc-tokens", max_doc_tokens, low=1)
    ids, labels = read_token_docs(tokens)
    docs = read_logprob_docs(logprobs)
    batch = pair(ids, docs, padded=logprobs.suffix.lower() != ".jsonl")
    counts, ref = _table(
        ref_counts, list(ref_corpus or []), vocab_size, max_doc_tokens, save_counts,
        int(batch.ids[batch.mask].max()),
    )  # fmt: skip
    scores: dict[str, Any] = {}
    est: Any  # the registry's Estimator protocol does not list these estimators' keywords
    if counts is not None:
        est = xent_core.estimator("dc-pdd", ref_counts=counts, a=a)
        scores["dc-pdd"] = est(batch.logprobs, batch.ids, mask=batch.mask, details=True)[1]
    est = xent_core.estimator("min-k-prob", k=k)
    scores["min-k"] = est(batch.logprobs, mask=batch.mask, details=True)[1]
    if batch.entropy is not None and batch.var_logp is not None:
        est = xent_core.estimator("min-k-prob", k=k, variant="min-k++")
        moments = {"entropy": batch.entropy, "var_logp": batch.var_logp}
        scores["min-k++"] = est(batch.logprobs, mask=batch.mask, details=True, **moments)[1]
    per_doc = {m: np.asarray(d["scores"]) for m, d in scores.items()}
    documents = [
        {
            "index": i,
            "scored_tokens": batch.scored[i],
            **({"label": int(labels[i])} if labels is not None else {}),
            **{m: float(v[i]) for m, v in per_doc.items()},
        }
        for i in range(len(ids))
    ]
    result: dict[str, Any] = {
        "tokens": str(tokens),
        "logprobs": str(logprobs),
        "sign": "member-high",
        "params": {"k": k, "a": a},
        "reference": ref,
        "methods": list(per_doc),
        "skipped": {
            m: why
            for m, why in (
                ("dc-pdd", "no --ref-counts or --ref-corpus"),
                ("min-k++", "the log-probs file has no entropy and var_logp"),
            )
            if m not in per_doc
        },
        "documents": documents,
    }
    if labels is not None:
        lab = np.asarray(labels)
        result["auroc"] = {m: auroc(v, lab) for m, v in per_doc.items()}
    if as_json:
        typer.echo(dumps(result))
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    methods = result["methods"]
    head = ["doc", "tokens", *(["label"] if "auroc" in result else []), *methods]
    rows = [
        [str(d["index"]), str(d["scored_tokens"])]
        + ([str(d["label"])] if "auroc" in result else [])
        + [f"{d[m]:.6g}" for m in methods]
        for d in result["documents"]
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    typer.echo("scores (larger: more likely a training member)")
    for r in [head, *rows]:
        typer.echo("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if "auroc" in result:
        parts = [
            f"{m} {v:.3f}" if v is not None else f"{m} n/a" for m, v in result["auroc"].items()
        ]
        typer.echo("AUROC: " + ", ".join(parts))
    ref = result["reference"]
    if ref is not None:
        note = " (inferred: pass --vocab-size)" if ref["inferred"] else ""
        typer.echo(f"reference table: V = {ref['vocab_size']}{note}")
    for m, why in result["skipped"].items():
        typer.echo(f"{m} skipped: {why}")
