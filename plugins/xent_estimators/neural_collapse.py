"""neural-collapse: the NC1-NC4 measures of class-mean geometry in penultimate features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish, to_host, to_tensor


def _labels(y: Any, n: int, device: torch.device) -> torch.Tensor:
    if y is None:
        raise BadInputError("neural-collapse needs targets (y): one class id per row of features")
    t = y.detach() if isinstance(y, torch.Tensor) else to_tensor(y, "targets")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise BadInputError("targets must be integer class ids")
    t = t.reshape(-1).to(device=device, dtype=torch.long)
    if t.numel() != n:
        raise BadInputError(f"targets has {t.numel()} entries but features has {n} rows")
    if bool((t < 0).any()):
        raise BadInputError("targets must be class ids >= 0")
    return t


def _classifier(w: Any, d: int, device: torch.device) -> torch.Tensor:
    """(K, d) weight; a list of layers [W1 (d1, d), ..., WL (K, d_{L-1})] is multiplied out."""
    layers = list(w) if isinstance(w, Sequence) and not hasattr(w, "shape") else [w]
    if not layers:
        raise BadInputError("classifier is an empty list of layers")
    out = None
    for i, layer in enumerate(layers):
        m = to_tensor(layer, f"classifier[{i}]").to(device)
        if m.ndim != 2:
            raise BadInputError(f"classifier layers must be 2-D; got shape {tuple(m.shape)}")
        if out is not None and m.shape[1] != out.shape[0]:
            raise BadInputError(
                f"classifier layer {i} has {m.shape[1]} inputs but the previous one has "
                f"{out.shape[0]} outputs"
            )
        out = m if out is None else m @ out
    assert out is not None
    if out.shape[1] != d:
        raise BadInputError(f"classifier has {out.shape[1]} inputs but features have {d} columns")
    return out


def _target(k: int, geometry: str, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(k, dtype=like.dtype, device=like.device)
    if geometry == "orthogonal":
        return eye / k**0.5
    return (eye - 1.0 / k) / (k - 1) ** 0.5


def _gram_error(m: torch.Tensor, geometry: str) -> float:
    """|| M M^T / ||M M^T||_F - target ||_F for the rows of ``m``."""
    g = m @ m.T
    return float(torch.linalg.norm(g / torch.linalg.norm(g) - _target(m.shape[0], geometry, g)))


def _norm_angle_stats(m: torch.Tensor) -> dict[str, float]:
    """Papyan's equinorm (std/mean of row norms) and equiangularity statistics of ``m``'s rows."""
    k = m.shape[0]
    norms = m.norm(dim=1)
    unit = m / norms.clamp_min(torch.finfo(m.dtype).tiny)[:, None]
    cos = (unit @ unit.T)[~torch.eye(k, dtype=torch.bool, device=m.device)]
    return {
        "equinorm": float(norms.std(unbiased=False) / norms.mean()),
        "cos_std": float(cos.std(unbiased=False)) if cos.numel() else 0.0,
        "cos_shift": float((cos + 1.0 / (k - 1)).abs().mean()) if cos.numel() else 0.0,
    }


class NeuralCollapse:
    """neural-collapse: NC1 within-class variability collapse (NC2-NC4 in details); dimensionless.

    With features ``h_i`` (rows of ``x``), class means ``mu_c``, global mean ``mu_G`` (the mean of
    all rows, so class sizes weight it on imbalanced data), ``M`` the (K, d) matrix of rows
    ``mu_c - mu_G`` (``mu_c`` when ``centered=False``) and ``W`` the (K, d) classifier:

        Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,  Sigma_B = M^T M / K
        NC1 = tr(Sigma_W Sigma_B^+) / K                                   (the returned value)
        NC2(A) = || A A^T / ||A A^T||_F - T ||_F   for A = M and A = W
        NC3 = || W M^T / ||W M^T||_F - T ||_F,  NC3_dual = || W/||W||_F - M/||M||_F ||_F
        NC4 = share of rows where argmax(W h + b) != argmin_c ||h - mu_c||

    ``T = (I - 11^T/K)/sqrt(K-1)`` for ``geometry='etf'`` (balanced classes, with bias: the simplex
    ETF of Papyan et al.) and ``T = I/sqrt(K)`` for ``geometry='orthogonal'`` (the bias-free or
    imbalanced-MSE optimum of Dang et al., where class means become orthogonal). NC1 uses the
    trace-pseudo-inverse variant (not ``tr(Sigma_W)/tr(Sigma_B)`` nor CDNV); ``Sigma_B^+`` drops
    eigenvalues below ``pinv_rtol`` times the largest. Class sizes are counted, never assumed.

    Call ``est(features, targets, classifier=W, bias=b)``: features (N, d), targets (N,) class
    ids in [0, K); ``classifier`` (K, d) or a list of linear layers [W1, ..., WL] (a deep linear
    head, multiplied out to WL...W1); ``bias`` (K,). Without a classifier the W-based measures
    are None. ``details``: nc1, nc2_means, nc2_weights, nc3, nc3_dual, nc4, Papyan's equinorm
    and equiangularity of means and weights, class counts, the rank kept in Sigma_B^+.

    Cost: O(N d K) time, O(N K + d K) memory beyond the input (no (N, d) temporary and no
    Sigma_W: NC1 is (1/N) sum_i ||P^T (h_i - mu_{y_i})||^2 with P the (d, K) pseudo-inverse of
    M); runs on the features' device in float64 (float32 features are copied to float64).

    Args:
        geometry: target Gram matrix for NC2/NC3: 'etf' (simplex ETF) or 'orthogonal'.
        centered: subtract the global mean from the class means (default True; False for the
            bias-free geometry of uncentred means).
        pinv_rtol: relative cut-off of the pseudo-inverse of Sigma_B (default 1e-10).

    Citations: Dang et al., "Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced
    Data" (arXiv:2301.00437); Papyan, Han and Donoho, "Prevalence of Neural Collapse during the
    terminal phase of deep learning training" (arXiv:2008.08186).
    """

    citation = (
        (
            "Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced Data",
            "arXiv:2301.00437",
        ),
        (
            "Prevalence of Neural Collapse during the terminal phase of deep learning training",
            "arXiv:2008.08186",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self, geometry: str = "etf", centered: bool = True, pinv_rtol: float = 1e-10
    ) -> None:
        self.geometry = validate.choice("geometry", geometry, ("etf", "orthogonal"))
        self.centered = validate.flag("centered", centered)
        self.pinv_rtol = validate.number("pinv_rtol", pinv_rtol, low=0, high=1, low_open=True)
        self.units = "dimensionless"

    def __call__(
        self,
        x: Any,
        y: Any = None,
        *,
        classifier: Any = None,
        bias: Any = None,
        details: bool = False,
    ) -> Any:
        h = as_matrix(x, "features")
        n, d = h.shape
        t = _labels(y, n, h.device)
        w = None if classifier is None else _classifier(classifier, d, h.device)
        k = int(t.max()) + 1 if w is None else w.shape[0]
        if w is not None and int(t.max()) >= k:
            raise BadInputError(f"targets hold class {int(t.max())} but classifier has {k} rows")
        if k < 2:
            raise BadInputError("neural-collapse needs at least 2 classes")
        counts = torch.bincount(t, minlength=k)
        if bool((counts == 0).any()):
            empty = int((counts == 0).nonzero()[0])
            raise BadInputError(f"class {empty} has no samples; K = {k} classes are expected")
        sums = torch.zeros(k, d, dtype=h.dtype, device=h.device).index_add_(0, t, h)
        means = sums / counts[:, None].to(h.dtype)
        mu_g = h.mean(dim=0)
        m = means - mu_g if self.centered else means
        # Sigma_B^+ = K P P^T with P = pinv(M) (d, K); eigenvalues of Sigma_B are s^2 / K
        _u, s, vh = torch.linalg.svd(m, full_matrices=False)
        keep = s**2 > self.pinv_rtol * s[0] ** 2 if bool(s[0] > 0) else s > 0
        if not bool(keep.any()):
            raise BadInputError("all class means coincide: Sigma_B is zero and NC1 is undefined")
        p = vh[keep].T / s[keep]  # (d, r): P P^T = pinv(M^T M)
        proj = h @ p
        proj -= (means @ p)[t]  # (h_i - mu_{y_i}) P without an (N, d) temporary
        nc1 = float(proj.square().sum() / n)  # tr(Sigma_W Sigma_B^+)/K = tr(Sigma_W K P P^T)/K
        info: dict[str, Any] = {
            "nc1": nc1,
            "nc2_means": _gram_error(m, self.geometry),
            "nc2_weights": None,
            "nc3": None,
            "nc3_dual": None,
            "nc4": None,
            "means": _norm_angle_stats(m),
            "weights": None,
            "class_counts": to_host(counts),
            "rank_sigma_b": int(keep.sum()),
            "geometry": self.geometry,
        }
        if w is not None:
            wm = w @ m.T
            info["nc2_weights"] = _gram_error(w, self.geometry)
            info["nc3"] = float(
                torch.linalg.norm(wm / torch.linalg.norm(wm) - _target(k, self.geometry, wm))
            )
            info["nc3_dual"] = float(
                torch.linalg.norm(w / torch.linalg.norm(w) - m / torch.linalg.norm(m))
            )
            logits = h @ w.T
            if bias is not None:
                b = to_tensor(bias, "bias").to(h.device).reshape(-1)
                if b.numel() != k:
                    raise BadInputError(f"bias has {b.numel()} entries, expected K = {k}")
                logits = logits + b
            ncc = (means.square().sum(dim=1) - 2.0 * (h @ means.T)).argmin(dim=1)
            info["nc4"] = float((logits.argmax(dim=1) != ncc).to(h.dtype).mean())
            info["weights"] = _norm_angle_stats(w)
        return finish(nc1, info, details)
