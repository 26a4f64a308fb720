"""3D masked-attention transformer decoder (Mask2Former's design, written for volumes).

N learnable mask tokens read the coarse decoder levels, one block per level. Each block's
cross-attention is restricted to the voxels its token predicted as foreground after the previous
step, then self-attention between tokens, then an FFN. After the initial tokens and after every
block, shared heads predict a mask embedding (mask = embedding . per-voxel features), an objectness
logit and an attribute embedding (aligned to the text bank by the contrastive loss).

Cost: cross-attention is (tokens x voxels of the level), i.e. linear in the voxels it reads; the
attention masks come from the per-voxel features average-pooled to each level, which equals
average-pooling the full-resolution mask logits (the dot product is linear), without ever
materialising full-resolution masks here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .config import MaleniaConfig
from .position_encoding import sine_position_encoding_3d


class MLP(nn.Module):
    """Plain ReLU MLP (no activation after the last layer)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


@dataclass
class DecoderLayerOutput:
    """Predictions after one decoder step (initial tokens or a block)."""

    mask_embed: torch.Tensor  # (B, N, C4): mask logits = mask_embed . pixel features
    objectness: torch.Tensor  # (B, N) logits
    attr_embed: torch.Tensor  # (B, N, D) in text-embedding space (not normalised)


@dataclass
class DecoderOutput:
    layers: list[DecoderLayerOutput]  # 1 + num_blocks entries, the initial tokens first
    tokens: torch.Tensor  # (B, N, hidden) token states after the last block (normalised)


class MaskedAttentionBlock(nn.Module):
    """Masked cross-attention -> self-attention -> FFN, post-norm, query positions added to q/k."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, kv_dim: int, dropout: float = 0.0):
        super().__init__()
        self.cross_attn = MultiHeadAttention(dim, num_heads, kv_dim=kv_dim, dropout=dropout)
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        q = tokens + query_pos
        tokens = self.norm1(tokens + self.cross_attn(q, memory, memory, key_pos=memory_pos, attn_mask=attn_mask))
        q = tokens + query_pos
        tokens = self.norm2(tokens + self.self_attn(q, q, tokens))
        return self.norm3(tokens + self.ffn(tokens))


def foreground_attention_mask(mask_logits: torch.Tensor) -> torch.Tensor:
    """Bool (B, N, L), True where a token may attend: its predicted foreground.

    Empty-mask guard: a token that predicts no foreground attends everywhere (else its softmax
    would be over nothing and give NaN).
    """
    mask = mask_logits.detach() >= 0
    return mask | ~mask.any(dim=-1, keepdim=True)


class MaskedAttentionDecoder(nn.Module):
    """Tokens -> blocks over the given levels (block b reads level b mod n_levels)."""

    def __init__(self, level_channels: Sequence[int], pixel_channels: int, config: MaleniaConfig):
        super().__init__()
        h = config.hidden_dim
        self.num_levels = len(level_channels)
        self.num_blocks = config.num_blocks
        self.hidden_dim = h
        self.query_feat = nn.Embedding(config.num_tokens, h)
        self.query_pos = nn.Embedding(config.num_tokens, h)
        self.level_embed = nn.Embedding(self.num_levels, h)
        self.blocks = nn.ModuleList(
            MaskedAttentionBlock(h, config.num_heads, config.ffn_dim, level_channels[b % self.num_levels],
                                 config.dropout)
            for b in range(config.num_blocks))
        self.norm = nn.LayerNorm(h)
        self.mask_head = MLP(h, h, pixel_channels, 3)
        self.objectness_head = nn.Linear(h, 1)
        self.attr_head = MLP(h, h, config.text_dim, 2)
        # Mask-pooled readout: attributes a voxel shows (density, texture) are read where they are,
        # at full resolution under the token's mask, not only from coarse levels through attention.
        self.pooled_attr_head = MLP(pixel_channels, h, config.text_dim, 2) if config.mask_pooled_readout else None

    def _predict(self, tokens: torch.Tensor, pooled_pixels: Optional[torch.Tensor], pixel_features: torch.Tensor
                 ) -> tuple[DecoderLayerOutput, Optional[torch.Tensor]]:
        normed = self.norm(tokens)
        mask_embed = self.mask_head(normed)
        attr_embed = self.attr_head(normed)
        if self.pooled_attr_head is not None:
            pixels = pixel_features.flatten(2)  # (B, C4, V)
            weights = torch.sigmoid(torch.einsum("bnc,bcv->bnv", mask_embed.detach(), pixels.detach()).float())
            pooled = torch.einsum("bnv,bcv->bnc", weights.to(pixels.dtype), pixels)
            pooled = pooled / weights.sum(-1, keepdim=True).clamp_min(1.0).to(pixels.dtype)
            attr_embed = attr_embed + self.pooled_attr_head(pooled)
        out = DecoderLayerOutput(mask_embed=mask_embed, objectness=self.objectness_head(normed).squeeze(-1),
                                 attr_embed=attr_embed)
        attn_mask = None
        if pooled_pixels is not None:
            logits = torch.einsum("bnc,bcl->bnl", out.mask_embed, pooled_pixels)
            attn_mask = foreground_attention_mask(logits)
        return out, attn_mask

    def forward(self, levels: Sequence[torch.Tensor], pixel_features: torch.Tensor) -> DecoderOutput:
        """levels: coarse-to-fine backbone features (B, C_l, X_l, Y_l, Z_l); pixel_features: F4."""
        if len(levels) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} levels, got {len(levels)}")
        b = pixel_features.shape[0]
        memories, positions, pooled = [], [], []
        for i, lvl in enumerate(levels):
            shape = lvl.shape[2:]
            memories.append(lvl.flatten(2).transpose(1, 2))  # (B, L, C_l), a view
            pos = sine_position_encoding_3d(shape, self.hidden_dim, device=lvl.device, dtype=lvl.dtype)
            positions.append(pos + self.level_embed.weight[i].to(pos.dtype))
            # avgpool(e . F4) == e . avgpool(F4): the attention masks at this level, computed cheaply.
            pooled.append(F.adaptive_avg_pool3d(pixel_features, shape).flatten(2))
        tokens = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        query_pos = self.query_pos.weight.unsqueeze(0).expand(b, -1, -1)
        layers = []
        out, attn_mask = self._predict(tokens, pooled[0] if self.num_blocks else None, pixel_features)
        layers.append(out)
        for i, block in enumerate(self.blocks):
            li = i % self.num_levels
            tokens = block(tokens, query_pos, memories[li], positions[li], attn_mask)
            nxt = pooled[(i + 1) % self.num_levels] if i + 1 < self.num_blocks else None
            out, attn_mask = self._predict(tokens, nxt, pixel_features)
            layers.append(out)
        return DecoderOutput(layers=layers, tokens=self.norm(tokens))
