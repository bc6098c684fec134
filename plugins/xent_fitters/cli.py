"""``xent fit``: fit a scaling law to a CSV file (or the bundled Chinchilla data) from the shell.

Only typer is imported at module level; numpy, scipy and the laws load when the command runs.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

#: compute budgets (FLOP) of the N_opt / D_opt table
BUDGETS = (1e21, 1e22, 1e23, 1e24, 1e25)


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    from xent_core import BadParameterError

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadParameterError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def fit_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="CSV file with a header row (default: the bundled Chinchilla runs)."),
    ] = None,
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Scaling law to fit (see 'xent list scaling_model')."),
    ] = "chinchilla",
    x: Annotated[
        list[str] | None,
        typer.Option("--x", help="Map a law input to a column: --x N=params (repeatable)."),
    ] = None,
    y: Annotated[str | None, typer.Option("--y", help="Column holding the target (loss).")] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", "-b", help="Bootstrap resamples for intervals (0: off).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Law option KEY=VALUE, e.g. -o delta=1e-4."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Save a plot of the fit to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit a scaling law; with no DATA, fit Chinchilla's law to the bundled Chinchilla runs."""
    import xent_core
    from xent_core import BadParameterError, XentError

    if plot is not None:
        check_plot_path(plot)  # before the fit, which can take minutes
    spec = xent_core.info(model, "scaling_model")
    opts = {k: _literal(v) for k, v in _pairs(option, "--option").items()}
    if "bootstrap" in spec.param_names:
        opts.setdefault("bootstrap", bootstrap)
    elif bootstrap and not as_json:
        print(f"xent fit: {spec.name} has no bootstrap option; fitting without", file=sys.stderr)
    if "seed" in spec.param_names:
        opts.setdefault("seed", seed)
    if "progress" in spec.param_names:
        opts.setdefault("progress", sys.stderr.isatty() and not as_json)
    law = xent_core.scaling_model(spec.qualified_id, **opts)
    if getattr(law, "input_format", "table") == "curves":
        raise BadParameterError(
            f"{spec.name!r} fits whole loss curves with their per-step learning-rate schedule, "
            "which a table of sampled steps does not hold; use the Python API: "
            f"xent_core.scaling_model({spec.name!r}).fit([{{'lr': per_step_lr, 'step': steps, "
            "'loss': losses}, ...]) (see docs/scaling-laws-curves.md)"
        )

    columns = _pairs(x, "--x")
    if y is not None:
        columns[getattr(law, "target", "loss")] = y
    if data is None:
        if spec.name != "chinchilla":
            raise BadParameterError(
                f"no DATA given: the bundled data fits only 'chinchilla', not {spec.name!r}"
            )
        from .datasets import chinchilla_data

        source: Any = chinchilla_data()
        source_name = "bundled Chinchilla runs (Hoffmann et al. 2022, via Besiroglu et al. 2024)"
    else:
        source, source_name = data, str(data)
    import warnings

    from .identify import BoundWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundWarning)  # shown with the result instead
        result = law.fit(source, columns=columns) if columns else law.fit(source)

    table = _optimal_table(result)
    if as_json:
        out = result.to_dict()
        if table:
            out["compute_optimal"] = table
        from xent_core.jsonout import dumps

        typer.echo(dumps(out))  # strict JSON: null, never NaN
    else:
        _print_result(result, source_name, table)
    if plot is not None:
        try:
            result.plot(plot)
        except OSError as exc:
            raise XentError(f"cannot write the plot to {str(plot)!r}: {exc}") from None
        if not as_json:
            typer.echo(f"plot written to {plot}")


def check_plot_path(path: Path) -> None:
    """Raise ``BadParameterError`` unless matplotlib can write a figure to ``path``: a format it
    knows (from the suffix) and an existing, writable folder."""
    import os

    from xent_core import BadParameterError

    from .result import require_matplotlib

    if path.is_dir():
        raise BadParameterError(f"--plot {str(path)!r} is a folder; give a file name")
    plt = require_matplotlib()
    fig = plt.figure()
    try:
        formats = fig.canvas.get_supported_filetypes()
    finally:
        plt.close(fig)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise BadParameterError(
            f"--plot {str(path)!r}: unsupported format {suffix or '(no suffix)'!r}; use one of "
            + ", ".join(f".{f}" for f in sorted(formats))
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BadParameterError(f"--plot {str(path)!r}: folder {str(folder)!r} does not exist")
    existed = path.exists()
    try:  # the only sure test: open it for writing (appending keeps an existing file intact)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise BadParameterError(f"--plot {str(path)!r}: not writable ({exc.strerror})") from None
    if not existed:
        os.unlink(path)


def _optimal_table(result: Any) -> list[dict[str, Any]]:
    from xent_core import XentError

    try:
        result.compute_optimal(1e21)
    except XentError:
        return []
    rows = []
    has_boot = result.bootstrap is not None
    for C in BUDGETS:
        n, d = result.compute_optimal(C)
        row: dict[str, Any] = {"C": C, "N_opt": float(n), "D_opt": float(d)}
        if has_boot:
            iv = result.compute_optimal_interval(C)
            row["N_opt_interval"] = [float(v) for v in iv["N_opt"]]
            row["D_opt_interval"] = [float(v) for v in iv["D_opt"]]
        rows.append(row)
    return rows


def _print_result(result: Any, source_name: str, table: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    m = result.metrics
    console.print(
        f"[bold]{result.model}[/bold] fitted to {int(m.get('n_points', 0))} points of {source_name}"
    )
    pct = f"{100 * result.level:g}% interval"
    tab = Table(show_edge=False)
    for col in ("parameter", "value", "std. error", pct):
        tab.add_column(col, justify="right" if col != "parameter" else "left")
    for name, value, se, iv in result.table_rows():
        tab.add_row(
            name,
            f"{value:.5g}",
            "" if se is None else f"{se:.3g}",
            "" if iv is None else f"[{iv[0]:.5g}, {iv[1]:.5g}]",
        )
    console.print(tab)
    shown = [f"{k} = {m[k]:.6g}" for k in ("objective", "r2", "mae", "rmse") if k in m]
    if "n_bootstrap" in m:
        shown.append(f"bootstrap = {int(m['n_bootstrap'])}")
    console.print("  ".join(shown))
    if "a" in result.derived and "b" in result.derived:
        console.print(
            f"compute-optimal: N_opt ~ C^{result.derived['a']:.4f}, "
            f"D_opt ~ C^{result.derived['b']:.4f}"
        )
    if table:
        opt = Table(title="compute-optimal allocation (C = 6ND)", show_edge=False)
        for col in ("C (FLOP)", "N_opt", "D_opt", "tokens/param"):
            opt.add_column(col, justify="right")
        for row in table:
            n_txt, d_txt = f"{row['N_opt']:.3g}", f"{row['D_opt']:.3g}"
            if "N_opt_interval" in row:
                lo, hi = row["N_opt_interval"]
                n_txt += f" [{lo:.2g}, {hi:.2g}]"
                lo, hi = row["D_opt_interval"]
                d_txt += f" [{lo:.2g}, {hi:.2g}]"
            opt.add_row(f"{row['C']:.0e}", n_txt, d_txt, f"{row['D_opt'] / row['N_opt']:.1f}")
        console.print(opt)
    from rich.text import Text

    for w in result.warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(w))
