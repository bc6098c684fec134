"""EstimatorCallback in Lightning: values reach pl_module.log, the loggers and callback_metrics."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("lightning")
pytest.importorskip("transformers")

import numpy as np
import torch
from hf_tiny import tiny_model
from test_hf_trainer import RaggedRows


def _rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + eps
    return math.exp(float(-(p * np.log(p)).sum()))


def test_lightning_callback_logs_rankme_and_token_entropy(tmp_path):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from xent_core.integrations.lightning import EstimatorCallback

    class LM(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lm = tiny_model("gemma2").train()

        def training_step(self, batch, idx):
            return self.lm(**batch).loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    module = LM()
    softcap = module.lm.config.final_logit_softcapping
    seen: list[tuple[float, float]] = []

    def reference(mod, args, kwargs, output):
        if mod.training:
            h = output.last_hidden_state.detach().double()
            h = h[kwargs["attention_mask"].bool()]
            w = module.lm.get_output_embeddings().weight.detach().double()
            logits = softcap * torch.tanh(h @ w.T / softcap)
            ent = float(-(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean())
            seen.append((_rankme(h.numpy()), ent))

    module.lm.get_decoder().register_forward_hook(reference, with_kwargs=True)
    loader = torch.utils.data.DataLoader(RaggedRows(), batch_size=2)
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=CSVLogger(str(tmp_path)),
        log_every_n_steps=1,
        callbacks=[EstimatorCallback(["rankme", "token-entropy"], every_n_steps=2)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    assert float(trainer.callback_metrics["xent/rankme"]) == pytest.approx(seen[2][0], rel=1e-4)
    assert float(trainer.callback_metrics["xent/token-entropy"]) == pytest.approx(
        seen[2][1], rel=1e-4
    )
    import pandas as pd

    csv = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    logged = csv.dropna(subset=["xent/rankme"]).set_index("step")
    # measured at steps 0 and 2 (Lightning's logger repeats the last value on step 1)
    for step in (0, 2):
        assert logged.loc[step, "xent/rankme"] == pytest.approx(seen[step][0], rel=1e-4)
        assert logged.loc[step, "xent/token-entropy"] == pytest.approx(seen[step][1], rel=1e-4)


def test_lightning_callback_needs_a_module_without_a_causal_lm():
    import lightning.pytorch as pl

    from xent_core import BadParameterError
    from xent_core.integrations.lightning import EstimatorCallback

    class Plain(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, 3)

    with pytest.raises(BadParameterError, match="module="):
        EstimatorCallback(["rankme"]).on_fit_start(None, Plain())
    cb = EstimatorCallback(["rankme"], module="net")
    cb.on_fit_start(None, Plain())
    assert cb.capture.handle is not None
