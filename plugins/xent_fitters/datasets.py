"""Bundled data: where the shipped tables live, and the Chinchilla runs as arrays.

Provenance, commits and licences of every file are in ``data/README.md`` beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_columns

DATA_DIR = Path(__file__).resolve().parent / "data"
#: Hoffmann et al. 2022, Fig. 4, reconstructed by Epoch AI (245 runs)
CHINCHILLA_CSV = DATA_DIR / "chinchilla_epoch_svg_extracted_data.csv"
#: Porian et al. 2024 compute-optimal pairs (177 rows, MIT)
PORIAN_CSV = DATA_DIR / "porian2024_compute_optimal_pairs.csv"
#: Multi-power law loss curves under 9 schedules, folders ``25M`` and ``100M`` (MIT)
MPL_CURVES_DIR = DATA_DIR / "mpl_loss_curves"
#: Step Law dense sweep, only the 129 near-optimal runs (derived table, see the README)
STEPLAW_NEAR_OPTIMAL_CSV = DATA_DIR / "steplaw_dense_near_optimal.csv"
#: Step Law published bootstrap fits, summarised (mean, std, 2.5% and 97.5% quantiles)
STEPLAW_FIT_SUMMARY_CSV = DATA_DIR / "steplaw_published_fit_summary.csv"


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
