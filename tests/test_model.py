"""Tests of the model scales: the paper's parameter counts, FLOPs per token, and a seeded, HF-loadable build."""

import pytest
import torch
from transformers import LlamaForCausalLM

from magiclib.config import ModelConfig, load_config
from magiclib.model import build_model, count_parameters, flops_per_token

PAPER_240M = ModelConfig(d_model=768, n_layers=8, n_heads=8, head_dim=256, ffn_mult=8.0, vocab_size=100_864,
                         context=4096)
PAPER_1B = ModelConfig(d_model=1680, n_layers=12, n_heads=8, head_dim=256, ffn_mult=8.0, vocab_size=100_864,
                       context=4096)
TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=24, ffn_mult=2.0, vocab_size=128, context=64)


def test_paper_shapes_count_about_241m_and_1_15b():
    small, large = count_parameters(PAPER_240M), count_parameters(PAPER_1B)
    assert small["total"] == pytest.approx(241e6, rel=0.005)
    assert large["total"] == pytest.approx(1.15e9, rel=0.01)
    assert small["total"] - small["non_embedding"] == 100_864 * 768  # tied: the embedding counts once


def test_count_matches_a_hand_count():
    d, ffn, q = 32, 64, 2 * 24
    per_layer = 3 * d * q + q * d + 3 * d * ffn + 2 * d  # q, k, v, o; gate, up, down; two RMSNorms
    non_embedding = 2 * per_layer + d  # plus the final norm
    assert count_parameters(TINY) == {"total": non_embedding + 128 * d, "non_embedding": non_embedding}
    untied = ModelConfig(**{**TINY.__dict__, "tie_embeddings": False})
    assert count_parameters(untied) == {"total": non_embedding + 2 * 128 * d, "non_embedding": non_embedding}


def test_flops_per_token_is_6n_plus_attention():
    n = count_parameters(PAPER_240M)["non_embedding"] + 100_864 * 768
    assert flops_per_token(PAPER_240M, 4096) == 6 * n + 12 * 8 * 8 * 256 * 4096
    assert flops_per_token(PAPER_240M, 4096) > flops_per_token(PAPER_240M, 1024)


def test_build_is_seeded_and_shaped_as_configured():
    a, b, c = build_model(TINY, 0), build_model(TINY, 0), build_model(TINY, 1)
    assert isinstance(a, LlamaForCausalLM)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, c.model.layers[0].mlp.up_proj.weight)
    attention = a.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (2 * 24, 32)  # head_dim need not be d_model / heads
    assert a.model.layers[0].mlp.gate_proj.weight.shape == (64, 32)
    assert a.lm_head.weight is a.model.embed_tokens.weight
    assert sum(p.numel() for p in a.parameters()) == count_parameters(TINY)["total"]


def test_saved_model_reloads_identically(tmp_path):
    model = build_model(TINY, 3)
    model.save_pretrained(tmp_path)
    again = LlamaForCausalLM.from_pretrained(tmp_path)
    tokens = torch.randint(0, 128, (2, 10))
    torch.testing.assert_close(model(tokens).logits, again(tokens).logits, rtol=0, atol=0)


@pytest.mark.parametrize("preset", ["smoke", "mini"])
def test_preset_scales_are_about_4x_apart(preset):
    totals = [count_parameters(scale.model)["total"] for scale in load_config(preset).scales.values()]
    assert len(totals) == 2 and 3 <= totals[1] / totals[0] <= 5
