"""MoMask's token models: masked transformer, residual transformer and length estimator.

Checkpoint-compatible with EricGuo5513/momask-codes (key names and shapes of
`t2m_transformer` / `res_transformer`, see official_keys.json); the CLIP text encoder is not
part of these modules: every method takes the precomputed text feature `cond (B, clip_dim)`,
and an all-zero `cond` is the unconditional input (cond_emb(0) = its bias).

Token conventions (K = num_tokens):
- MaskTransformer: codes 0..K-1, mask_id = K, pad_id = K + 1; the head predicts K classes.
- ResidualTransformer: codes 0..K-1, pad_id = K; layer embeddings have K + 1 rows.
- `generate` returns PAD_INDEX (-1) at positions past each length.

One module for MoMask's three token models (over 450 lines): they share the token conventions
and checkpoint layout above and are loaded together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmu.models.transformer_common import (
    PAD_INDEX,
    InputProcess,
    OutputProcess,
    PositionalEncoding,
    Sampling,
    accuracy,
    build_encoder,
    check_cond,
    check_ids,
    check_lengths,
    classifier_free_guidance,
    constructor_config,
    cosine_schedule,
    drop_condition,
    encode,
    eval_mode,
    gumbel_sample,
    init_weights,
    lengths_to_mask,
    top_k_filter,
)

__all__ = ["LengthEstimator", "MaskTransformer", "ResidualTransformer"]


def _bernoulli(shape, prob: float, device, generator) -> torch.Tensor:
    """Bool tensor of i.i.d. Bernoulli(prob) draws from `generator`."""
    return torch.rand(shape, generator=generator, device=device) < prob


class MaskTransformer(nn.Module):
    """MoMask's masked (base-layer) transformer: bidirectional, trained by masked prediction.

    Sequence [cond_emb(cond), x_1 + pe_0, ..., x_N + pe_{N-1}]: positions are added to the
    motion tokens before the condition token is prepended (the condition token gets none).
    """

    predicts_length = False  # `generate` needs token lengths

    def __init__(
        self,
        num_tokens: int = 512,
        code_dim: int = 512,
        latent_dim: int = 384,
        ff_size: int = 1024,
        num_layers: int = 8,
        num_heads: int = 6,
        dropout: float = 0.2,
        clip_dim: int = 512,
        cond_drop_prob: float = 0.1,
        max_len: int = 5000,
    ):
        super().__init__()
        self.config = constructor_config(locals())
        self.num_tokens = num_tokens
        self.mask_id = num_tokens
        self.pad_id = num_tokens + 1
        self.clip_dim = clip_dim
        self.cond_drop_prob = cond_drop_prob

        self.input_process = InputProcess(code_dim, latent_dim)
        self.position_enc = PositionalEncoding(latent_dim, dropout, max_len)
        self.seqTransEncoder = build_encoder(latent_dim, ff_size, num_layers, num_heads, dropout)
        self.cond_emb = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(num_tokens, latent_dim)
        self.token_emb = nn.Embedding(num_tokens + 2, code_dim)
        self.apply(init_weights)

    def _forward(
        self, ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor
    ) -> torch.Tensor:
        """ids (B, N), cond (B, C), padding_mask (B, N) True = pad -> logits (B, N, K)."""
        x = self.position_enc(self.input_process(self.token_emb(ids)))  # (B, N, D)
        sequence = torch.cat([self.cond_emb(cond)[:, None], x], dim=1)  # (B, N + 1, D)
        keys = F.pad(~padding_mask, (1, 0), value=True)[:, None, None]  # (B, 1, 1, N + 1)
        hidden = encode(self.seqTransEncoder, sequence, keys)[:, 1:]
        return self.output_process(hidden).float()  # (B, N, K); fp32 for guidance and sampling

    def _prepare(self, ids, cond, padding_mask):
        """Validate inputs; return ids with pad_id at padded positions and the padding mask."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, N), got {tuple(ids.shape)}")
        check_cond(cond, ids.shape[0], self.clip_dim)
        if padding_mask is None:
            padding_mask = torch.zeros_like(ids, dtype=torch.bool)
        if padding_mask.shape != ids.shape or padding_mask.dtype != torch.bool:
            raise ValueError(
                f"padding_mask must be a bool tensor of shape {tuple(ids.shape)}, "
                f"got {padding_mask.dtype} {tuple(padding_mask.shape)}"
            )
        ids = ids.masked_fill(padding_mask, self.pad_id)
        check_ids(ids, "ids", self.num_tokens + 2)
        return ids, padding_mask

    def logits(
        self, ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward without sampling or condition dropout: (B, N) ids -> (B, N, K) logits.

        ids may hold mask_id; values at padded positions (padding_mask True) are ignored.
        cond all zeros is the unconditional input. Call `.eval()` first for deterministic output.
        """
        ids, padding_mask = self._prepare(ids, cond, padding_mask)
        return self._forward(ids, cond, padding_mask)

    def guided_logits(
        self,
        ids: torch.Tensor,
        cond: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        cond_scale: float = 4.0,
    ) -> torch.Tensor:
        """Classifier-free guided logits uncond + (cond - uncond) * cond_scale, (B, N, K)."""
        ids, padding_mask = self._prepare(ids, cond, padding_mask)
        if cond_scale == 1:
            return self._forward(ids, cond, padding_mask)
        both = self._forward(
            ids.repeat(2, 1), torch.cat([cond, torch.zeros_like(cond)]), padding_mask.repeat(2, 1)
        )
        cond_logits, uncond_logits = both.chunk(2)
        return classifier_free_guidance(cond_logits, uncond_logits, cond_scale)

    def corrupt(
        self, ids: torch.Tensor, valid: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training inputs of `loss`: ids (B, N), valid (B, N) -> (inputs (B, N), masked (B, N)).

        Per sample round(N * cos(pi/2 u)) positions (u ~ U(0, 1), at least one) are drawn,
        padded ones dropped ("masked"); of those 10% get a random code, 88% of the rest
        mask_id, the others keep their code (upstream's BERT-style scheme).
        """
        batch, seq_len = ids.shape
        device = ids.device
        ratio = cosine_schedule(torch.rand(batch, generator=generator, device=device))  # (B,)
        num_masked = (seq_len * ratio).round().clamp(min=1)  # (B,)
        order = torch.rand((batch, seq_len), generator=generator, device=device).argsort(-1)
        masked = (order < num_masked[:, None]) & valid  # (B, N)

        random_token = _bernoulli(ids.shape, 0.1, device, generator) & masked
        noise_ids = torch.randint(0, self.num_tokens, ids.shape, generator=generator, device=device)
        inputs = torch.where(random_token, noise_ids, ids)
        to_mask = _bernoulli(ids.shape, 0.88, device, generator) & masked & ~random_token
        return inputs.masked_fill(to_mask, self.mask_id), masked

    def loss(
        self,
        ids: torch.Tensor,
        cond: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked-token cross entropy on base-layer codes; returns (ce, accuracy).

        ids (B, N) layer-0 codes, lengths (B,) in tokens; inputs from `corrupt` (cosine mask
        ratio of N, BERT-style 10% random / 88% [MASK]). CE only on the masked positions,
        averaged over all of them. In training mode the condition is zeroed with
        p = cond_drop_prob.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, N), got {tuple(ids.shape)}")
        batch, seq_len = ids.shape
        check_lengths(lengths, batch, seq_len)
        valid = lengths_to_mask(lengths, seq_len)  # (B, N)
        ids, _ = self._prepare(ids, cond, ~valid)
        check_ids(ids.masked_fill(~valid, 0), "ids", self.num_tokens)
        inputs, masked = self.corrupt(ids, valid, generator)
        labels = ids.masked_fill(~masked, self.mask_id)  # mask_id = ignored

        if self.training:
            cond = drop_condition(cond, self.cond_drop_prob, generator)
        logits = self._forward(inputs, cond, ~valid)  # (B, N, K)
        if not masked.any():
            return logits.sum() * 0.0, logits.new_zeros(())
        ce = F.cross_entropy(
            logits.reshape(-1, self.num_tokens), labels.reshape(-1), ignore_index=self.mask_id
        )
        return ce, accuracy(logits.detach(), labels, masked)

    def generate(
        self,
        cond: torch.Tensor,
        lengths: torch.Tensor | None,
        sampling: Sampling | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Iterative masked decoding of base-layer codes -> (ids (B, max(lengths)), lengths).

        lengths (B,) in tokens are required (`predicts_length` is False: free generation
        samples them from a LengthEstimator); sampling None = Sampling(). Starts fully
        masked; at each t in linspace(0, 1, sampling.timesteps) the round(cos(pi/2 t) * len)
        (at least 1) lowest-scoring freshly sampled positions are re-masked, all masked ones are
        sampled from the top-(1 - topk) guided logits (guidance cond_scale), and a token's score
        is the guided probability of the sampled token; tokens not re-masked stay fixed. Runs in
        eval mode. Positions past each length hold PAD_INDEX (-1). Sampling is Gumbel-argmax
        (categorical) of logits / temperature (upstream's sampler ignores temperature; same
        at 1).
        """
        if lengths is None:
            raise ValueError("MaskTransformer.generate needs lengths (sample them first)")
        sampling = sampling or Sampling()
        check_cond(cond, None, self.clip_dim)
        check_lengths(lengths, cond.shape[0])
        with eval_mode(self):
            seq_len = int(lengths.max())
            padding = ~lengths_to_mask(lengths, seq_len)  # (B, N)
            ids = torch.where(padding, self.pad_id, self.mask_id)  # (B, N)
            scores = padding.float() * 1e5  # (B, N); high score = never re-masked
            for t in torch.linspace(0, 1, sampling.timesteps, device=cond.device):
                num_masked = (cosine_schedule(t) * lengths).round().clamp(min=1)  # (B,)
                ranks = scores.argsort(dim=1, stable=True).argsort(dim=1)  # (B, N)
                is_masked = ranks < num_masked[:, None]
                ids = ids.masked_fill(is_masked, self.mask_id)
                logits = self.guided_logits(ids, cond, padding, sampling.cond_scale)  # (B, N, K)
                sampled = gumbel_sample(
                    top_k_filter(logits, sampling.topk), sampling.temperature, generator
                )  # (B, N)
                ids = torch.where(is_masked, sampled, ids)
                probs = logits.softmax(dim=-1).gather(-1, sampled[..., None])[..., 0]
                scores = probs.masked_fill(~is_masked, 1e5)
            return ids.masked_fill(padding, PAD_INDEX), lengths


def _layer_schedule(batch: int, num_quantizers: int, device, generator) -> torch.Tensor:
    """Random residual layers in [1, Q-1], biased to low layers: round((1-cos(pi/2 u))(Q-2))+1."""
    u = torch.rand(batch, generator=generator, device=device)
    return (1 - cosine_schedule(u)).mul(num_quantizers - 2).round().long() + 1


class ResidualTransformer(nn.Module):
    """MoMask's residual transformer: predicts RVQ layer j from the sum of layers < j.

    Sequence [cond_emb(cond), quant_emb(onehot(j)), x + pe]. Layout of upstream's
    share_weight=True, shared_codebook=False: `token_embed_weight_` embeds layer-0 codes,
    `embed_proj_shared_weight[i]` both embeds layer i+1 codes and is the output projection
    for layer i+1, `output_proj_weight_` is the output projection of the last layer.
    """

    def __init__(
        self,
        num_tokens: int = 512,
        num_quantizers: int = 6,
        code_dim: int = 512,
        latent_dim: int = 384,
        ff_size: int = 1024,
        num_layers: int = 8,
        num_heads: int = 6,
        dropout: float = 0.2,
        clip_dim: int = 512,
        cond_drop_prob: float = 0.2,
        max_len: int = 5000,
    ):
        super().__init__()
        if num_quantizers < 2:
            raise ValueError(f"num_quantizers must be >= 2, got {num_quantizers}")
        self.config = constructor_config(locals())
        self.num_tokens = num_tokens
        self.num_quantizers = num_quantizers
        self.pad_id = num_tokens
        self.clip_dim = clip_dim
        self.cond_drop_prob = cond_drop_prob

        rows = num_tokens + 1

        def table(count: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(count, rows, code_dim) * 0.02)

        self.embed_proj_shared_weight = table(num_quantizers - 2)
        self.token_embed_weight_ = table(1)
        self.output_proj_weight_ = table(1)

        self.input_process = InputProcess(code_dim, latent_dim)
        self.position_enc = PositionalEncoding(latent_dim, dropout, max_len)
        self.seqTransEncoder = build_encoder(latent_dim, ff_size, num_layers, num_heads, dropout)
        self.quant_emb = nn.Linear(num_quantizers, latent_dim)
        self.cond_emb = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(code_dim, latent_dim)
        self.apply(init_weights)

    @property
    def token_embed_weight(self) -> torch.Tensor:
        """(Q-1, K+1, C): row i embeds the codes of layer i (i = 0..Q-2)."""
        return torch.cat([self.token_embed_weight_, self.embed_proj_shared_weight])

    @property
    def output_proj_weight(self) -> torch.Tensor:
        """(Q-1, K+1, C): row j-1 projects hidden states to the logits of layer j."""
        return torch.cat([self.embed_proj_shared_weight, self.output_proj_weight_])

    def _input_table(self, layer: int) -> torch.Tensor:
        """token_embed_weight[layer] (K+1, C) without concatenating the tables."""
        shared = self.embed_proj_shared_weight
        return self.token_embed_weight_[0] if layer == 0 else shared[layer - 1]

    def _output_table(self, layer: int) -> torch.Tensor:
        """output_proj_weight[layer - 1] (K+1, C), the head of layer j = `layer`."""
        shared = self.embed_proj_shared_weight
        return shared[layer - 1] if layer <= shared.shape[0] else self.output_proj_weight_[0]

    def _forward(self, history, layer, cond, padding_mask) -> torch.Tensor:
        """history (B, N, C), layer (B,) in [1, Q-1], cond, padding (B, N) -> (B, N, K+1)."""
        x = self.position_enc(self.input_process(history))  # (B, N, D)
        onehot = F.one_hot(layer, self.num_quantizers).to(history.dtype)  # (B, Q)
        quant_token = self.quant_emb(onehot)[:, None]  # (B, 1, D)
        sequence = torch.cat([self.cond_emb(cond)[:, None], quant_token, x], dim=1)  # (B, N+2, D)
        keys = F.pad(~padding_mask, (2, 0), value=True)[:, None, None]  # (B, 1, 1, N + 2)
        hidden = self.output_process(encode(self.seqTransEncoder, sequence, keys)[:, 2:])
        return self._project(hidden, layer)  # (B, N, K+1)

    def _project(self, hidden: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, K+1) of hidden (B, N, C) under each sample's output table.

        One matmul when every sample predicts the same layer (generation); otherwise a
        per-sample table, gathered with F.embedding (deterministic CPU backward, unlike
        indexing).
        """
        if len(layer) and bool((layer == layer[0]).all()):
            return (hidden @ self._output_table(int(layer[0])).T).float()
        weight = self.output_proj_weight  # (Q-1, K+1, C)
        projection = F.embedding(layer - 1, weight.flatten(1)).view(-1, *weight.shape[1:])
        return torch.einsum("bnc,bkc->bnk", hidden, projection).float()

    def _history_terms(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-layer embeddings of ids (B, N, L) -> (B, N, L, C)."""
        weight = self.token_embed_weight  # (Q-1, K+1, C)
        offsets = torch.arange(ids.shape[-1], device=ids.device) * weight.shape[1]  # (L,)
        # table lookup as F.embedding: deterministic backward on the CPU, unlike indexing
        return F.embedding(ids + offsets, weight.flatten(0, 1))

    def _history(self, ids: torch.Tensor) -> torch.Tensor:
        """Sum of layer embeddings of ids (B, N, L) over its L layers -> (B, N, C)."""
        return self._history_terms(ids).sum(dim=2)

    def _guided(self, history, layer, cond, padding_mask, cond_scale) -> torch.Tensor:
        """CFG mix of conditional and unconditional (zero cond) logits, (B, N, K+1)."""
        if cond_scale == 1:
            return self._forward(history, layer, cond, padding_mask)
        both = self._forward(
            history.repeat(2, 1, 1),
            layer.repeat(2),
            torch.cat([cond, torch.zeros_like(cond)]),
            padding_mask.repeat(2, 1),
        )
        cond_logits, uncond_logits = both.chunk(2)
        return classifier_free_guidance(cond_logits, uncond_logits, cond_scale)

    def _prepare(self, prev_ids, cond, padding_mask):
        """Validate (B, N, L) lower-layer ids; return them with pad_id at padded positions."""
        if prev_ids.dim() != 3 or not 1 <= prev_ids.shape[2] <= self.num_quantizers - 1:
            raise ValueError(
                f"prev_ids must have shape (B, N, L) with 1 <= L <= {self.num_quantizers - 1}, "
                f"got {tuple(prev_ids.shape)}"
            )
        check_cond(cond, prev_ids.shape[0], self.clip_dim)
        if padding_mask is None:
            padding_mask = torch.zeros(prev_ids.shape[:2], dtype=torch.bool, device=cond.device)
        if padding_mask.shape != prev_ids.shape[:2] or padding_mask.dtype != torch.bool:
            raise ValueError(
                f"padding_mask must be a bool tensor of shape {tuple(prev_ids.shape[:2])}, "
                f"got {padding_mask.dtype} {tuple(padding_mask.shape)}"
            )
        prev_ids = prev_ids.masked_fill(padding_mask[..., None], self.pad_id)
        check_ids(prev_ids, "prev_ids", self.num_tokens + 1)
        return prev_ids, padding_mask

    def logits(
        self,
        prev_ids: torch.Tensor,
        cond: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        cond_scale: float = 1.0,
    ) -> torch.Tensor:
        """Logits (B, N, K) of layer j = L given the codes prev_ids (B, N, L) of layers 0..L-1.

        cond_scale 1 (default) is the plain conditional forward; cond all zeros is
        unconditional. Padded positions (padding_mask True) may hold any value, e.g. -1.
        """
        prev_ids, padding_mask = self._prepare(prev_ids, cond, padding_mask)
        layer = torch.full(
            (prev_ids.shape[0],), prev_ids.shape[2], dtype=torch.long, device=prev_ids.device
        )
        history = self._history(prev_ids)
        return self._guided(history, layer, cond, padding_mask, cond_scale)[..., : self.num_tokens]

    def loss(
        self,
        all_ids: torch.Tensor,
        cond: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross entropy of one random layer j in [1, Q-1] per sample; returns (ce, accuracy).

        all_ids (B, N, Q) codes of every layer, lengths (B,) in tokens. The input is the sum of
        the embeddings of layers < j; j follows upstream's schedule (more weight on low j).
        """
        if all_ids.dim() != 3 or all_ids.shape[2] != self.num_quantizers:
            raise ValueError(
                f"all_ids must have shape (B, N, {self.num_quantizers}), got {tuple(all_ids.shape)}"
            )
        batch, seq_len, _ = all_ids.shape
        check_lengths(lengths, batch, seq_len)
        valid = lengths_to_mask(lengths, seq_len)  # (B, N)
        check_cond(cond, batch, self.clip_dim)
        ids = all_ids.masked_fill(~valid[..., None], self.pad_id)  # (B, N, Q)
        check_ids(ids, "all_ids", self.num_tokens + 1)

        layer = _layer_schedule(batch, self.num_quantizers, ids.device, generator)  # (B,)
        below = torch.arange(self.num_quantizers - 1, device=ids.device) < layer[:, None]
        embedded = self._history_terms(ids[..., :-1])  # (B, N, Q-1, C)
        history = (embedded * below[:, None, :, None]).sum(dim=2)  # (B, N, C)
        target = ids.gather(2, layer[:, None, None].expand(batch, seq_len, 1))[..., 0]  # (B, N)

        if self.training:
            cond = drop_condition(cond, self.cond_drop_prob, generator)
        logits = self._forward(history, layer, cond, ~valid)  # (B, N, K+1)
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=self.pad_id
        )
        return ce, accuracy(logits.detach(), target, valid)

    def generate(
        self,
        base_ids: torch.Tensor,
        cond: torch.Tensor,
        lengths: torch.Tensor,
        cond_scale: float = 5.0,
        temperature: float = 1.0,
        topk_filter_thres: float = 0.9,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Residual layers 1..Q-1 for base codes (B, N), one guided pass each -> (B, N, Q).

        Sampling is Gumbel-argmax over the top-(1 - thres) of all K + 1 classes, as upstream:
        the pad class can be drawn (rarely, in a trained model); such a code is embedded with the
        pad row in the layers above and returned as PAD_INDEX (-1, decoded as no code), like the
        positions past each length in every layer.
        """
        if base_ids.dim() != 2:
            raise ValueError(f"base_ids must have shape (B, N), got {tuple(base_ids.shape)}")
        batch, seq_len = base_ids.shape
        check_cond(cond, batch, self.clip_dim)
        check_lengths(lengths, batch, seq_len)
        valid = lengths_to_mask(lengths, seq_len)  # (B, N)
        ids = base_ids.masked_fill(~valid, self.pad_id)
        check_ids(ids, "base_ids", self.num_tokens + 1)
        if (ids[valid] == self.pad_id).any():
            raise ValueError("base_ids holds padding inside the given lengths")
        with eval_mode(self):
            layers = [ids]
            history = 0.0
            for j in range(1, self.num_quantizers):
                history = history + F.embedding(ids, self._input_table(j - 1))  # (B, N, C)
                layer = torch.full((batch,), j, dtype=torch.long, device=ids.device)
                logits = self._guided(history, layer, cond, ~valid, cond_scale)
                logits = top_k_filter(logits, topk_filter_thres)  # (B, N, K+1)
                ids = gumbel_sample(logits, temperature, generator).masked_fill(~valid, self.pad_id)
                layers.append(ids)
            codes = torch.stack(layers, dim=-1)  # (B, N, Q)
            return codes.masked_fill(codes == self.pad_id, PAD_INDEX)


class LengthEstimator(nn.Module):
    """Text feature -> distribution over motion length in tokens (classes 0..output_size-1).

    Layout of MoMask's LengthEstimator (checkpoint key 'estimator'): `output` is a Sequential
    Linear(in, 512) LN LeakyReLU(0.2) Dropout(0.2) Linear(512, 256) LN LeakyReLU Dropout
    Linear(256, 128) LN LeakyReLU Linear(128, out), i.e. keys output.{0,1,4,5,8,9,11}.
    """

    def __init__(self, input_size: int = 512, output_size: int = 50, hidden: int = 512):
        super().__init__()
        self.config = dict(input_size=input_size, output_size=output_size, hidden=hidden)
        self.input_size = input_size
        self.output_size = output_size
        widths = [input_size, hidden, hidden // 2, hidden // 4]
        blocks: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i:
                blocks.append(nn.Dropout(0.2))
            blocks += [nn.Linear(w_in, w_out), nn.LayerNorm(w_out), nn.LeakyReLU(0.2)]
        blocks.append(nn.Linear(widths[-1], output_size))
        self.output = nn.Sequential(*blocks)
        self.output.apply(init_weights)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """cond (B, input_size) -> logits (B, output_size) over token lengths."""
        check_cond(cond, None, self.input_size)
        return self.output(cond)

    def loss(self, cond: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        """Cross entropy against token lengths (B,) (clamped to the last class)."""
        check_lengths(token_lengths, cond.shape[0])
        target = token_lengths.clamp(max=self.output_size - 1)
        return F.cross_entropy(self(cond), target)

    def sample(
        self,
        cond: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample token lengths (B,) in eval mode; class 0 is never returned (min length 1)."""
        with eval_mode(self):
            logits = self(cond)
            logits[:, 0] = float("-inf")
            return gumbel_sample(logits, temperature, generator)
