"""Multi-head attention on top of torch's fused scaled_dot_product_attention."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention whose keys/values may have their own width (`kv_dim`).

    A separate `kv_dim` lets the transformer decoder project raw backbone features straight into
    keys and values (the usual input projection folded into the key/value projections), which
    saves one full (B, L, hidden) activation per level.
    """

    def __init__(self, dim: int, num_heads: int, kv_dim: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        return t.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_pos: Optional[torch.Tensor] = None, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """query (B, N, dim); key/value (B, L, kv_dim); key_pos (L or B,L, dim) added after projection.

        attn_mask: bool (B, N, L), True = may attend (broadcast over heads), or additive float.
        """
        q = self._heads(self.q_proj(query))
        k = self.k_proj(key)
        if key_pos is not None:
            k = k + key_pos
        k = self._heads(k)
        v = self._heads(self.v_proj(value))
        if attn_mask is not None:
            attn_mask = attn_mask.unsqueeze(1)
            if attn_mask.dtype != torch.bool:
                attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))
