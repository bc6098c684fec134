"""Bundled data: the Chinchilla runs reconstructed by Epoch AI (see ``data/README.md``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_columns

DATA_DIR = Path(__file__).resolve().parent / "data"
CHINCHILLA_CSV = DATA_DIR / "chinchilla_epoch_svg_extracted_data.csv"


def chinchilla_data(epoch_filter: bool = True) -> dict[str, np.ndarray]:
    """The Chinchilla runs as ``{"N", "D", "C", "loss"}`` float arrays.

    ``D = C / (6 N)`` from the ``Training FLOP`` column. With ``epoch_filter`` the 5 highest-loss
    points are dropped as in Besiroglu et al. (``loss < sorted(loss)[-5]``), leaving 240 rows.
    Hoffmann et al. 2022 (arXiv:2203.15556), data extracted by Besiroglu et al. 2024
    (arXiv:2404.10102).
    """
    cols = load_columns(
        CHINCHILLA_CSV,
        ("N", "C", "loss"),
        columns={"N": "Model Size", "C": "Training FLOP"},
        law="bundled chinchilla data",
    )
    if epoch_filter:
        keep = cols["loss"] < np.sort(cols["loss"])[-5]
        cols = {k: v[keep] for k, v in cols.items()}
    cols["D"] = cols["C"] / (6.0 * cols["N"])
    return {k: cols[k] for k in ("N", "D", "C", "loss")}
