"""Reading estimator inputs from files: .npy, .npz, .pt/.pth, .csv/.tsv/.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError

SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv", ".tsv", ".txt")


def load_data(path: str | Path) -> Any:
    """An array, or a dict of named arrays (``.npz`` and ``.pt`` dicts), from ``path``.

    Raises :class:`BadInputError` for a missing file, an unknown suffix or unreadable content.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no such file: {p}")
    if p.is_dir():
        raise BadInputError(f"{p} is a directory, expected a data file ({', '.join(SUFFIXES)})")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise BadInputError(
            f"unsupported file type {suffix or '(none)'!r} for {p}; use one of {', '.join(SUFFIXES)}"
        )
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if suffix in (".pt", ".pth"):
            return _load_torch(p)
        return _load_text(p, "\t" if suffix == ".tsv" else None)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"cannot read {p}: {type(exc).__name__}: {exc}") from exc


def _load_torch(p: Path) -> Any:
    import torch

    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    raise BadInputError(f"{p} must hold a tensor or a dict of tensors; found {type(obj).__name__}")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _load_text(p: Path, delimiter: str | None) -> np.ndarray:
    text = p.read_text(encoding="utf-8").splitlines()
    lines = [ln for ln in text if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise BadInputError(f"{p} is empty")
    if delimiter is None:
        delimiter = "," if "," in lines[0] else None  # None: any whitespace
    split = [ln.split(delimiter) for ln in lines]
    header = not all(_is_number(f.strip()) for f in split[0])
    rows = split[1:] if header else split
    if not rows:
        raise BadInputError(f"{p} has a header but no data rows")
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        line_no = bad + 1 + int(header)
        raise BadInputError(
            f"{p}: line {line_no} has {len(rows[bad])} fields, expected {width} like the first row"
        )
    cells = [[f.strip() for f in r] for r in rows]
    if all(_is_number(c) for r in cells for c in r):
        arr = np.asarray(cells, dtype=np.float64)
        if (
            np.isfinite(arr).all()
            and np.all(np.mod(arr, 1) == 0)
            and all("." not in c and "e" not in c.lower() for r in cells for c in r)
        ):
            arr = arr.astype(np.int64)
    else:
        arr = np.asarray(cells, dtype=str)  # symbolic labels
    return arr[:, 0] if arr.shape[1] == 1 else arr
