"""The frozen attribute-value text embeddings and the operations on them.

Shared by the network (inference-time attribute choice for CMKI, disease scoring) and the
contrastive loss, so both read attributes the same way: cosine similarity scaled by a learnable
inverse temperature, with a softmax within each attribute type.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .buffers import ResizableBuffersMixin

# Finite stand-in for -inf: keeps logsumexp/softmax gradients free of NaN when a group is empty.
NEG_LARGE = -1.0e4
MAX_LOGIT_SCALE = 100.0


def type_one_hot(value_type: torch.Tensor, num_types: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(V, T) membership of each value in its attribute type."""
    return F.one_hot(value_type.long(), num_types).to(dtype)


def cosine_to_values(attr_embed: torch.Tensor, bank: torch.Tensor, value_type: torch.Tensor,
                     per_type: bool = False) -> torch.Tensor:
    """Cosine similarity (..., V) of attribute embeddings to the unit value embeddings `bank` (V, D).

    attr_embed is (..., D), one embedding read against every value, or with `per_type` (..., T, D),
    one embedding per attribute type (the per-type voxel readout): value v is then read only by the
    embedding of its own type, value_type[v].
    """
    sims = F.normalize(attr_embed.float(), dim=-1) @ bank.float().t()  # (..., V) or (..., T, V)
    if not per_type:
        return sims
    index = value_type.long().view(1, -1).expand(*sims.shape[:-2], 1, -1)  # (..., 1, V)
    return sims.gather(-2, index).squeeze(-2)


def grouped_log_softmax(logits: torch.Tensor, value_type: torch.Tensor, num_types: int) -> torch.Tensor:
    """log p(value | its type) for logits (..., V): a softmax within each attribute type."""
    logits = logits.float()
    member = type_one_hot(value_type, num_types, torch.bool)  # (V, T)
    per_type = torch.where(member, logits.unsqueeze(-1), torch.full_like(logits.unsqueeze(-1), NEG_LARGE))
    lse = torch.logsumexp(per_type, dim=-2)  # (..., T)
    return logits - lse[..., value_type.long()]


class AttributeBank(ResizableBuffersMixin):
    """value_embeddings (V, D), value_type (V,) and the learnable temperature of the alignment."""

    _resizable_buffers = ("value_embeddings", "value_type")

    def __init__(self, num_values: int, text_dim: int, num_types: int, temperature_init: float = 0.07,
                 centered: bool = False):
        super().__init__()
        self.num_types = num_types
        self.centered = centered
        self.text_dim = text_dim
        self.register_buffer("value_embeddings", torch.zeros(num_values, text_dim))
        self.register_buffer("value_type", torch.arange(num_values, dtype=torch.long) % num_types)
        self.logit_scale_log = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))

    def set_vocabulary(self, value_embeddings: torch.Tensor, value_type: torch.Tensor) -> None:
        """Install (possibly a different-sized) vocabulary; no weight depends on its size."""
        if value_embeddings.ndim != 2 or value_embeddings.shape[1] != self.text_dim:
            raise ValueError(f"value_embeddings must be (V, {self.text_dim}), got {tuple(value_embeddings.shape)}")
        if value_type.shape != value_embeddings.shape[:1]:
            raise ValueError("value_type must have one entry per value")
        if value_type.numel() and (value_type.min() < 0 or value_type.max() >= self.num_types):
            raise ValueError(f"value_type entries must lie in [0, {self.num_types})")
        dev = self.logit_scale_log.device
        self.value_embeddings = value_embeddings.detach().float().to(dev).clone()
        self.value_type = value_type.detach().long().to(dev).clone()

    @property
    def num_values(self) -> int:
        return self.value_embeddings.shape[0]

    def logit_scale(self) -> torch.Tensor:
        return self.logit_scale_log.float().exp().clamp(max=MAX_LOGIT_SCALE)

    def normalized_bank(self) -> torch.Tensor:
        """Unit value embeddings; `centered`: minus their type's mean first.

        A frozen sentence encoder puts the values of one type close together (MiniLM: cosine 0.87-0.98
        for "well-defined" vs "ill-defined margin", left vs right lobes), so a token must separate
        them on a small angle. Subtracting the type's mean keeps only what tells the values apart:
        the two values of a binary type become exact opposites. The mean is recomputed from the
        installed vocabulary: a table that adds values to a type moves it (docs/network.md).
        A type with a single value keeps its embedding (its centred vector would be zero).
        """
        bank = F.normalize(self.value_embeddings.float(), dim=-1)
        if not self.centered:
            return bank
        member = type_one_hot(self.value_type, self.num_types)  # (V, T)
        count = member.sum(0)  # (T,)
        mean = (member.t() @ bank) / count.clamp_min(1).unsqueeze(-1)  # (T, D)
        shift = mean[self.value_type.long()] * (count[self.value_type.long()] > 1).unsqueeze(-1)
        return F.normalize(bank - shift, dim=-1)

    def logits(self, attr_embed: torch.Tensor, per_type: bool = False) -> torch.Tensor:
        """Scaled cosine similarity (..., V) of attribute embeddings (..., D) to every value, in
        float32; with `per_type`, of embeddings (..., T, D) to the values of their own type."""
        return self.logit_scale() * cosine_to_values(attr_embed, self.normalized_bank(), self.value_type, per_type)

    def type_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., V) -> (..., T, V): p(value | type), zero outside the type."""
        log_p = grouped_log_softmax(logits, self.value_type, self.num_types)
        member = type_one_hot(self.value_type, self.num_types).t()  # (T, V)
        return log_p.exp().unsqueeze(-2) * member

    def select(self, logits: torch.Tensor, soft: bool = False, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per attribute type, the best-matching value's embedding (..., T, D), or the similarity-weighted mean.

        allowed (..., V) restricts the choice (ground-truth injection: a lesion's own values, so a
        multi-valued type injects the value the token ranks highest, as argmax does at inference);
        a type with no allowed value falls back to all of its values.
        """
        member = type_one_hot(self.value_type, self.num_types, torch.bool).t()  # (T, V)
        ok = member.expand(*logits.shape[:-1], *member.shape)
        if allowed is not None:
            restricted = ok & allowed.bool().unsqueeze(-2)
            ok = torch.where(restricted.any(-1, keepdim=True), restricted, ok)
        scores = torch.where(ok, logits.float().unsqueeze(-2), torch.full_like(ok, NEG_LARGE, dtype=torch.float32))
        if soft:
            weights = torch.softmax(scores, dim=-1) * ok
        else:
            weights = F.one_hot(scores.argmax(-1), scores.shape[-1]).float() * ok.any(-1, keepdim=True)
        return weights @ self.normalized_bank()
