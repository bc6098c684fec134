"""Tiny random transformers causal LMs for the integration tests (no downloads)."""

from __future__ import annotations

import warnings

import torch

# large init and small softcap/scale values, so a patch that ignores a head transform is caught
FAMILY_EXTRAS: dict[str, dict] = {
    "llama": {},
    "mistral": {},
    "qwen2": {},
    "qwen3": {},
    "phi3": {},
    "olmo2": {},
    "gemma2": {"final_logit_softcapping": 0.5},
    "gemma3_text": {"final_logit_softcapping": 0.5},
    "cohere": {"logit_scale": 0.37},
    "granite": {"logits_scaling": 3.0},
    "mixtral": {
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "output_router_logits": True,
        "router_aux_loss_coef": 0.3,
    },
    "qwen3_moe": {
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
        "output_router_logits": True,
        "router_aux_loss_coef": 0.3,
    },
}
VOCAB = 509


def tiny_config(family: str, **overrides):
    from transformers import AutoConfig

    params = {
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.5,
        **FAMILY_EXTRAS.get(family, {}),
        **overrides,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoConfig.for_model(family, **params)


def tiny_model(family: str, seed: int = 0, dtype=torch.float32, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides)).to(dtype)
    return model.eval()


def batch(seed: int = 0, rows: int = 3, length: int = 11, vocab: int = VOCAB):
    """input_ids, attention_mask and ragged labels (-100 at different places in each row)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, length), generator=gen)
    labels = ids.clone()
    for r in range(rows):
        labels[r, : 1 + r] = -100
        labels[r, length - 2 * r :] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def loss_and_grads(model, forward, inputs):
    model.zero_grad(set_to_none=True)
    out = forward(**inputs)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads
