"""entropy-patching against the spec's computed boundaries and a plain-Python reading of the rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from xent_estimators import entropy_patch_starts

import xent_core

H = [0.1, 2.5, 0.3, 0.2, 3.0, 2.9, 0.4, 1.8]


def _est(**kw):
    return xent_core.estimator("entropy-patching", **kw)


def test_spec_reference_boundaries():
    p = entropy_patch_starts(H, mode="threshold", threshold=1.0)
    assert p.starts() == [0, 1, 2, 5, 6] and p.lengths() == [1, 1, 3, 1, 2]
    p = entropy_patch_starts(H, mode="quantile", quantile=0.75)
    assert p.thresholds[0].item() == pytest.approx(2.6, abs=1e-12)
    assert p.starts() == [0, 5, 6] and p.lengths() == [5, 1, 2]
    value, d = _est()(np.array(H), details=True)  # EntroPE's quantile rule is the default
    assert value == pytest.approx(8 / 3, abs=1e-15)
    np.testing.assert_array_equal(d["start_ids"], [[0, 5, 6]])
    np.testing.assert_array_equal(d["patch_lengths"], [[5, 1, 2]])


def _reference(h, mode, threshold=None, q=0.75, patch_size=4, nxt=False, max_len=None):
    """Starts of one sequence, position by position, from the rules as the docstring states."""
    n = len(h)
    end = n + int(nxt)
    starts = {0}
    if mode in ("threshold", "monotonic", "topk") and end > 1:
        starts.add(1)
    cands = [t for t in range(n) if t + 1 < end]
    if mode in ("threshold", "monotonic", "topk"):
        cands = [t for t in cands if t >= 1]
    if mode == "threshold":
        starts |= {t + 1 for t in cands if h[t] > threshold}
    elif mode == "monotonic":
        starts |= {t + 1 for t in cands if h[t] - h[t - 1] > threshold}
    elif mode == "quantile":
        theta = float(np.quantile(np.asarray(h, dtype=np.float64), q))  # linear, like torch
        starts |= {t + 1 for t in cands if h[t] > theta}
    elif mode == "quantile-monotonic":
        d = [h[t] - h[t - 1] for t in range(1, n)]
        theta = float(np.quantile(np.asarray(d, dtype=np.float64), q)) if d else np.inf
        starts |= {t + 1 for t in cands if t >= 1 and h[t] - h[t - 1] > theta}
    else:
        k = end // patch_size - 2
        ranked = sorted(cands, key=lambda t: (-h[t], t))  # ties: earlier position first
        starts |= {t + 1 for t in ranked[: max(k, 0)]}
    out = sorted(starts)
    if max_len is not None:
        split = []
        for a, b in zip(out, [*out[1:], end]):
            split += list(range(a, b, max_len))
        out = split
    lengths = [b - a for a, b in zip(out, [*out[1:], end])]
    return out, lengths


CASES = [
    dict(mode="threshold", threshold=1.2),
    dict(mode="threshold", threshold=0.9, nxt=True),
    dict(mode="monotonic", threshold=0.3),
    dict(mode="monotonic", threshold=0.0, nxt=True, max_len=3),
    dict(mode="quantile", q=0.6),
    dict(mode="quantile", q=0.9, max_len=4),
    dict(mode="quantile-monotonic", q=0.7),
    dict(mode="topk", patch_size=3),
    dict(mode="topk", patch_size=2, nxt=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_random_batches_with_padding_match_the_reference(case):
    rng = np.random.default_rng(7)
    h = np.round(rng.gamma(2.0, 0.8, size=(5, 23)), 1)  # rounded: ties happen
    lengths = np.array([23, 17, 1, 9, 20])
    kw = {k: v for k, v in case.items() if k not in ("nxt", "max_len", "q")}
    p = entropy_patch_starts(
        torch.from_numpy(h),
        quantile=case.get("q", 0.75),
        include_next_token=case.get("nxt", False),
        max_patch_length=case.get("max_len"),
        lengths=lengths,
        **kw,
    )
    for b, n in enumerate(lengths):
        starts, lens = _reference(list(h[b, :n]), **case)
        assert p.starts(b) == starts, (b, n)
        assert p.lengths(b) == lens
        end = n + int(case.get("nxt", False))
        assert sum(p.lengths(b)) == end
        pad = p.start_ids[b, p.num_patches[b] :]
        assert bool((pad == end).all()) and bool(
            (p.patch_lengths[b, p.num_patches[b] :] == 0).all()
        )
        if case.get("max_len"):
            assert max(lens) <= case["max_len"]


def test_estimator_value_is_tokens_per_patch_over_the_batch():
    rng = np.random.default_rng(3)
    h = rng.gamma(2.0, 1.0, size=(3, 31))
    value, d = _est(mode="threshold", threshold=2.0)(h, [31, 10, 25], details=True)
    assert value == pytest.approx((31 + 10 + 25) / d["num_patches"].sum(), abs=1e-15)
    assert d["patch_lengths"].sum(axis=1).tolist() == [31, 10, 25]


def test_cuda_tensors_stay_on_the_device():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    h = torch.rand(4, 50, device="cuda") * 3
    p = entropy_patch_starts(h, mode="quantile")
    assert p.start_ids.is_cuda
    q = entropy_patch_starts(h.cpu(), mode="quantile")
    assert torch.equal(p.start_ids.cpu(), q.start_ids)


def test_bad_inputs_and_parameters():
    with pytest.raises(xent_core.BadParameterError, match="threshold"):
        _est(mode="threshold")
    with pytest.raises(xent_core.BadParameterError):
        _est(mode="blt")
    with pytest.raises(xent_core.BadParameterError):
        _est(quantile=1.5)
    with pytest.raises(xent_core.BadInputError, match=">= 0"):
        _est()([0.5, -0.1, 2.0])
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        _est()([0.5, float("nan"), 2.0])
    with pytest.raises(xent_core.BadInputError, match="lengths"):
        _est()(np.ones((2, 5)), [5, 6])
    with pytest.raises(xent_core.BadInputError, match="lengths"):
        _est()(np.ones((2, 5)), [5])
    with pytest.raises(xent_core.BadInputError, match="shape"):
        _est()(np.ones((2, 3, 4)))
    with pytest.raises(xent_core.BadInputError):
        _est()(np.ones((2, 5)), [0, 0])


@pytest.mark.parametrize("mode", ["threshold", "monotonic", "quantile", "topk"])
@pytest.mark.parametrize("include_next_token", [False, True])
def test_packing_and_value_without_details_match_a_plain_loop(mode, include_next_token):
    # padded rows of every length (0, 1, full), ties (integer entropies) and a patch cap
    rng = np.random.default_rng(3)
    h = rng.integers(0, 4, size=(7, 9)).astype(float)
    lengths = [0, 1, 2, 9, 5, 9, 3]
    kw = dict(mode=mode, threshold=1.5, include_next_token=include_next_token)
    for cap in (None, 2):
        p = entropy_patch_starts(h, max_patch_length=cap, lengths=lengths, **kw)
        est = _est(max_patch_length=cap, **kw)
        value, d = est(h, lengths, details=True)
        assert est(h, lengths) == value  # the value alone skips the packing
        for b, n in enumerate(lengths):
            end = n + include_next_token
            starts = p.starts(b)
            assert starts == sorted(set(starts)) and all(0 <= s < end for s in starts)
            assert p.lengths(b) == [e - s for s, e in zip(starts, [*starts[1:], end])]
            assert p.start_ids[b, len(starts) :].tolist() == [end] * (
                p.start_ids.shape[1] - len(starts)
            )
            assert p.patch_lengths[b, len(starts) :].tolist() == [0] * (
                p.start_ids.shape[1] - len(starts)
            )
        total = sum(n + include_next_token for n in lengths)
        assert value == total / int(p.num_patches.sum())
        np.testing.assert_array_equal(d["start_ids"], p.start_ids.numpy())
