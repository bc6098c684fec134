"""The plugin's components are registered lazily and compose in loss stacks."""

from __future__ import annotations

import subprocess
import sys

import torch
from distill_refs import kl, probs

import xent_core

NAMES = [
    "kd",
    "reverse-kl",
    "jsd",
    "skew-kl",
    "skew-reverse-kl",
    "tvd",
    "dkd",
    "dist",
    "pld",
    "linear-kd",
    "linear-jsd",
]


def test_every_component_is_listed_with_summary_citation_and_inputs():
    listed = {s.name: s for s in xent_core.list_components("loss", plugin="distill")}
    assert sorted(listed) == sorted(NAMES)
    for name, spec in listed.items():
        assert spec.summary and spec.citations and spec.citations[0].arxiv.startswith("arXiv:"), (
            name
        )
        assert "reduction" in spec.param_names and "ignore_index" in spec.param_names, name
        assert spec.inputs[0] in ("logits", "hidden"), name
    assert listed["pld"].citations[0].arxiv == "arXiv:2506.12542"
    assert listed["kd"].optional_inputs[:2] == ("teacher_logits", "targets")
    assert set(listed["linear-kd"].inputs) == {
        "hidden",
        "classifier",
        "teacher_hidden",
        "teacher_classifier",
    }


def test_listing_does_not_import_torch():
    code = (
        "import sys, xent_core, xent_distill; "
        "names = [s.name for s in xent_core.list_components('loss', plugin='distill')]; "
        "assert 'pld' in names and 'linear-kd' in names, names; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_stack_cross_entropy_plus_half_kd_at_temperature_2():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(9, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(9, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (9,), generator=g)
    y[3] = -100
    stack = xent_core.stack("cross-entropy + 0.5*kd(temperature=2)")
    out = stack(logits=s, targets=y, teacher_logits=t)
    keep = y != -100
    kd = (4.0 * kl(probs(t, 2.0), probs(s, 2.0)))[keep].mean()
    want = torch.nn.functional.cross_entropy(s, y, ignore_index=-100) + 0.5 * kd
    torch.testing.assert_close(out, want)
    (g1,) = torch.autograd.grad(out, s)
    (g2,) = torch.autograd.grad(want, s)
    torch.testing.assert_close(g1, g2)
    assert set(stack.log_dict()) == {"loss/cross-entropy", "loss/kd", "loss/total"}


def test_stack_linear_cross_entropy_plus_linear_kd():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(21, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(33, 8, generator=g, dtype=torch.float64, requires_grad=True)
    th = torch.randn(21, 5, generator=g, dtype=torch.float64)
    tw = torch.randn(33, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 33, (21,), generator=g)
    y[::6] = -100
    stack = xent_core.stack("linear-cross-entropy + linear-kd(temperature=2, chunk_size=4)")
    out = stack(hidden=h, classifier=w, targets=y, teacher_hidden=th, teacher_classifier=tw)
    s, t = h @ w.T, th @ tw.T
    keep = y != -100
    want = (
        torch.nn.functional.cross_entropy(s, y, ignore_index=-100)
        + (4.0 * kl(probs(t, 2.0), probs(s, 2.0)))[keep].mean()
    )
    torch.testing.assert_close(out, want)
    g_ours = torch.autograd.grad(out, (h, w))
    g_want = torch.autograd.grad(want, (h, w))
    for a, b in zip(g_ours, g_want):
        torch.testing.assert_close(a, b)
    assert stack.term_names == ["linear-cross-entropy", "linear-kd"]


def test_stack_with_top_k_teacher_and_num_items_routes_by_name():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(8, 12, generator=g, dtype=torch.float64)
    lp, ids = torch.log_softmax(torch.randn(8, 12, generator=g, dtype=torch.float64), -1).topk(5)
    y = torch.randint(0, 12, (8,), generator=g)
    stack = xent_core.stack("pld + 0.25*kd(temperature=2)")
    out = stack(logits=s, targets=y, teacher_topk_ids=ids, teacher_topk_logprobs=lp, num_items=16)
    parts = xent_core.loss("pld")(
        s, y, teacher_topk_ids=ids, teacher_topk_logprobs=lp, num_items=16
    )
    parts = parts + 0.25 * xent_core.loss("kd", temperature=2.0)(
        s, targets=y, teacher_topk_ids=ids, teacher_topk_logprobs=lp, num_items=16
    )
    torch.testing.assert_close(out, parts)
