"""Model scales: a Llama-family decoder built from a `ModelConfig`, its parameter count and its training FLOPs.

Every scale, from the CPU `smoke` shapes to the paper's 240M and 1B, is a `transformers.LlamaForCausalLM`
(gated SiLU FFN, RoPE, RMSNorm, optionally tied embeddings, a head dimension free of d_model / heads), so a
checkpoint saved with `save_pretrained` loads in any Hugging Face tool, lm-evaluation-harness included.
`check_checkpoint` refuses a saved model or trainer state that is missing, truncated or corrupt before use.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from .config import ModelConfig
from .errors import BadValue, MissingFile


def llama_config(mc: ModelConfig) -> LlamaConfig:
    """The `transformers` config of a scale: intermediate size = ffn_mult * d_model, no biases, no dropout."""
    return LlamaConfig(
        vocab_size=mc.vocab_size,
        hidden_size=mc.d_model,
        intermediate_size=int(round(mc.ffn_mult * mc.d_model)),
        num_hidden_layers=mc.n_layers,
        num_attention_heads=mc.n_heads,
        num_key_value_heads=mc.n_heads,
        head_dim=mc.head_dim,
        max_position_embeddings=mc.context,
        tie_word_embeddings=mc.tie_embeddings,
        rms_norm_eps=1e-6,
        bos_token_id=None,  # our tokenizers add no BOS; the eos/pad ids are set from the tokenizer at training
        eos_token_id=None,
        use_cache=False,
    )


def build_model(mc: ModelConfig, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model; the same config and seed give the same weights."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(mc))
    model.config.use_cache = False
    return model


def count_parameters(mc: ModelConfig) -> dict[str, int]:
    """Total (tied weights counted once) and non-embedding parameters, counted on the meta device (no memory)."""
    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(mc))
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    embedding = mc.vocab_size * mc.d_model * (1 if mc.tie_embeddings else 2)
    return {"total": total, "non_embedding": total - embedding}


def flops_per_token(mc: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N + 12 L H Q T, as in the PaLM paper's MFU.

    N counts every matrix a token is multiplied by: the non-embedding weights and the output projection
    (tied or not), but not the embedding lookup. The second term is the attention score and value products.
    """
    matmul_params = count_parameters(mc)["non_embedding"] + mc.vocab_size * mc.d_model
    attention = 12 * mc.n_layers * mc.n_heads * mc.head_dim * seq_len
    return float(6 * matmul_params + attention)


def check_checkpoint(folder: Path, fix: str) -> None:
    """Refuse a missing, truncated or corrupt checkpoint (model safetensors, trainer state) up front, naming
    the file and the `fix`, rather than failing somewhere inside transformers or torch."""
    weights = sorted(folder.rglob("*.safetensors"))
    if not weights:
        raise MissingFile(f"no model weights (*.safetensors) in {folder}; {fix}")
    for path in weights:
        try:
            with safe_open(path, "pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            raise BadValue(f"{path} is truncated or corrupt ({err}); {fix}") from None
    for path in folder.rglob("*.pt"):  # torch.save writes a zip archive: a cut one has no central directory
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as err:
            raise BadValue(f"{path} is truncated or corrupt ({err}); {fix}") from None
