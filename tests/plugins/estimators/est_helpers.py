"""Data with known spectra for the estimator tests."""

from __future__ import annotations

import numpy as np


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal d x d matrix."""
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def signed_axis_points(weights: list[float], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` centred unit rows whose covariance ``X^T X / n`` has eigenvalues exactly ``weights``.

    A fraction ``w_i`` of the rows is ``+e_i`` or ``-e_i`` (half each), then all rows are rotated by
    a random orthogonal matrix. Counts must come out even: choose ``n`` accordingly.
    """
    d = len(weights)
    counts = [round(w * n) for w in weights]
    assert sum(counts) == n and all(c % 2 == 0 for c in counts), counts
    rows = []
    for i, c in enumerate(counts):
        e = np.zeros(d)
        e[i] = 1.0
        rows += [e] * (c // 2) + [-e] * (c // 2)
    x = np.array(rows) @ random_rotation(d, rng)
    return x[rng.permutation(n)]


def data_with_covariance_spectrum(
    eigenvalues: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Centred ``n x d`` data whose ``X^T X / n`` has exactly the given eigenvalues."""
    d = len(eigenvalues)
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)  # orthonormal columns, orthogonal to the ones vector
    return np.sqrt(n) * (q * np.sqrt(eigenvalues)) @ random_rotation(d, rng)


def matrix_with_singular_values(s: np.ndarray, n: int, d: int, rng: np.random.Generator):
    """An ``n x d`` matrix with singular values ``s`` (len(s) <= min(n, d), rest zero)."""
    k = len(s)
    u, _ = np.linalg.qr(rng.normal(size=(n, k)))
    v, _ = np.linalg.qr(rng.normal(size=(d, k)))
    return (u * s) @ v.T
