"""OpenAI CLIP's text tower (ViT-B/32: width 512, 12 layers, 8 heads, 512-d output), for HMU.

MoMask and BAMM condition on CLIP's pooled text feature: the final-layer-norm output at the
end-of-text token, projected by `text_projection`. Parameter names follow OpenAI's state dict
(`token_embedding.weight`, `positional_embedding`, `transformer.resblocks.{i}.attn.in_proj_weight`,
`ln_final.*`, `text_projection`), so the text keys of the released `ViT-B-32.pt` load key for key.
The image tower is not built.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

TEXT_KEY_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.")
TEXT_KEY_PREFIXES += ("text_projection",)
HEAD_WIDTH = 64  # OpenAI: heads = width // 64


class QuickGELU(nn.Module):
    """CLIP's GELU approximation x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask; parameters named like nn.MultiheadAttention."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape  # (B, L, D)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, D/H)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, L, D/H)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) with QuickGELU."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = CausalSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, 4 * width),
                gelu=QuickGELU(),
                c_proj=nn.Linear(4 * width, width),
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks (`transformer.resblocks.{i}` in OpenAI's keys)."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(
            *(ResidualAttentionBlock(width, heads) for _ in range(layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class CLIPTextEncoder(nn.Module):
    """CLIP's text transformer: token ids (B, context) -> pooled text features (B, embed_dim)."""

    def __init__(
        self,
        vocab_size: int = 49408,
        context_length: int = 77,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        embed_dim: int = 512,
    ):
        super().__init__()
        self.context_length = context_length
        self.embed_dim = embed_dim
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled features at each row's end-of-text token (its highest id, as in OpenAI's code).

        The mask is causal, so positions after the last end token never influence the result:
        the batch is cut there, which makes short captions ~5x cheaper than the full 77 tokens.
        """
        if tokens.ndim != 2 or tokens.shape[1] > self.context_length:
            raise ValueError(
                f"tokens must be (B, L <= {self.context_length}), got {tuple(tokens.shape)}"
            )
        eot_index = tokens.argmax(dim=-1)  # (B,)
        length = int(eot_index.max()) + 1
        x = self.token_embedding(tokens[:, :length]) + self.positional_embedding[:length]  # (B,L,D)
        x = self.ln_final(self.transformer(x))  # (B, L, D)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot_index]  # (B, D)
        return pooled @ self.text_projection  # (B, E)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], heads: int | None = None):
        """Build the encoder with sizes read from OpenAI-layout text weights and load them.

        heads defaults to OpenAI's width // 64. Missing or unexpected keys raise ValueError.
        """
        state = text_state_dict(state)
        required = ("token_embedding.weight", "positional_embedding", "text_projection")
        absent = [k for k in required if k not in state]
        if absent:
            raise ValueError(f"CLIP text weights lack {absent}; found {sorted(state)[:8]} ...")
        vocab_size, width = state["token_embedding.weight"].shape
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        model = cls(
            vocab_size=vocab_size,
            context_length=state["positional_embedding"].shape[0],
            width=width,
            layers=layers,
            heads=heads or max(1, width // HEAD_WIDTH),
            embed_dim=state["text_projection"].shape[1],
        )
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"CLIP text weights do not match the model: missing {missing}, "
                f"unexpected {unexpected}"
            )
        return model.eval()


def text_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the text-tower tensors of a full CLIP state dict, as float32 (OpenAI ships fp16)."""
    return {
        k: v.float()
        for k, v in state.items()
        if k.startswith(TEXT_KEY_PREFIXES) and isinstance(v, torch.Tensor)
    }


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript zip (OpenAI's ViT-B-32.pt), which holds code/ and constants.pkl."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def load_clip_text_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read CLIP text weights (float32, OpenAI key names) from a user-supplied file.

    Accepts OpenAI's released TorchScript .pt, a state dict saved with torch.save (also nested
    under "state_dict"), or a .safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights file {path} does not exist")
    if path.suffix == ".safetensors":
        state = load_file(path)
    elif is_torchscript_archive(path):
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a CLIP state dict")
    text = text_state_dict(state)
    if not text:
        raise ValueError(
            f"{path} has no CLIP text weights (keys like token_embedding.weight, "
            f"transformer.resblocks.0.attn.in_proj_weight); found {sorted(state)[:8]} ..."
        )
    return text
