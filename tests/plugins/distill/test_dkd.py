"""dkd regression: finite and accurate when the student is confident (q_y rounds to 1)."""

from __future__ import annotations

import torch

import xent_core


def _dkd_logspace(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, alpha: float, beta: float):
    """Float64 DKD with every log-mass taken as a log-sum-exp (no ``1 - q_y``)."""
    s, t = s.double(), t.double()
    is_y = torch.nn.functional.one_hot(y, s.shape[-1]).bool()

    def parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lse = torch.logsumexp(x, -1)
        rest = x.masked_fill(is_y, float("-inf"))
        log_rest = torch.logsumexp(rest, -1)
        return x.gather(-1, y[:, None]).squeeze(-1) - lse, log_rest - lse, rest - log_rest[:, None]

    lp_y, lp_nt, lp_hat = parts(t)
    lq_y, lq_nt, lq_hat = parts(s)
    tckd = lp_y.exp() * (lp_y - lq_y) + lp_nt.exp() * (lp_nt - lq_nt)
    p_hat = lp_hat.exp()
    nckd = torch.where(is_y, 0.0, p_hat * (lp_hat - lq_hat)).sum(-1)
    return (alpha * tckd + beta * nckd).mean()


def test_dkd_confident_student_is_finite_and_matches_logspace_reference():
    torch.manual_seed(0)
    n, c = 4, 9
    t = torch.randn(n, c) * 2
    y = torch.tensor([0, 3, 5, 8])
    s = torch.randn(n, c)
    s[torch.arange(n), y] += 25.0  # 1 - q_y ~ 1e-11: rounds to 0 in float32
    loss = xent_core.loss("dkd", alpha=1.0, beta=8.0, temperature=1.0)
    x = s.clone().requires_grad_()
    value = loss(x, teacher_logits=t, targets=y)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(x.grad).all()
    ref = _dkd_logspace(s, t, y, 1.0, 8.0)
    torch.testing.assert_close(value.double(), ref, rtol=1e-5, atol=1e-5)
    xd = s.double().requires_grad_()
    _dkd_logspace(xd, t, y, 1.0, 8.0).backward()
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-4, atol=1e-6)
