"""BAMM's bidirectional autoregressive token transformer (exitudio/BAMM, 'official' body).

Checkpoint-compatible with BAMM's `t2m_transformer` (official_keys.json). Differences from
MoMask's masked transformer:
- vocabulary: codes 0..K-1, end_id = K, pad_id = K + 1, mask_id = K + 2 (K + 3 embeddings);
  the head predicts K + 1 classes (codes and end);
- the positional encoding is added after the condition token is prepended (it gets pe[0]);
- hybrid attention: causal, plus every position sees all "known" tokens, and a known
  position (the condition token is always one) sees only known positions;
- output i (the condition token's output for i = 0) predicts token i: next-token prediction.

`cond (B, clip_dim)` is the precomputed text feature; all zeros is the unconditional input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmu.models.incremental import IncrementalEncoder
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
    drop_condition,
    encode,
    eval_mode,
    gumbel_sample,
    init_weights,
    lengths_to_mask,
    top_k_filter,
)

__all__ = ["BAMMTransformer", "hybrid_attention_mask"]


def hybrid_attention_mask(known: torch.Tensor) -> torch.Tensor:
    """Allowed attention (B, L+1, L+1), True = may attend, for [cond, x_0..x_{L-1}].

    known (B, L) bool marks known tokens; the condition token (position 0) is always known.
    Query rows of unknown positions see the causal prefix and every known column; rows of
    known positions see only the known columns. known all False gives a causal mask.
    """
    known = F.pad(known, (1, 0), value=True)  # (B, S)
    size = known.shape[1]
    causal = torch.ones(size, size, dtype=torch.bool, device=known.device).tril()  # (S, S)
    return (causal & ~known[:, :, None]) | known[:, None, :]


class BAMMTransformer(nn.Module):
    """BAMM's token transformer with training loss and cascaded two-pass generation."""

    predicts_length = True  # `generate` ends motions with its end token when lengths is None

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
        self.end_id = num_tokens
        self.pad_id = num_tokens + 1
        self.mask_id = num_tokens + 2
        self.num_heads = num_heads
        self.clip_dim = clip_dim
        self.cond_drop_prob = cond_drop_prob

        self.input_process = InputProcess(code_dim, latent_dim)
        self.position_enc = PositionalEncoding(latent_dim, dropout, max_len)
        self.seqTransEncoder = build_encoder(latent_dim, ff_size, num_layers, num_heads, dropout)
        self.cond_emb = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(num_tokens + 1, latent_dim)
        self.token_emb = nn.Embedding(num_tokens + 3, code_dim)
        self.apply(init_weights)

    def _forward(self, ids: torch.Tensor, cond: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """ids (B, L), cond (B, C), known (B, L) bool -> logits (B, L+1, K+1) at every position."""
        x = self.input_process(self.token_emb(ids))  # (B, L, D)
        sequence = self.position_enc(torch.cat([self.cond_emb(cond)[:, None], x], dim=1))
        allowed = hybrid_attention_mask(known)[:, None]  # (B, 1, L+1, L+1)
        return self.output_process(encode(self.seqTransEncoder, sequence, allowed)).float()

    def _prepare(self, ids, cond, known):
        """Validate ids (B, L), cond and known; return known as a bool tensor."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, L), got {tuple(ids.shape)}")
        check_cond(cond, ids.shape[0], self.clip_dim)
        check_ids(ids, "ids", self.num_tokens + 3)
        if known is None:
            known = torch.zeros_like(ids, dtype=torch.bool)
        if known.shape != ids.shape or known.dtype != torch.bool:
            raise ValueError(
                f"known must be a bool tensor of shape {tuple(ids.shape)}, "
                f"got {known.dtype} {tuple(known.shape)}"
            )
        return known

    def logits(
        self, ids: torch.Tensor, cond: torch.Tensor, known: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward without sampling or condition dropout: ids (B, L) -> logits (B, L, K+1).

        Output i predicts token i from the condition, tokens 0..i-1 and all known tokens
        (known (B, L) bool; None = pure causal). ids may hold end_id and pad_id; class K is
        the end token. Call `.eval()` first for deterministic output.
        """
        known = self._prepare(ids, cond, known)
        return self._forward(ids, cond, known)[:, :-1]

    def guided_logits(
        self,
        ids: torch.Tensor,
        cond: torch.Tensor,
        known: torch.Tensor | None = None,
        cond_scale: float = 4.0,
    ) -> torch.Tensor:
        """Classifier-free guided `logits`: uncond + (cond - uncond) * cond_scale, (B, L, K+1)."""
        known = self._prepare(ids, cond, known)
        return self._guided_all(ids, cond, known, cond_scale)[:, :-1]

    def _guided_all(self, ids, cond, known, cond_scale) -> torch.Tensor:
        """CFG over one doubled batch (conditional, zero condition) -> (B, L+1, K+1)."""
        both, reps = self._with_guidance(cond, cond_scale)
        logits = self._forward(ids.repeat(reps, 1), both, known.repeat(reps, 1))
        return self._guide(logits, cond_scale)

    @staticmethod
    def _with_guidance(cond: torch.Tensor, cond_scale: float) -> tuple[torch.Tensor, int]:
        """The batch CFG runs and how often it repeats the inputs: cond (B, C) ->
        ([cond; zeros] (2B, C), 2), or (cond, 1) when the scale is 1."""
        if cond_scale == 1:
            return cond, 1
        return torch.cat([cond, torch.zeros_like(cond)]), 2

    @staticmethod
    def _guide(logits: torch.Tensor, cond_scale: float) -> torch.Tensor:
        """Logits of the `_with_guidance` batch (2B, ...) -> guided logits (B, ...)."""
        if cond_scale == 1:
            return logits
        return classifier_free_guidance(*logits.chunk(2), cond_scale)

    def _embed_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """Encoder input of the condition token (position 0), batch-first: (B, 1, D)."""
        return self.cond_emb(cond)[:, None] + self.position_enc.pe[0]

    def _embed_tokens(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Encoder inputs of tokens ids (B, Q) at sequence positions start.. (>= 1): (B, Q, D)."""
        x = self.input_process.poseEmbedding(self.token_emb(ids))  # (B, Q, D)
        return x + self.position_enc.pe[start : start + ids.shape[1], 0]

    def _head(self, hidden: torch.Tensor, cond_scale: float) -> torch.Tensor:
        """Guided logits (B, Q, K+1) from batch-first encoder outputs (2B or B, Q, D)."""
        return self._guide(self.output_process(hidden).float(), cond_scale)

    def corrupt(
        self, ids: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training inputs of `loss` -> (inputs, target, known), each (B, N+1).

        target: codes, end_id at `length`, pad_id after. Per batch, with p 0.5 a fraction
        r ~ U(0, 0.5) of the positions up to and including the end is known, else none (pure
        causal); codes (not the end) are replaced by random codes with p ~ U(0, 0.5).
        """
        batch, seq_len = ids.shape
        device = ids.device
        codes = lengths_to_mask(lengths, seq_len + 1)  # (B, N+1)
        with_end = lengths_to_mask(lengths + 1, seq_len + 1)  # (B, N+1)
        target = F.pad(ids, (0, 1)).masked_fill(~codes, 0)
        check_ids(target, "ids", self.num_tokens)
        target = target.masked_fill(with_end & ~codes, self.end_id)
        target = target.masked_fill(~with_end, self.pad_id)

        def uniform(shape=()) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=device)

        known_rate = uniform() * 0.5 * (uniform() < 0.5)
        known = (uniform(target.shape) < known_rate) & with_end
        corrupted = (uniform(target.shape) < uniform() * 0.5) & codes
        noise_ids = torch.randint(
            0, self.num_tokens, target.shape, generator=generator, device=device
        )
        return torch.where(corrupted, noise_ids, target), target, known

    def loss(
        self,
        ids: torch.Tensor,
        cond: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token cross entropy including the end token; returns (ce, accuracy).

        ids (B, N) base-layer codes, lengths (B,) in tokens (<= N); inputs, targets and known
        positions from `corrupt`. CE is averaged per sample over its length + 1 positions,
        then over the batch. In training mode the condition is zeroed with
        p = cond_drop_prob.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, N), got {tuple(ids.shape)}")
        batch, seq_len = ids.shape
        check_lengths(lengths, batch, seq_len)
        check_cond(cond, batch, self.clip_dim)
        inputs, target, known = self.corrupt(ids, lengths, generator)
        with_end = target != self.pad_id  # (B, N+1)

        if self.training:
            cond = drop_condition(cond, self.cond_drop_prob, generator)
        logits = self._forward(inputs, cond, known)[:, :-1]  # (B, N+1, K+1)
        ce = F.cross_entropy(logits[with_end], target[with_end], reduction="none")
        weights = (1.0 / (lengths + 1).float())[:, None].expand_as(target)[with_end] / batch
        return (ce * weights).sum(), accuracy(logits.detach(), target, with_end)

    def generate(
        self,
        cond: torch.Tensor,
        lengths: torch.Tensor | None = None,
        sampling: Sampling | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cascaded two-pass decoding -> (ids (B, max length) with PAD_INDEX past it, lengths (B,)).

        Pass 1 samples tokens left to right with guidance `cond_scale`; without `lengths` the
        length is where the end token is first sampled (sampling.max_len if never), with
        `lengths` (in tokens, e.g. ground truth) the end class is excluded and the end is placed
        at the given length. Pass 2 re-masks round(len / 2) positions (at least one) and
        resamples them left to right with the other tokens and the end known, guidance
        `refine_cond_scale`. Softmax sampling at `temperature` (upstream ignores it; same at 1).
        Runs in eval mode; draws all randomness from `generator`. sampling None = Sampling().
        `sampling.refine`:

        - "upstream" (exitudio/BAMM `MaskTransformer.generate`): full softmax (no top-k); an end
          sampled first becomes code 0 of a 1-token motion; pass 2 re-masks the first
          round(len / 2) positions (upstream ranks tied zero scores with torch's unstable
          argsort, whose order of ties depends on the device and version: on this CPU, for a
          49-token motion, positions 1 and 25..47; we fix the tie-break to position order) and
          runs a full forward over all max_len + 1 positions at every step k, resampling
          position k whether re-masked or known (known tokens are restored at the end). Noise is
          drawn as upstream draws it, max_len steps of (B, classes) per pass, also for steps
          whose output cannot matter any more (after every motion ended, past the last
          re-masked position), whose forwards are skipped. Pass 1 uses a key/value cache:
          causal attention makes it the same function as upstream's full forwards.
        - "cached": a cheaper variant: an end token is never sampled first, pass 2 re-masks a
          random half and resamples only those positions (cached keys/values, one position per
          step), sampling over the top-(1 - topk) classes.
        """
        check_cond(cond, None, self.clip_dim)
        batch, device = cond.shape[0], cond.device
        sampling = sampling or Sampling()
        if lengths is not None:
            check_lengths(lengths, batch, sampling.max_len)
            lengths = lengths.long()
        upstream = sampling.refine == "upstream"
        topk = None if upstream else sampling.topk

        def sample(logits: torch.Tensor) -> torch.Tensor:
            return gumbel_sample(top_k_filter(logits, topk), sampling.temperature, generator)

        def skip(classes: int) -> None:  # the noise of a sample whose result cannot matter
            torch.rand((batch, classes), generator=generator, device=device)

        max_len = sampling.max_len
        with eval_mode(self):
            tokens, lengths = self._first_pass(
                cond, lengths, max_len, sampling.cond_scale, sample, skip if upstream else None
            )
            if upstream:
                scale = sampling.refine_cond_scale
                tokens = self._refine_upstream(tokens, lengths, cond, max_len, scale, sample, skip)
            else:
                tokens = self._refine_cached(tokens, lengths, cond, sampling, sample, generator)
            valid = lengths_to_mask(lengths, tokens.shape[1])
            return tokens.masked_fill(~valid, PAD_INDEX), lengths

    def _refine_cached(self, tokens, lengths, cond, sampling, sample, generator):
        """The cached variant's pass 2: re-mask a random half (uniform ranks) and `_refine`."""
        batch, seq_len = tokens.shape
        valid = lengths_to_mask(lengths, seq_len)  # (B, N)
        num_masked = (0.5 * lengths).round().clamp(min=1)  # (B,)
        order = torch.rand((batch, seq_len), generator=generator, device=tokens.device)
        ranks = order.masked_fill(~valid, 2.0).argsort(dim=1).argsort(dim=1)
        remask = ranks < num_masked[:, None]  # (B, N)
        return self._refine(tokens, lengths, remask, cond, sampling.refine_cond_scale, sample)

    def _first_pass(self, cond, lengths, max_len, cond_scale, sample, skip=None):
        """Autoregressive pass 1 -> (tokens (B, N) codes, lengths (B,)); N = max length.

        Causal attention, so each step encodes only the newest position (cached keys/values).
        skip None: the cached variant (an end is never sampled first). skip given: upstream's
        rules (an end sampled first gives code 0 and length 1) and noise (`skip(classes)` for
        each of the max_len steps not computed).
        """
        batch = cond.shape[0]
        predict_len = lengths is None
        steps = max_len if predict_len else int(lengths.max())
        both, reps = self._with_guidance(cond, cond_scale)
        cache = IncrementalEncoder(self.seqTransEncoder, both.shape[0], steps, both)
        positions = torch.arange(steps, device=cond.device)
        x = self._embed_cond(both)  # (2B, 1, D): position 0
        sampled, ended = [], torch.zeros(batch, dtype=torch.bool, device=cond.device)
        for k in range(steps):
            hidden = cache.run(x, k, (positions <= k).expand(both.shape[0], 1, steps))
            logits = self._head(hidden, cond_scale)[:, 0]  # (B, K+1): predicts token k
            if not predict_len:
                logits = logits[:, : self.num_tokens]
            elif k == 0 and skip is None:
                logits[:, self.end_id] = float("-inf")
            token = sample(logits)  # (B,)
            sampled.append(token)
            ended |= token == self.end_id
            if predict_len and ended.all():
                break
            x = self._embed_tokens(token.repeat(reps)[:, None], k + 1)
        for _ in range(len(sampled), max_len if skip is not None else 0):
            skip(self.num_tokens + int(predict_len))
        tokens = torch.stack(sampled, dim=1)  # (B, k+1)
        if predict_len:
            is_end = F.pad(tokens == self.end_id, (0, 1), value=True)  # (B, k+2)
            lengths = is_end.int().argmax(dim=1).clamp(1, tokens.shape[1])  # first end
            steps = int(lengths.max())
            tokens = tokens[:, :steps]
        inside = lengths_to_mask(lengths, steps) & (tokens != self.end_id)
        return tokens.masked_fill(~inside, 0), lengths

    def _refine_upstream(self, tokens, lengths, cond, max_len, cond_scale, sample, skip):
        """Upstream's pass 2 over (B, max_len + 1) ids (codes, the end at `length`, pad after).

        Re-masks the round(len / 2) (at least 1) lowest of the scores 0 (codes) / 1e5 (rest),
        ties in position order, i.e. the first positions; known = the other codes and the end.
        Step k runs a full guided forward and writes a sample at position k of every motion
        (upstream also overwrites known positions, which later steps then see); the known
        tokens are restored at the end. Steps past the last re-masked position of every motion
        cannot change the result: only their noise is drawn.
        """
        width = max_len + 1
        valid = lengths_to_mask(lengths, width)  # (B, max_len + 1)
        ids = F.pad(tokens, (0, width - tokens.shape[1]), value=self.pad_id)
        ids = ids.masked_fill(~valid, self.pad_id).scatter(1, lengths[:, None], self.end_id)
        scores = (~valid).float() * 1e5
        ranks = scores.argsort(dim=1, stable=True).argsort(dim=1)
        remask = ranks < (0.5 * lengths).round().clamp(min=1)[:, None]  # (B, max_len + 1)
        known = (valid | (ids == self.end_id)) & ~remask
        last = int(remask.any(dim=0).nonzero().max())
        kept = ids.clone()
        for k in range(max_len):
            if k > last:
                skip(self.num_tokens)
                continue
            logits = self._guided_all(ids, cond, known, cond_scale)  # (B, width + 1, K+1)
            ids[:, k] = sample(logits[:, k, : self.num_tokens])
        return torch.where(known, kept, ids)[:, : int(lengths.max())]

    def _refine(self, tokens, lengths, remask, cond, cond_scale, sample):
        """Pass 2: resample `remask` positions left to right, all others (and end) known.

        One full encoding fills the key/value cache; then each position from the first to
        the last re-masked one is re-encoded after its input token is final, so every output
        equals a full forward over the current tokens.
        """
        seq_len = tokens.shape[1]
        with_end = lengths_to_mask(lengths + 1, seq_len + 1)  # (B, N+1)
        ids = F.pad(tokens, (0, 1), value=self.pad_id).masked_fill(~with_end, self.pad_id)
        ids = ids.scatter(1, lengths[:, None], self.end_id)  # (B, N+1)
        known = with_end & ~F.pad(remask, (0, 1), value=False)  # (B, N+1)
        steps = torch.nonzero(remask.any(dim=0)).flatten().tolist()
        if not steps:
            return ids[:, :seq_len]
        both, reps = self._with_guidance(cond, cond_scale)
        allowed = hybrid_attention_mask(known).repeat(reps, 1, 1)  # (2B, N+2, N+2)
        cache = IncrementalEncoder(self.seqTransEncoder, both.shape[0], seq_len + 2, both)
        cond_token = self._embed_cond(both)  # (2B, 1, D)
        cache.run(
            torch.cat([cond_token, self._embed_tokens(ids.repeat(reps, 1), 1)], 1), 0, allowed
        )
        for k in range(steps[0], steps[-1] + 1):
            x = cond_token if k == 0 else self._embed_tokens(ids[:, k - 1 : k].repeat(reps, 1), k)
            hidden = cache.run(x, k, allowed[:, k : k + 1])  # position k: token k - 1
            if remask[:, k].any():
                logits = self._head(hidden, cond_scale)[:, 0, : self.num_tokens]  # (B, K)
                ids[:, k] = torch.where(remask[:, k], sample(logits), ids[:, k])
        return ids[:, :seq_len]
