"""Turn user data (a dict, a pandas DataFrame or a CSV path) into checked float64 columns.

Every law reads its data through :func:`load_columns`, so bad data fails the same way everywhere:
missing columns name the columns found, NaN/inf and non-positive values name the column, the
count and the first offending row, and too few rows say how many the law needs.
pandas is optional: CSV files are read with the standard library.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "__getitem__") and hasattr(data, "shape")


def read_csv(path: str | Path) -> dict[str, list[str]]:
    """Read a CSV file with a header row into ``{column: [raw strings]}``."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"data file {str(p)!r} does not exist")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            return _read_rows(csv.reader(fh), p.name, str(p))
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"data file {str(p)!r} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it "
            "as UTF-8 CSV"
        ) from None
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (128 KiB), a NUL byte
        raise BadInputError(f"data file {str(p)!r} is not a readable CSV file: {exc}") from None


def _read_rows(reader: Any, name: str, shown: str) -> dict[str, list[str]]:
    try:
        header = next(reader)
    except StopIteration:
        raise BadInputError(f"data file {shown!r} is empty") from None
    header = [h.strip() for h in header]
    cols: dict[str, list[str]] = {h: [] for h in header}
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BadInputError(
                f"{name}: line {lineno} has {len(row)} fields, the header has {len(header)}"
            )
        for h, c in zip(header, row):
            cols[h].append(c.strip() or "nan")  # an empty field is a missing value
    return cols


def as_table(data: Any) -> Mapping[str, Any]:
    """A column mapping from a dict, a DataFrame or a CSV path (columns not converted yet)."""
    if isinstance(data, (str, Path)):
        return read_csv(data)
    if _is_dataframe(data):
        return {str(c): data[c].to_numpy() for c in data.columns}
    if isinstance(data, Mapping):
        return data
    raise BadInputError(
        "data must be a dict of columns, a pandas DataFrame or a CSV path, "
        f"got {type(data).__name__}"
    )


def as_float_array(name: str, values: Any, *, positive: bool = False) -> np.ndarray:
    """``values`` as a finite 1-D float64 array (strictly positive if ``positive``)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"column {name!r} is not numeric: {exc}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise BadInputError(f"column {name!r} must be 1-D, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            f"column {name!r} has {int(bad.sum())} NaN/inf value(s) (first at row {first}); "
            "drop or fix those rows"
        )
    if positive:
        nonpos = arr <= 0
        if nonpos.any():
            first = int(np.flatnonzero(nonpos)[0])
            raise BadInputError(
                f"column {name!r} must be > 0, but has {int(nonpos.sum())} value(s) <= 0 "
                f"(first at row {first}: {arr[first]:g})"
            )
    return arr


def load_columns(
    data: Any,
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    positive: Iterable[str] | bool = True,
    min_rows: int = 1,
    law: str = "",
) -> dict[str, np.ndarray]:
    """Checked float64 columns ``required`` (and the ``optional`` ones present) from ``data``.

    ``columns`` maps a law's input name to the column that holds it (``{"N": "params"}``).
    ``positive``: ``True`` (all loaded columns must be > 0), ``False``, or the names that must.
    ``min_rows``: the fewest rows the law can be fitted on (usually its parameter count + 1).
    """
    table = as_table(data)
    mapping = dict(columns or {})
    unknown = [k for k in mapping if k not in required and k not in optional]
    if unknown:
        raise BadInputError(
            f"column mapping for unknown input(s) {unknown}; {law or 'this law'} takes "
            f"{list(required) + list(optional)}"
        )
    found = [str(c) for c in table]
    missing = [
        f"{k}" + (f" (as {mapping[k]!r})" if k in mapping else "")
        for k in required
        if mapping.get(k, k) not in table
    ]
    if missing:
        raise BadInputError(
            f"{law + ': ' if law else ''}missing column(s) {', '.join(missing)}; "
            f"columns found: {found}"
            + (
                "; map a column with columns={'N': 'your_column'} (CLI: --x N=your_column)"
                if not mapping
                else ""
            )
        )
    must_be_positive = set(required) | set(optional) if positive is True else set(positive or ())
    out: dict[str, np.ndarray] = {}
    for key in [*required, *[k for k in optional if mapping.get(k, k) in table]]:
        col = mapping.get(key, key)
        out[key] = as_float_array(col, table[col], positive=key in must_be_positive)
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise BadInputError(f"columns have different lengths: {lengths}")
    n = next(iter(lengths.values()), 0)
    if n < min_rows:
        raise BadInputError(
            f"{law + ': ' if law else ''}{n} data point(s), but at least {min_rows} are needed "
            "to fit this law's parameters"
        )
    return out
