"""Cross-Modal Knowledge Injection: fuse each mask token with its attributes' text, then segment.

Per token, its T attribute embeddings are concatenated and projected to one text token. Deep
fusion layers let tokens read the text tokens and text tokens read the mask tokens (both
cross-attentions see the layer's inputs), each followed by self-attention. Two heads give two
masks per token, Mask_m = Q_m . K and Mask_t = Q_t . K with K = Linear(F4); the ensemble is the
mean of their sigmoid probabilities.

K = W F4 + b is never materialised at full resolution: Q . K = (Q W) . F4 + Q . b, so the heads
return the folded query (B, N, C4) and bias (B, N); `mask_logits` evaluates them where needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .config import MaleniaConfig


@dataclass
class MaskQuery:
    """A per-token linear mask head: logits(x) = query . F4(x) + bias."""

    query: torch.Tensor  # (B, N, C4)
    bias: torch.Tensor  # (B, N)


@dataclass
class CMKIOutput:
    mask_m: MaskQuery  # visual branch
    mask_t: MaskQuery  # text branch


def mask_logits(head: MaskQuery, pixel_features: torch.Tensor) -> torch.Tensor:
    """Full-resolution logits (B, N, X, Y, Z) of a mask head."""
    logits = torch.einsum("bnc,bcxyz->bnxyz", head.query, pixel_features)
    return logits + head.bias[..., None, None, None]


def ensemble_probs(cmki: CMKIOutput, pixel_features: torch.Tensor) -> torch.Tensor:
    """Two-branch ensemble: mean of the two sigmoid probabilities (B, N, X, Y, Z), float32."""
    pm = torch.sigmoid(mask_logits(cmki.mask_m, pixel_features).float())
    pt = torch.sigmoid(mask_logits(cmki.mask_t, pixel_features).float())
    return 0.5 * (pm + pt)


def ensemble_log_probs(logit_m: torch.Tensor, logit_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p and log(1 - p) of the ensemble p = (sigmoid(a) + sigmoid(b)) / 2, computed stably."""
    a, b = logit_m.float(), logit_t.float()
    log_half = math.log(0.5)
    log_p = torch.logaddexp(F.logsigmoid(a), F.logsigmoid(b)) + log_half
    log_q = torch.logaddexp(F.logsigmoid(-a), F.logsigmoid(-b)) + log_half
    return log_p, log_q


class FusionLayer(nn.Module):
    """One bidirectional deep-fusion layer (token<->text cross-attention, then self-attention).

    Pre-norm residuals: with post-norm, near-uniform attention at initialisation adds the same
    mean vector to every token in each of the 4 sub-layers and the tokens collapse to one mask
    (measured on the overfit test); a pre-norm residual stream keeps each token's identity.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.token_cross = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.text_cross = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.token_self = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.text_self = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(self, m: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mn, tn = self.norms[0](m), self.norms[1](t)
        m = m + self.token_cross(mn, tn, tn)
        t = t + self.text_cross(tn, mn, mn)
        mn, tn = self.norms[2](m), self.norms[3](t)
        return m + self.token_self(mn, mn, mn), t + self.text_self(tn, tn, tn)


class CrossModalKnowledgeInjection(nn.Module):
    def __init__(self, config: MaleniaConfig, pixel_channels: int):
        super().__init__()
        h = config.hidden_dim
        self.num_types = config.num_attribute_types
        # LayerNorm after the input projections puts both streams at unit scale, so the shared part
        # the attention sub-layers add does not swamp what tells one token's text from another's.
        self.text_in = nn.Sequential(nn.Linear(config.num_attribute_types * config.text_dim, h), nn.LayerNorm(h))
        self.token_in = nn.Sequential(nn.Linear(h, h), nn.LayerNorm(h))
        self.layers = nn.ModuleList(FusionLayer(h, config.num_heads, config.dropout)
                                    for _ in range(config.fusion_layers))
        self.norm_m, self.norm_t = nn.LayerNorm(h), nn.LayerNorm(h)
        self.q_m = nn.Linear(h, pixel_channels)
        self.q_t = nn.Linear(h, pixel_channels)
        self.key = nn.Linear(pixel_channels, pixel_channels)  # K = Linear(F4), applied folded

    def _head(self, lin: nn.Linear, x: torch.Tensor) -> MaskQuery:
        q = lin(x)
        return MaskQuery(query=q @ self.key.weight.to(q.dtype), bias=q @ self.key.bias.to(q.dtype))

    def forward(self, tokens: torch.Tensor, attribute_embeddings: torch.Tensor) -> CMKIOutput:
        """tokens (B, N, hidden); attribute_embeddings (B, N, T, D) -> the two mask heads."""
        b, n, t, d = attribute_embeddings.shape
        if t != self.num_types:
            raise ValueError(f"expected {self.num_types} attribute types, got {t}")
        text = self.text_in(attribute_embeddings.reshape(b, n, t * d).to(tokens.dtype))
        m = self.token_in(tokens)
        for layer in self.layers:
            m, text = layer(m, text)
        return CMKIOutput(mask_m=self._head(self.q_m, self.norm_m(m)), mask_t=self._head(self.q_t, self.norm_t(text)))
