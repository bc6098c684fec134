"""``xent calibrate``: fit temperature scaling on a file of held-out logits and report the gain.

Only typer is imported at module level; numpy, torch and the fit load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

_TARGET_KEYS = ("targets", "labels", "y")


def split_inputs(data: Any, targets: Any, key: str | None) -> tuple[Any, Any]:
    """``(logits, targets)`` from a loaded file (an array, or a dict of named arrays)."""
    from xent_core import BadInputError

    if isinstance(data, dict):
        names = ", ".join(sorted(data))
        logit_key = key or ("logits" if "logits" in data else None)
        if logit_key is None or logit_key not in data:
            raise BadInputError(
                f"the file holds {names}; name the logits 'logits' or choose them with --key"
            )
        logits = data[logit_key]
        if targets is None:
            found = next((k for k in _TARGET_KEYS if k in data), None)
            if found is None:
                raise BadInputError(
                    f"no targets: the file holds {names}; add an array named targets (or labels, "
                    "y) or pass --targets FILE"
                )
            targets = data[found]
        return logits, targets
    if targets is None:
        raise BadInputError(
            "no targets: pass --targets FILE, or a .npz/.pt holding 'logits' and 'targets'"
        )
    return data, targets


def calibrate(
    logits_file: Annotated[
        Path,
        typer.Argument(
            help="Held-out logits (N, C): .npy, .npz, .pt/.pth, .csv/.tsv/.txt. A .npz/.pt dict "
            "may hold 'logits' and 'targets' (or 'labels', 'y')."
        ),
    ],
    targets: Annotated[
        Path | None,
        typer.Option("--targets", "-y", metavar="FILE", help="Integer class ids, one per row."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="scalar (one T), vector or matrix scaling.")
    ] = "scalar",
    n_bins: Annotated[int, typer.Option("--n-bins", help="Bins of the ECE and the diagram.")] = 15,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="PNG", help="Save reliability diagrams before/after."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="NAME", help="Logits array in a .npz/.pt dict.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fit temperature scaling on held-out logits; print T and NLL, ECE, Brier before and after."""
    from xent_core.jsonout import dumps

    from ._io import load_data
    from .temperature_scaling import fit_temperature

    data = load_data(logits_file)
    y = load_data(targets) if targets is not None else None
    logits, y = split_inputs(data, y, key)
    result = fit_temperature(logits, y, method=method, n_bins=n_bins)
    if plot is not None:
        result.plot(plot)
    if as_json:
        out = result.to_dict()
        out["data"] = str(logits_file)
        if plot is not None:
            out["plot"] = str(plot)
        typer.echo(dumps(out))
        return
    typer.echo(result.summary())
    if plot is not None:
        typer.echo(f"reliability diagram: {plot}")
