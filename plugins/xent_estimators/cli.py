"""``xent estimate``: run one or more estimators on a data file.

Only typer is imported at module level: numpy, torch and the estimators load when the command
runs, so ``xent --help`` and ``xent list`` stay fast.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated, Any

import typer

#: inputs above this many elements show a progress display
LARGE_INPUT = 2_000_000


def parse_value(text: str) -> Any:
    """``--param`` value: a Python literal, ``inf``/``nan``, ``true``/``false``/``none``, or text."""
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_params(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` (every estimator that has ``key``) or ``estimator.key=value`` (that one).

    Returns the parameters per canonical estimator name.
    """
    from xent_core import BadParameterError, info
    from xent_core.naming import normalize_name

    specs = {n: info(n, "estimator") for n in names}
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in items:
        if "=" not in item:
            raise BadParameterError(
                f"--param expects key=value or estimator.key=value; got {item!r}"
            )
        key, _, raw = item.partition("=")
        key = key.strip()
        value = parse_value(raw)
        target, dot, pname = key.rpartition(".")
        if dot:
            tname = normalize_name(target)
            match = [n for n in names if specs[n].name == tname or n == tname]
            if not match:
                raise BadParameterError(
                    f"--param {item!r} names estimator {target!r}, which is not among "
                    f"--estimator {', '.join(names)}"
                )
            for n in match:
                out[n][pname] = value  # unknown names are reported by the registry
            continue
        takers = [n for n in names if key in specs[n].param_names]
        if not takers:
            if len(names) == 1:
                out[names[0]][key] = value  # let the registry list the valid parameters
                continue
            raise BadParameterError(
                f"no selected estimator has a parameter {key!r} ({', '.join(names)})"
            )
        for n in takers:
            out[n][key] = value
    return out


def _accepts(est: Any, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(est.__call__).parameters
    except (TypeError, ValueError):
        return False


def call_estimator(est: Any, data: Any, labels: Any, key: str | None) -> Any:
    """Call ``est`` with the right inputs from a loaded file (array or dict of arrays)."""
    from xent_core import BadInputError

    if isinstance(data, dict):
        keys = sorted(data)
        if key is not None:
            if key not in data:
                raise BadInputError(f"--key {key!r} not in the file; it holds: {', '.join(keys)}")
            return est(data[key], labels, details=True)
        named = {
            k: data[k]
            for k in ("logits", "hidden", "classifier", "bias", "mask")
            if k in data and _accepts(est, k)
        }
        if "logits" in named or "hidden" in named:
            return est(**named, details=True)
        if "logprobs" in data:
            mask = data.get("mask")
            return est(data["logprobs"], data.get("advantages", labels), mask=mask, details=True)
        y = labels
        if y is None:
            y = data.get("y", data.get("labels"))
        if "x" in data:
            return est(data["x"], y, details=True)
        if len(data) == 1:
            return est(next(iter(data.values())), y, details=True)
        raise BadInputError(
            f"the file holds several arrays ({', '.join(keys)}); choose one with --key, or name "
            "them x (and y), logits, hidden/classifier(/bias), or logprobs/advantages(/mask)"
        )
    return est(data, labels, details=True)


def _scalars(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in details.items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif (
            isinstance(v, (tuple, list))
            and len(v) <= 16
            and all(isinstance(e, (bool, int, float, str)) for e in v)
        ):
            out[k] = list(v)
    return out


def _echo_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as given, for the JSON output: non-finite numbers as the strings ``--param``
    accepts (``"inf"``), since strict JSON has no token for them and ``null`` would lose them."""
    import math

    return {
        k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in params.items()
    }


def _size(data: Any) -> int:
    if isinstance(data, dict):
        return sum(_size(v) for v in data.values())
    return int(
        getattr(data, "size", 0) if not callable(getattr(data, "numel", None)) else data.numel()
    )


def estimate(
    data: Annotated[
        Path,
        typer.Argument(
            help="Data file: .npy, .npz, .pt/.pth, .csv/.tsv/.txt. Rows are samples. A .npz/.pt "
            "dict may name arrays x, y, logits, hidden, classifier, bias, logprobs, advantages, mask."
        ),
    ],
    estimator: Annotated[
        list[str],
        typer.Option(
            "--estimator", "-e", metavar="NAME", help="Estimator name (repeat for several)."
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="key=value for every estimator that has key, or estimator.key=value.",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            "-y",
            metavar="FILE",
            help="Second input (labels or y), same number of rows.",
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="NAME", help="Array to use from a .npz/.pt dict.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Estimate entropy / information of a data file with one or more estimators."""
    import time

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    import xent_core
    from xent_core.jsonout import dumps

    from ._io import load_data

    names = list(dict.fromkeys(xent_core.info(n, "estimator").name for n in estimator))
    params = parse_params(list(param or []), names)
    estimators = {n: xent_core.estimator(n, **params[n]) for n in names}

    err = Console(stderr=True)
    with err.status(f"reading {data}", spinner="dots") if not as_json else _null():
        x = load_data(data)
        y = load_data(labels) if labels is not None else None
    large = _size(x) >= LARGE_INPUT
    results = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not large,
    )
    with progress:
        for n, est in estimators.items():
            task = progress.add_task(f"{n} on {data.name}", total=None)
            start = time.perf_counter()
            value, details = call_estimator(est, x, y, key)
            seconds = time.perf_counter() - start
            progress.remove_task(task)
            results.append(
                {
                    "estimator": n,
                    "params": _echo_params(params[n]),
                    "value": value,
                    "units": getattr(est, "units", ""),
                    "seconds": round(seconds, 6),
                    "details": _scalars(details),
                }
            )
    if as_json:
        typer.echo(dumps({"data": str(data), "results": results}))
        return
    out = Console(soft_wrap=False)
    if len(results) == 1:
        r = results[0]
        out.print(f"{r['estimator']} = {r['value']:.6g} {r['units']}".rstrip(), highlight=False)
        return
    table = Table(title=f"xent estimate {data.name}", title_justify="left")
    for col, just in (
        ("estimator", "left"),
        ("value", "right"),
        ("units", "left"),
        ("time (s)", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        table.add_row(r["estimator"], f"{r['value']:.6g}", r["units"], f"{r['seconds']:.3f}")
    out.print(table)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
