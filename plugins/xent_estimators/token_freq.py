"""Token-frequency tables for ``dc-pdd``, and reading token-id files (.npy, .jsonl).

File formats (documents are lists of token ids of the model's tokenizer):

* ``.jsonl``: one document per line, a JSON list of integers ``[464, 3290, 318]`` or an object
  holding one under ``ids``, ``token_ids`` or ``input_ids`` (other keys are ignored). Blank
  lines are skipped; an object may carry a ``label`` (1 = member, 0 = not). Capped at :data:`xent_estimators._io.MAX_TEXT_BYTES`.
* ``.npy``: an integer array, (T,) for one document or (B, T) for B documents padded at the
  end with negative ids (``-1``, ``-100``); a negative id followed by a real one is an error.

Only regular files are read; every failure is a one-line :class:`~xent_core.BadInputError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError, validate

from . import _io

#: keys of a .jsonl object that may hold a document's token ids
ID_KEYS = ("ids", "token_ids", "input_ids")
#: largest token id accepted (a vocabulary beyond 2^31 is not a tokenizer's)
MAX_TOKEN_ID = 2**31 - 1


def _regular_file(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no such file: {p}")
    if not p.is_file():
        raise BadInputError(
            f"{p} is not a regular file (a directory, pipe, device or socket); save the data "
            "to a file first"
        )
    if p.suffix.lower() not in suffixes:
        raise BadInputError(
            f"unsupported file type {p.suffix or '(none)'!r} for {p}; use {', '.join(suffixes)}"
        )
    return p


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line of a capped, UTF-8 .jsonl file."""
    size = path.stat().st_size
    cap = _io.MAX_TEXT_BYTES
    if size > cap:
        raise BadInputError(
            f"{path} is {size / 2**20:.0f} MiB, over the {cap // 2**20} MiB limit for .jsonl "
            "input; save large data as .npy"
        )
    with path.open("rb") as fh:  # at most the cap, even if the file grows meanwhile
        raw = fh.read(cap + 1)
    if len(raw) > cap:
        raise BadInputError(f"{path} grew past the {cap // 2**20} MiB .jsonl limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"cannot read {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc

    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not a JSON number")

    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line, parse_constant=refuse)))
        except (ValueError, RecursionError) as exc:
            msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise BadInputError(f"{path}: line {i} is not valid JSON ({msg})") from exc
    if not out:
        raise BadInputError(f"{path} is empty: no documents")
    return out


def _ids_from_json(value: Any, where: str) -> np.ndarray:
    if isinstance(value, dict):
        key = next((k for k in ID_KEYS if k in value), None)
        if key is None:
            raise BadInputError(
                f"{where}: an object needs the token ids under one of {', '.join(ID_KEYS)}"
            )
        value = value[key]
    if not isinstance(value, list):
        raise BadInputError(f"{where}: expected a list of token ids, got {type(value).__name__}")
    if not all(type(v) is int for v in value):  # bools and floats are not token ids
        bad = next(v for v in value if type(v) is not int)
        raise BadInputError(f"{where}: token ids must be integers, found {bad!r}")
    if value and (min(value) < 0 or max(value) > MAX_TOKEN_ID):
        raise BadInputError(f"{where}: token ids must lie in [0, {MAX_TOKEN_ID}]")
    return np.asarray(value, dtype=np.int64)


def _ids_from_npy(arr: Any, path: Path) -> list[np.ndarray]:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu":
        kind = getattr(arr, "dtype", type(arr).__name__)
        raise BadInputError(f"{path}: token ids must be an integer array, got {kind}")
    if arr.ndim not in (1, 2):
        raise BadInputError(f"{path}: expected shape (T,) or (B, T); got {arr.shape}")
    rows = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if rows.size and int(rows.max()) > MAX_TOKEN_ID:
        raise BadInputError(f"{path}: token ids must be <= {MAX_TOKEN_ID}")
    docs = []
    for b, row in enumerate(rows.astype(np.int64)):
        real = row >= 0
        n = int(real.sum())
        if not real[:n].all():
            raise BadInputError(
                f"{path}: row {b} has a negative (padding) id before a real one; pad at the end"
            )
        docs.append(row[:n])
    return docs


