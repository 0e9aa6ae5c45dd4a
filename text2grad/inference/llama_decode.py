"""The engine's decoding step for Llama-architecture models, written as a few tensor operations per layer.

A decoding step feeds one token per running row. Through transformers' module tree that step costs
about as much in per-operation dispatch (mask building, module calls, views, a cache object's callbacks)
as in reading the weights, which is what bounds it: on the 2-core CPU one fp32 stream reached about a
quarter of the memory roofline (docs/benchmarks.md, issue 25). This step does the same arithmetic as
``LlamaForCausalLM`` (RMSNorm, rotary embedding, grouped-query attention over the slot cache, SwiGLU,
tied or untied head) with the layers' own modules for every projection, so a peft-wrapped policy's LoRA
adapters take part exactly as in its own forward, and with the per-step work that is the same for every
layer (rotary angles, the attention bias over the cache) done once per step instead of once per layer.

Prefill (many tokens per row) still goes through the model's own forward.

>>> decoder = LlamaDecoder.for_model(model)  # doctest: +SKIP
>>> logits = decoder(ids, positions, cache)  # [rows, vocab]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = ("llama",)


class LlamaDecoder:
    """One decoding step of a Llama causal LM over a :class:`~text2grad.inference.engine.SlotCache`.

    ``for_model`` returns None for a model this step does not reproduce (another architecture, a
    non-SiLU activation, tensor-parallel pretraining slices): the engine then decodes through the
    model's own forward."""

    def __init__(self, causal_lm) -> None:
        config = causal_lm.config
        self.backbone = causal_lm.model
        self.layers = list(self.backbone.layers)
        self.head = causal_lm.lm_head
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim**-0.5

    @classmethod
    def for_model(cls, model) -> LlamaDecoder | None:
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(causal_lm, "config", None)
        if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            return None
        if config.hidden_act != "silu" or getattr(config, "pretraining_tp", 1) != 1:
            return None
        if not hasattr(causal_lm, "lm_head") or not hasattr(getattr(causal_lm, "model", None), "rotary_emb"):
            return None
        return cls(causal_lm)

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, cache, kv_len: int) -> torch.Tensor:
        """Logits ``[n, vocab]`` (float32) for ``ids[i]`` fed at ``positions[i]`` to cache slot ``i``;
        every row attends to its slot's first ``positions[i] + 1`` entries (``kv_len`` = the longest)."""
        n = ids.shape[0]
        hidden = self.backbone.embed_tokens(ids)  # [n, hidden]
        cos, sin = self.backbone.rotary_emb(hidden, positions[None])
        # rotate_half(x) * sin == x.roll(half) * sin_signed: the sign folded into sin once per step.
        half = self.head_dim // 2
        cos = cos[0, :, None, :]  # [n, 1, head_dim], broadcast over heads
        sin = torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)[:, None, :]
        span = torch.arange(kv_len, device=ids.device)
        bias = torch.zeros((n, kv_len), dtype=hidden.dtype, device=ids.device)
        bias.masked_fill_(span[None, :] > positions[:, None], float("-inf"))
        group = self.heads // self.kv_heads
        # [n * kv_heads, group, kv_len]: one additive bias for every layer's scores
        bias = bias[:, None, None, :].expand(n, self.kv_heads, group, kv_len).reshape(-1, group, kv_len)
        rows = torch.arange(n, device=ids.device)
        for index, layer in enumerate(self.layers):
            hidden = hidden + self._attention(
                layer, hidden, cos, sin, cache.keys[index], cache.values[index], rows, positions, bias
            )
            mlp = layer.mlp
            x = _rms_norm(layer.post_attention_layernorm, hidden)
            hidden = hidden + mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
        hidden = _rms_norm(self.backbone.norm, hidden)
        return self.head(hidden).float()

    def _attention(self, layer, hidden, cos, sin, keys, values, rows, positions, bias) -> torch.Tensor:
        attention = layer.self_attn
        n, kv_len = hidden.shape[0], bias.shape[-1]
        x = _rms_norm(layer.input_layernorm, hidden)
        query = _rotate(attention.q_proj(x).view(n, self.heads, self.head_dim), cos, sin)
        key = _rotate(attention.k_proj(x).view(n, self.kv_heads, self.head_dim), cos, sin)
        keys[rows, :, positions] = key
        values[rows, :, positions] = attention.v_proj(x).view(n, self.kv_heads, self.head_dim)
        group = self.heads // self.kv_heads
        # keys[:n, :, :kv_len] merges its first two dims without a copy (slot stride = kv_heads x head stride)
        cached_keys = keys[:n, :, :kv_len].reshape(n * self.kv_heads, kv_len, self.head_dim)
        cached_values = values[:n, :, :kv_len].reshape(n * self.kv_heads, kv_len, self.head_dim)
        grouped = query.view(n * self.kv_heads, group, self.head_dim)
        scores = torch.baddbmm(bias, grouped, cached_keys.transpose(1, 2), alpha=self.scale)
        out = torch.bmm(scores.softmax(-1), cached_values)  # [n * kv_heads, group, head_dim]
        return attention.o_proj(out.view(n, self.heads * self.head_dim))


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, ``x * cos + rotate_half(x) * sin`` with the sign of rotate_half in ``signed_sin``."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def _rms_norm(norm, hidden: torch.Tensor) -> torch.Tensor:
    """The model's RMSNorm in one fused operation (LlamaRMSNorm's five; the same float32 values)."""
    if hidden.dtype != torch.float32:  # LlamaRMSNorm normalises in float32, then scales in the model's dtype
        variance = hidden.float().pow(2).mean(-1, keepdim=True)
        return norm.weight * (hidden.float() * torch.rsqrt(variance + norm.variance_epsilon)).to(hidden.dtype)
    return F.rms_norm(hidden, norm.weight.shape, norm.weight, norm.variance_epsilon)
