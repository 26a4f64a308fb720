"""Multi-positive contrastive loss (MP-NCE) between tokens and attribute-value text embeddings.

For token i with positive set P_i (its lesion's values, one or more per type), every positive p
competes only against the negatives of its own type, i.e. the other values of type(p) that are
not positives of i:
    l(i, p) = -log( e^{s_ip} / (e^{s_ip} + sum_{n in type(p), n not in P_i} e^{s_in}) )
            = softplus( logsumexp_{negatives} s_in - s_ip ),
    L = mean_i mean_{p in P_i} l(i, p),   s = logit_scale * cos(z_i, e_v).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..network.attribute_bank import NEG_LARGE, cosine_to_values, type_one_hot


def multi_positive_nce(attr_embed: torch.Tensor, positives: torch.Tensor, bank: torch.Tensor,
                       value_type: torch.Tensor, num_types: int, logit_scale: torch.Tensor,
                       valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """attr_embed (M, D), or (M, T, D) with one embedding per attribute type (each read only against
    its type's values); positives bool (M, V); bank (V, D); valid bool (M,) for padded rows.

    Returns the mean over valid rows; a graph-connected zero when there are none.
    """
    s = logit_scale.float() * cosine_to_values(attr_embed, F.normalize(bank.float(), dim=-1), value_type,
                                               per_type=attr_embed.dim() == 3)  # (M, V)
    pos = positives.bool()
    if valid is None:
        valid = torch.ones(s.shape[0], dtype=torch.bool, device=s.device)
    member = type_one_hot(value_type, num_types, torch.bool)  # (V, T)
    is_neg = (~pos).unsqueeze(-1) & member  # (M, V, T)
    neg_lse = torch.logsumexp(torch.where(is_neg, s.unsqueeze(-1), torch.full_like(s.unsqueeze(-1), NEG_LARGE)),
                              dim=1)  # (M, T)
    per_pair = F.softplus(neg_lse[:, value_type.long()] - s)  # (M, V), meaningful where pos
    per_pair = torch.where(pos, per_pair, torch.zeros_like(per_pair))
    n_pos = pos.sum(1)
    row_ok = valid & (n_pos > 0)
    per_row = per_pair.sum(1) / n_pos.clamp_min(1)
    per_row = torch.where(row_ok, per_row, torch.zeros_like(per_row))
    return per_row.sum() / row_ok.sum().clamp_min(1) + 0.0 * s.sum()
