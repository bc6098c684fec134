"""Reading estimator inputs from files: .npy, .npz, .pt/.pth, .csv/.tsv/.txt.

Only regular files are read (a FIFO would block forever, ``/dev/zero`` never ends); text files
are capped at :data:`MAX_TEXT_BYTES` and their fields at :data:`MAX_FIELD_CHARS`. Every failure
is a one-line :class:`~xent_core.BadInputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError

SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv", ".tsv", ".txt")

#: largest text file read (store bigger data as .npy, which is read without parsing)
MAX_TEXT_BYTES = 256 * 2**20
#: longest field of a text file (a number or a label; a longer one is not data)
MAX_FIELD_CHARS = 4096


def load_data(path: str | Path) -> Any:
    """An array, or a dict of named arrays (``.npz`` and ``.pt`` dicts), from ``path``.

    Raises :class:`BadInputError` for a missing file, an unknown suffix or unreadable content.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no such file: {p}")
    if p.is_dir():
        raise BadInputError(f"{p} is a directory, expected a data file ({', '.join(SUFFIXES)})")
    if not p.is_file():
        raise BadInputError(
            f"{p} is not a regular file (a pipe, device or socket); save the data to a file first"
        )
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
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"cannot read {p}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        if len(first) > 200:
            first = first[:197] + "..."
        raise BadInputError(f"cannot read {p}: {type(exc).__name__}: {first}") from exc


def _load_torch(p: Path) -> Any:
    import torch

    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInputError(
            f"cannot read {p}: not a tensor file that torch.load(weights_only=True) accepts "
            f"({type(exc).__name__}); only tensors and dicts of tensors are read"
        ) from exc
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
    size = p.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise BadInputError(
            f"{p} is {size / 2**20:.0f} MiB, over the {MAX_TEXT_BYTES // 2**20} MiB limit for "
            "text input; save large data as .npy"
        )
    with p.open("rb") as fh:  # read at most the cap, even if the file grows meanwhile
        raw = fh.read(MAX_TEXT_BYTES + 1)
    if len(raw) > MAX_TEXT_BYTES:
        raise BadInputError(f"{p} grew past the {MAX_TEXT_BYTES // 2**20} MiB text limit")
    text = raw.decode("utf-8").splitlines()
    lines = [ln for ln in text if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise BadInputError(f"{p} is empty")
    if delimiter is None:
        delimiter = "," if "," in lines[0] else None  # None: any whitespace
    split = [ln.split(delimiter) for ln in lines]
    for i, row in enumerate(split):
        longest = max((len(f) for f in row), default=0)
        if longest > MAX_FIELD_CHARS:
            raise BadInputError(
                f"{p}: a field on data line {i + 1} has {longest} characters "
                f"(limit {MAX_FIELD_CHARS}); is this the right file?"
            )
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
