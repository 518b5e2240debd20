"""Residual VQ-VAE for 263-dim HumanML3D motion features (MoMask's tokenizer).

The module tree and parameter names follow MoMask's `RVQVAE` so that official checkpoints
(`rvq_nq6_dc512_nc512_noshare_qdp0.2`) load key-for-key:

- `encoder.model`: Conv1d(in->width, k3), ReLU, `down_t` x [Conv1d(k4, s2, p1), Resnet1D],
  Conv1d(width->emb, k3). Time is downsampled by 2**down_t (196 frames -> 49 tokens).
- `decoder.model`: Conv1d(emb->width, k3), ReLU, `down_t` x [Resnet1D, nearest x2 upsampling,
  Conv1d(k3)], Conv1d(width->width, k3), ReLU, Conv1d(width->in, k3).
- Resnet1D blocks run their dilations high to low (9, 3, 1) in both encoder and decoder.
- `quantizer.layers.{i}.codebook`: one (nb_code, code_dim) buffer per residual layer; this is
  the only quantizer state saved in checkpoints.

Encoder, quantizer and decoder stay in one module (over 450 lines) because the official
checkpoint's key tree spans all three.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Sizes of the official MoMask HumanML3D checkpoint (the constructor defaults).
PAPER_CONFIG: dict[str, Any] = dict(
    input_width=263,
    nb_code=512,
    code_dim=512,
    output_emb_width=512,
    down_t=2,
    stride_t=2,
    width=512,
    depth=3,
    dilation_growth_rate=3,
    activation="relu",
    norm=None,
    num_quantizers=6,
    shared_codebook=False,
    quantize_dropout_prob=0.2,
    quantize_dropout_cutoff_index=0,
    mu=0.99,
)

# A model small enough to train on two CPU cores.
SMALL_CONFIG: dict[str, Any] = {
    **PAPER_CONFIG,
    "nb_code": 256,
    "code_dim": 128,
    "output_emb_width": 128,
    "width": 128,
}

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation={name!r}: expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: x + Dropout(conv2(act(conv1(act(x)))))."""

    def __init__(self, width: int, dilation: int, activation: str, dropout: float):
        super().__init__()
        self.activation1 = _activation(activation)
        self.conv1 = nn.Conv1d(width, width, 3, 1, padding=dilation, dilation=dilation)
        self.activation2 = _activation(activation)
        self.conv2 = nn.Conv1d(width, width, 1, 1, 0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        h = self.conv1(self.activation1(x))
        h = self.conv2(self.activation2(h))
        return x + self.dropout(h)


class Resnet1D(nn.Module):
    """`depth` residual blocks with dilations growth**(depth-1), ..., growth, 1 (high to low)."""

    def __init__(self, width: int, depth: int, growth: int, activation: str, dropout: float):
        super().__init__()
        dilations = [growth**d for d in reversed(range(depth))]
        self.model = nn.Sequential(
            *[ResConv1DBlock(width, d, activation, dropout) for d in dilations]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_width, T) -> (B, output_emb_width, T / stride_t**down_t)."""

    def __init__(
        self,
        input_width,
        output_emb_width,
        down_t,
        stride_t,
        width,
        depth,
        growth,
        activation,
        dropout,
    ):
        super().__init__()
        kernel, pad = 2 * stride_t, stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(input_width, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(width, width, kernel, stride_t, pad),
                    Resnet1D(width, depth, growth, activation, dropout),
                )
            )
        blocks.append(nn.Conv1d(width, output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, output_emb_width, N) -> (B, N * 2**down_t, input_width) (channels last)."""

    def __init__(
        self,
        input_width,
        output_emb_width,
        down_t,
        stride_t,
        width,
        depth,
        growth,
        activation,
        dropout,
    ):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv1d(output_emb_width, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(
                nn.Sequential(
                    Resnet1D(width, depth, growth, activation, dropout),
                    nn.Upsample(scale_factor=stride_t, mode="nearest"),
                    nn.Conv1d(width, width, 3, 1, 1),
                )
            )
        blocks += [
            nn.Conv1d(width, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv1d(width, input_width, 3, 1, 1),
        ]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).permute(0, 2, 1)


def _random_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n rows drawn from x (M, D) without replacement; if M < n, x is tiled with tiny noise."""
    if x.shape[0] >= n:
        return x[torch.randperm(x.shape[0], device=x.device)[:n]]
    repeats = -(-n // x.shape[0])
    tiled = x.repeat(repeats, 1)
    tiled = tiled + torch.randn_like(tiled) * (0.01 / x.shape[1] ** 0.5)
    return tiled[torch.randperm(tiled.shape[0], device=x.device)[:n]]


def _perplexity(indices: torch.Tensor, nb_code: int) -> torch.Tensor:
    """exp(entropy) of the code usage histogram of a flat index tensor."""
    counts = torch.bincount(indices, minlength=nb_code).float()
    prob = counts / counts.sum()
    return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())


class QuantizeEMAReset(nn.Module):
    """One codebook with EMA updates and dead-code reset (MoMask's quantizer layer).

    Training from scratch initialises the codebook from the first training batch with an EMA
    count of 1 per code (so codes unused in the next batch are reset at once). A codebook that
    is loaded from a state dict or set with `set_codebook` marks the layer `initialised`, so a
    train-mode forward refines it instead of re-initialising it; its EMA count starts at
    1 / (1 - mu) per code, so an unused code is only reset after ~log(1-mu)/log(mu) steps.
    """

    def __init__(self, nb_code: int, code_dim: int, mu: float = 0.99):
        super().__init__()
        if not 0.0 <= mu < 1.0:
            raise ValueError(f"mu={mu}: must lie in [0, 1)")
        self.nb_code, self.code_dim, self.mu = nb_code, code_dim, mu
        self.initialised = False
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)

    @torch.no_grad()
    def _start_ema(self, codebook: torch.Tensor, count: float) -> None:
        """Set the codebook and restart the EMA statistics from it with `count` per code."""
        self.codebook.copy_(codebook)
        self.code_count.fill_(count)
        self.code_sum.copy_(self.codebook * count)
        self.initialised = True

    def set_codebook(self, codebook: torch.Tensor) -> None:
        """Replace the codebook (K, D) by a trained one (e.g. an edited copy) and keep it."""
        if codebook.shape != self.codebook.shape:
            raise ValueError(
                f"codebook: expected {tuple(self.codebook.shape)}, got {tuple(codebook.shape)}"
            )
        self._start_ema(codebook, 1.0 / (1.0 - self.mu))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "codebook" in state_dict:
            self.set_codebook(self.codebook.clone())

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distances |x|^2 - 2 x.c + |c|^2 between x (M, D) and every code -> (M, K)."""
        codes_t = self.codebook.t()  # (D, K)
        return (
            torch.sum(x**2, dim=-1, keepdim=True)
            - 2 * torch.matmul(x, codes_t)
            + torch.sum(codes_t**2, dim=0, keepdim=True)
        )

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of x (M, D) -> (M,) long."""
        return self.distances(x).argmin(dim=-1)

    def _sample(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Gumbel-max sample from softmax(-distance / temperature) -> (M,) long."""
        logits = -self.distances(x) / temperature
        uniform = torch.rand_like(logits).clamp_(1e-20, 1.0)
        return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        """EMA update of code sums/counts; codes whose EMA count drops below 1 get reset."""
        onehot = F.one_hot(indices, self.nb_code).to(x.dtype)  # (M, K)
        self.code_sum.mul_(self.mu).add_(onehot.t() @ x, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(onehot.sum(0), alpha=1 - self.mu)
        self.codebook.copy_(self.code_sum / self.code_count[:, None])
        dead = self.code_count < 1.0  # (K,)
        if dead.any():
            self.codebook[dead] = _random_rows(x, self.nb_code)[dead]

    def forward(
        self, x: torch.Tensor, temperature: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize x (M, D) -> (straight-through codes (M, D), indices (M,), commit, perplexity).

        Training: Gumbel sampling at `temperature` (argmin when 0) and an EMA codebook update;
        eval: argmin. The commit loss is mse(x, codes.detach()) with the pre-update codebook.
        """
        if self.training and not self.initialised:
            self._start_ema(_random_rows(x.detach(), self.nb_code), 1.0)
        flat = x.detach()
        if self.training and temperature > 0:
            indices = self._sample(flat, temperature)
        else:
            indices = self.nearest(flat)
        codes = F.embedding(indices, self.codebook)  # (M, D)
        if self.training:
            self._update(flat, indices)
        perplexity = _perplexity(indices, self.nb_code)
        commit_loss = F.mse_loss(x, codes.detach())
        return x + (codes - x).detach(), indices, commit_loss, perplexity


class ResidualVQ(nn.Module):
    """Stack of quantizers, each coding the residual left by the previous ones.

    Quantize dropout (training only): with probability `quantize_dropout_prob` a layer k is
    drawn uniformly from [cutoff, Q) and only layers 0..k are used; the others get index -1.
    """

    def __init__(
        self,
        num_quantizers: int,
        nb_code: int,
        code_dim: int,
        mu: float = 0.99,
        shared_codebook: bool = False,
        quantize_dropout_prob: float = 0.2,
        quantize_dropout_cutoff_index: int = 0,
    ):
        super().__init__()
        if not 0 <= quantize_dropout_cutoff_index < num_quantizers:
            raise ValueError(
                f"quantize_dropout_cutoff_index={quantize_dropout_cutoff_index} not in "
                f"[0, num_quantizers={num_quantizers})"
            )
        self.num_quantizers, self.nb_code, self.code_dim = num_quantizers, nb_code, code_dim
        self.quantize_dropout_prob = quantize_dropout_prob
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        if shared_codebook:
            shared = QuantizeEMAReset(nb_code, code_dim, mu)
            self.layers = nn.ModuleList([shared] * num_quantizers)
        else:
            self.layers = nn.ModuleList(
                [QuantizeEMAReset(nb_code, code_dim, mu) for _ in range(num_quantizers)]
            )

    @property
    def codebooks(self) -> torch.Tensor:
        """All codebooks stacked -> (Q, K, D)."""
        return torch.stack([layer.codebook for layer in self.layers])

    def _num_active_layers(self) -> int:
        if self.training and torch.rand(()).item() < self.quantize_dropout_prob:
            low, high = self.quantize_dropout_cutoff_index, self.num_quantizers
            return int(torch.randint(low, high, ()).item()) + 1
        return self.num_quantizers

    def forward(
        self, x: torch.Tensor, temperature: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, N, D) -> (quantized (B, N, D), indices (B, N, Q), commit loss, perplexity).

        Loss and perplexity are averaged over the layers that were used.
        """
        batch, length, dim = x.shape
        num_active = self._num_active_layers()
        residual, quantized = x.reshape(-1, dim), torch.zeros_like(x).reshape(-1, dim)
        indices = torch.full(
            (batch * length, self.num_quantizers), -1, dtype=torch.long, device=x.device
        )
        losses, perplexities = [], []
        for q, layer in enumerate(self.layers[:num_active]):
            codes, layer_indices, loss, perplexity = layer(residual, temperature)
            indices[:, q] = layer_indices
            residual = residual - codes.detach()
            quantized = quantized + codes
            losses.append(loss)
            perplexities.append(perplexity)
        return (
            quantized.view(batch, length, dim),
            indices.view(batch, length, self.num_quantizers),
            torch.stack(losses).mean(),
            torch.stack(perplexities).mean(),
        )

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices of every layer for x (B, N, D) -> (B, N, Q) long."""
        residual = x.reshape(-1, x.shape[-1])
        indices = []
        for layer in self.layers:
            idx = layer.nearest(residual)
            residual = residual - F.embedding(idx, layer.codebook)
            indices.append(idx)
        return torch.stack(indices, dim=-1).view(*x.shape[:-1], self.num_quantizers)

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of indices (B, N, q), q <= Q -> (Q, B, N, D).

        Missing trailing layers and index -1 (a dropped layer) give zero vectors.
        """
        if indices.dtype not in (torch.int32, torch.int64) or indices.dim() != 3:
            raise ValueError(
                f"indices: expected an integer (B, N, q) tensor, got "
                f"{indices.dtype} {tuple(indices.shape)}"
            )
        if indices.shape[-1] > self.num_quantizers:
            raise ValueError(
                f"indices: {indices.shape[-1]} layers > num_quantizers={self.num_quantizers}"
            )
        if indices.numel() and (indices.min() < -1 or indices.max() >= self.nb_code):
            raise ValueError(f"indices: values must lie in [-1, {self.nb_code})")
        indices = F.pad(indices.long(), (0, self.num_quantizers - indices.shape[-1]), value=-1)
        per_layer = indices.permute(2, 0, 1)  # (Q, B, N)
        layer_ids = torch.arange(self.num_quantizers, device=indices.device)[:, None, None]
        codes = self.codebooks[layer_ids, per_layer.clamp(min=0)]  # (Q, B, N, D)
        return codes * (per_layer >= 0).unsqueeze(-1).to(codes.dtype)


def _full_precision(x: torch.Tensor):
    """A block without autocast: code search and EMA updates stay fp32 under bf16 training
    (distances |x|^2 - 2 x.c + |c|^2 lose the nearest code in bf16)."""
    return torch.autocast(x.device.type, enabled=False)


class RVQVAE(nn.Module):
    """MoMask's residual VQ-VAE: motion (B, T, input_width) <-> codes (B, T / 4, Q).

    Under bf16 autocast (hmu.precision) the convolutions run in bf16, the quantizer in fp32;
    outputs are fp32."""

    def __init__(
        self,
        input_width: int = 263,
        nb_code: int = 512,
        code_dim: int = 512,
        output_emb_width: int = 512,
        down_t: int = 2,
        stride_t: int = 2,
        width: int = 512,
        depth: int = 3,
        dilation_growth_rate: int = 3,
        activation: str = "relu",
        norm: str | None = None,
        num_quantizers: int = 6,
        shared_codebook: bool = False,
        quantize_dropout_prob: float = 0.2,
        quantize_dropout_cutoff_index: int = 0,
        mu: float = 0.99,
        dropout: float = 0.2,
        sample_temperature: float = 0.5,
    ):
        super().__init__()
        if code_dim != output_emb_width:
            raise ValueError(f"code_dim={code_dim} must equal output_emb_width={output_emb_width}")
        if norm is not None:
            raise ValueError(f"norm={norm!r}: only norm=None (the official setting) is supported")
        if stride_t != 2:
            raise ValueError(f"stride_t={stride_t}: only 2 is supported (k4/s2/p1 downsampling)")
        self.hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.sample_temperature = sample_temperature
        self.downsample = stride_t**down_t
        sizes = (
            input_width,
            output_emb_width,
            down_t,
            stride_t,
            width,
            depth,
            dilation_growth_rate,
            activation,
            dropout,
        )
        self.encoder = Encoder(*sizes)
        self.decoder = Decoder(*sizes)
        self.quantizer = ResidualVQ(
            num_quantizers,
            nb_code,
            code_dim,
            mu,
            shared_codebook,
            quantize_dropout_prob,
            quantize_dropout_cutoff_index,
        )

    def _check_motion(self, x: torch.Tensor, name: str = "x") -> None:
        width = self.hparams["input_width"]
        if x.dim() != 3 or x.shape[-1] != width:
            raise ValueError(f"{name}: expected (B, T, {width}), got {tuple(x.shape)}")
        if x.shape[1] < self.downsample:
            raise ValueError(
                f"{name}: T={x.shape[1]} is shorter than one token ({self.downsample} frames)"
            )

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output, channels last: (B, T, 263) -> (B, T / 4, D)."""
        return self.encoder(x.permute(0, 2, 1).float()).permute(0, 2, 1)

    def forward(
        self, x: torch.Tensor, temperature: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct x (B, T, 263), T a multiple of 4 -> (recon (B, T, 263), commit, perplexity).

        In train mode codes are Gumbel-sampled at `temperature` (default: sample_temperature)
        and the codebooks are EMA-updated; in eval mode codes are the nearest ones.
        """
        self._check_motion(x)
        if x.shape[1] % self.downsample:
            raise ValueError(f"x: T={x.shape[1]} is not a multiple of {self.downsample}")
        temperature = self.sample_temperature if temperature is None else temperature
        with _full_precision(x):
            quantized, _, commit_loss, perplexity = self.quantizer(
                self._latent(x).float(), temperature
            )
        return self.decoder(quantized.permute(0, 2, 1)).float(), commit_loss, perplexity

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices of every layer: x (B, T, 263) -> (B, T // 4, Q) long.

        Call in eval mode for deterministic codes (the encoder has dropout).
        """
        self._check_motion(x)
        latent = self._latent(x)
        with _full_precision(x):
            return self.quantizer.quantize(latent.float())

    def forward_decoder(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode indices (B, N, q) (q <= Q; -1 = dropped layer, contributes 0) -> (B, 4N, 263)."""
        latent = self.quantizer.get_codes_from_indices(indices).sum(dim=0)  # (B, N, D)
        return self.decoder(latent.permute(0, 2, 1)).float()


def rvq_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    commit: torch.Tensor,
    ric_weight: float = 0.5,
    commit_weight: float = 0.02,
    joints_num: int = 22,
) -> torch.Tensor:
    """MoMask's VQ-VAE training loss for (B, T, 263) features.

    SmoothL1(pred, gt) + ric_weight * SmoothL1 on the root-relative joint positions
    (features [4, 4 + (joints_num - 1) * 3)) + commit_weight * commit.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    ric = slice(4, 4 + (joints_num - 1) * 3)
    return (
        F.smooth_l1_loss(pred, gt)
        + ric_weight * F.smooth_l1_loss(pred[..., ric], gt[..., ric])
        + commit_weight * commit
    )
