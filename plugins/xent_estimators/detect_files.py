"""Reading the log-probs file of ``xent detect`` and pairing it with the documents' token ids.

Formats (one document per line or row, in the order of the token-id file):

* ``.jsonl``: a JSON list of target log-probs, or an object with ``logprobs`` and, for
  Min-K%++, ``entropy`` and ``var_logp`` (lists of the same length; the ``logprob-moments``
  kernel's three outputs). Other keys are ignored.
* ``.npz``: arrays ``logprobs`` and optionally ``entropy``, ``var_logp``, each (T,) or (B, T).
* ``.npy``: target log-probs only, (T,) or (B, T).

A document of ``L`` tokens takes ``L`` values (position t scores token t) or ``L - 1`` (the
first token is not scored: a causal LM's ``log_softmax(logits[:-1])`` at ``ids[1:]``); the
rest of a padded (B, T) row is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError

from . import _io
from .token_freq import read_jsonl

FIELDS = ("logprobs", "entropy", "var_logp")


@dataclass
class Batch:
    """Documents padded into (B, T) arrays, with the mask of real scored tokens."""

    ids: np.ndarray
    logprobs: np.ndarray
    entropy: np.ndarray | None
    var_logp: np.ndarray | None
    mask: np.ndarray
    scored: list[int]


def _numbers(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        type(v) in (int, float) for v in value
    ):  # bools, null and strings are not log-probs
        raise BadInputError(f"{where}: expected a list of numbers")
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise BadInputError(f"{where}: values must be finite")
    return arr


def _from_jsonl(p: Path) -> list[dict[str, np.ndarray]]:
    docs = []
    for i, value in read_jsonl(p):
        where = f"{p}: line {i}"
        if isinstance(value, dict):
            if "logprobs" not in value:
                raise BadInputError(
                    f"{where}: an object needs 'logprobs' (and may hold entropy, var_logp)"
                )
            doc = {k: _numbers(value[k], f"{where} ({k})") for k in FIELDS if k in value}
        else:
            doc = {"logprobs": _numbers(value, where)}
        docs.append(doc)
    return docs


def _rows(arr: Any, p: Path, name: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise BadInputError(f"{p}: {name} must be a numeric array")
    if arr.ndim not in (1, 2):
        raise BadInputError(f"{p}: {name} must have shape (T,) or (B, T); got {arr.shape}")
    return arr.reshape(1, -1).astype(np.float64) if arr.ndim == 1 else arr.astype(np.float64)


def read_logprob_docs(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Per document, a dict of 1-D float64 arrays (``logprobs`` and maybe the moments).

    Rows of a (B, T) array keep their full width here; :func:`pair` cuts them to each
    document's length.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".jsonl", ".npz", ".npy"):
        raise BadInputError(
            f"unsupported log-probs file {p.suffix or '(none)'!r} for {p}; use .jsonl, .npz or .npy"
        )
    if suffix == ".jsonl":
        if not p.exists():
            raise BadInputError(f"no such file: {p}")
        if not p.is_file():
            raise BadInputError(f"{p} is not a regular file; save the data to a file first")
        return _from_jsonl(p)
    data = _io.load_data(p)
    if isinstance(data, dict):
        if "logprobs" not in data:
            raise BadInputError(
                f"{p} holds {', '.join(sorted(data))}; name the log-probs 'logprobs'"
            )
        arrays = {k: _rows(data[k], p, k) for k in FIELDS if k in data}
    else:
        arrays = {"logprobs": _rows(data, p, "logprobs")}
    shape = arrays["logprobs"].shape
    for k, a in arrays.items():
        if a.shape != shape:
            raise BadInputError(f"{p}: {k} has shape {a.shape}, logprobs {shape}")
    return [{k: a[b] for k, a in arrays.items()} for b in range(shape[0])]


def pair(ids: list[np.ndarray], docs: list[dict[str, np.ndarray]], padded: bool) -> Batch:
    """Align each document's log-probs with its token ids, and pad them into one batch.

    ``padded``: the log-probs came as (B, T) rows, so a row may be longer than its document.
    """
    if len(ids) != len(docs):
        raise BadInputError(
            f"the token file has {len(ids)} documents but the log-probs file has {len(docs)}"
        )
    have = {k for d in docs for k in d}
    partial = [k for k in ("entropy", "var_logp") if k in have and not all(k in d for d in docs)]
    if partial:
        raise BadInputError(f"{partial[0]} is given for some documents only")
    width = max(len(t) for t in ids) if ids else 0
    scored, rows = [], []
    for b, (tok, doc) in enumerate(zip(ids, docs)):
        n, m = len(tok), len(doc["logprobs"])
        if padded:
            full = m == width
            if not full and m != width - 1:
                raise BadInputError(
                    f"log-probs rows have {m} values but the token rows {width}: expected "
                    f"{width} (one per token) or {width - 1} (the first token unscored)"
                )
            m = n if full else n - 1
            doc = {k: v[: max(m, 0)] for k, v in doc.items()}
        if m == n:
            used = tok
        elif m == n - 1:
            used = tok[1:]
        else:
            raise BadInputError(
                f"document {b}: {m} log-probs for {n} tokens; expected {n} (one per token) or "
                f"{n - 1} (the first token unscored)"
            )
        if len(used) == 0:
            raise BadInputError(f"document {b} has no tokens to score")
        scored.append(len(used))
        rows.append((used, doc))
    t = max(scored)
    b = len(rows)
    out_ids = np.zeros((b, t), dtype=np.int64)
    mask = np.zeros((b, t), dtype=bool)
    fields = {k: np.zeros((b, t)) for k in FIELDS if k in have}
    for i, (used, doc) in enumerate(rows):
        out_ids[i, : len(used)] = used
        mask[i, : len(used)] = True
        for k, arr in fields.items():
            arr[i, : len(used)] = doc[k]
    return Batch(
        out_ids,
        fields["logprobs"],
        fields.get("entropy"),
        fields.get("var_logp"),
        mask,
        scored,
    )


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for ``labels`` (1 = member; ties count half).

    None when one class is missing.
    """
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
