"""Incremental (key/value-cached) evaluation of an upstream post-norm nn.TransformerEncoder.

Autoregressive decoding asks for one new position at a time. Re-running the whole encoder for
each costs O(S) rows per step; caching every layer's keys and values makes a step cost one row.
`IncrementalEncoder` computes the same function as `encoder(x, mask=~allowed)` (post-norm
layers, eval mode, no dropout) with the encoder's own parameters, up to float rounding:
a position's output depends only on the keys/values of the columns its `allowed` row admits,
so the caller must (re)compute a position after any input it can see has changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IncrementalEncoder"]


class IncrementalEncoder:
    """Keys/values of every layer for a batch of sequences of at most `size` positions.

    Positions are written by `run(x, start, allowed)`: x (B, Q, D) are the inputs at
    positions start..start+Q-1 and allowed (B, Q, size) their attention rows (True = may
    attend). Returns the last layer's outputs (B, Q, D) for those positions.
    """

    def __init__(self, encoder: nn.TransformerEncoder, batch: int, size: int, like: torch.Tensor):
        self.layers = list(encoder.layers)
        for layer in self.layers:
            if layer.norm_first or layer.training:
                raise ValueError("IncrementalEncoder needs post-norm layers in eval mode")
        attn = self.layers[0].self_attn
        self.heads = attn.num_heads
        head_dim = attn.embed_dim // self.heads
        shape = (len(self.layers), batch, self.heads, size, head_dim)
        device = like.device.type
        # under autocast the keys/values are stored in its dtype: no cast of the cache per step
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        self.keys = like.new_zeros(shape, dtype=dtype)  # (layers, B, H, S, d)
        self.values = like.new_zeros(shape, dtype=dtype)

    def run(self, x: torch.Tensor, start: int, allowed: torch.Tensor) -> torch.Tensor:
        """Encode positions start..start+Q-1: x (B, Q, D), allowed (B, Q, S) -> (B, Q, D)."""
        batch, queries, dim = x.shape
        stop = start + queries
        mask = allowed[:, None]  # (B, 1, Q, S)
        for index, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (t.view(batch, queries, self.heads, -1).transpose(1, 2) for t in (q, k, v))
            self.keys[index, :, :, start:stop] = k  # (B, H, Q, d)
            self.values[index, :, :, start:stop] = v
            mixed = F.scaled_dot_product_attention(
                q, self.keys[index], self.values[index], attn_mask=mask
            )  # (B, H, Q, d)
            mixed = mixed.transpose(1, 2).reshape(batch, queries, dim)
            x = layer.norm1(x + attn.out_proj(mixed))
            x = layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
        return x