def read_token_ids(path: str | Path) -> list[np.ndarray]:
    """The documents of a token-id file, each a (T_b,) int64 array (see the module's formats)."""
    return read_token_docs(path)[0]


def _label(value: Any, where: str) -> int | None:
    if not isinstance(value, dict) or "label" not in value:
        return None
    lab = value["label"]
    if lab not in (0, 1) or type(lab) not in (int, bool):
        raise BadInputError(f"{where}: label must be 0 (non-member) or 1 (member); got {lab!r}")
    return int(lab)


def read_token_docs(path: str | Path) -> tuple[list[np.ndarray], list[int] | None]:
    """The documents of a token-id file and their ``label`` (0/1, .jsonl objects), if given.

    Labels must be on every line or on none.
    """
    p = _regular_file(path, (".npy", ".jsonl"))
    if p.suffix.lower() == ".npy":
        return _ids_from_npy(_io.load_data(p), p), None
    lines = read_jsonl(p)
    docs = [_ids_from_json(v, f"{p}: line {i}") for i, v in lines]
    labels = [_label(v, f"{p}: line {i}") for i, v in lines]
    missing = [i for (i, _), lab in zip(lines, labels) if lab is None]
    if len(missing) == len(lines):
        return docs, None
    if missing:
        raise BadInputError(f"{p}: line {missing[0]} has no label but others do")
    return docs, [int(lab) for lab in labels if lab is not None]


def token_counts(
    ids: Any, vocab_size: int | None = None, *, max_doc_tokens: int | None = None
) -> np.ndarray:
    """A (V,) int64 table of how often each token id occurs in ``ids``.

    ``ids`` is one document (a list or 1-D array of token ids), a (B, T) array of B documents,
    or an iterable of documents (arrays or lists). ``vocab_size`` (the tokenizer's V) fixes the table's length; None takes the largest
    id + 1. ``max_doc_tokens`` counts only each document's first tokens (DC-PDD counts the
    first 1024 of each C4 document). Every occurrence counts (``np.bincount``).
    """
    vocab = validate.optional(validate.integer, "vocab_size", vocab_size, low=1)
    cap = validate.optional(validate.integer, "max_doc_tokens", max_doc_tokens, low=1)
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    one_list = isinstance(ids, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in ids)
    if isinstance(ids, np.ndarray):
        docs: Iterable[Any] = list(ids) if ids.ndim == 2 else [ids]
    else:
        docs = [ids] if one_list else ids
    total = np.zeros(vocab or 0, dtype=np.int64)
    for d, doc in enumerate(docs):
        if hasattr(doc, "detach"):
            doc = doc.detach().cpu().numpy()
        arr = np.asarray(doc)
        if arr.size and arr.dtype.kind not in "iu":
            raise BadInputError(f"document {d}: token ids must be integers, got dtype {arr.dtype}")
        flat = arr.reshape(-1).astype(np.int64)
        if cap is not None and arr.ndim <= 1:
            flat = flat[:cap]
        if flat.size == 0:
            continue
        if int(flat.min()) < 0:
            raise BadInputError(f"document {d}: token ids must be >= 0 (strip padding first)")
        if vocab is not None and int(flat.max()) >= vocab:
            raise BadInputError(f"document {d}: token id {int(flat.max())} >= vocab_size {vocab}")
        c = np.bincount(flat)
        if c.size > total.size:
            total = np.pad(total, (0, c.size - total.size))
        total[: c.size] += c
    if total.size == 0:
        raise BadInputError("no token ids to count (and no vocab_size to size an empty table)")
    return total


def counts_from_files(
    paths: Iterable[str | Path],
    vocab_size: int | None = None,
    *,
    max_doc_tokens: int | None = None,
) -> np.ndarray:
    """:func:`token_counts` over the documents of several token-id files (.npy, .jsonl)."""
    paths = list(paths)
    if not paths:
        raise BadInputError("no reference files given")
    vocab = validate.optional(validate.integer, "vocab_size", vocab_size, low=1)
    total: np.ndarray | None = None
    for p in paths:
        c = token_counts(read_token_ids(p), vocab, max_doc_tokens=max_doc_tokens)
        if total is None:
            total = c
        else:
            size = max(total.size, c.size)
            total = np.pad(total, (0, size - total.size)) + np.pad(c, (0, size - c.size))
    assert total is not None
    return total
