"""Hungarian matching of mask tokens to ground-truth lesions (scipy's linear_sum_assignment).

cost(q, g) = w_bce * BCE(mask_q, gt_g) + w_dice * (1 - Dice) - w_obj * sigmoid(objectness_q),
with masks compared on a grid average-pooled by `downsample` (soft targets); the predicted logits
on that grid are token . pooled features, which equals pooling the full-resolution logits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ..network.transformer_decoder import DecoderLayerOutput
from .targets import LesionTargets


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor <= 1:
        return x
    shape = [max(1, -(-s // factor)) for s in x.shape[-3:]]
    return F.adaptive_avg_pool3d(x, shape)


class HungarianMatcher:
    """Callable used by the network (between decoder and CMKI) and by the criterion."""

    def __init__(self, cost_bce: float = 5.0, cost_dice: float = 5.0, cost_objectness: float = 2.0,
                 downsample: int = 2):
        self.cost_bce = cost_bce
        self.cost_dice = cost_dice
        self.cost_objectness = cost_objectness
        self.downsample = downsample

    @torch.no_grad()
    def cost_matrices(self, layer: DecoderLayerOutput, pixel_features: torch.Tensor,
                      targets: Sequence[LesionTargets]) -> list[torch.Tensor]:
        """Per sample a float32 (num_tokens, num_lesions) cost matrix."""
        pooled = _pool(pixel_features.float(), self.downsample)
        costs = []
        for b, tgt in enumerate(targets):
            n_tok = layer.mask_embed.shape[1]
            if tgt.num_lesions == 0:
                costs.append(torch.zeros(n_tok, 0))
                continue
            logits = torch.einsum("nc,cxyz->nxyz", layer.mask_embed[b].float(), pooled[b]).flatten(1)
            gt = _pool(tgt.masks.to(pooled.device).float().unsqueeze(0), self.downsample)[0].flatten(1)
            n_vox = logits.shape[1]
            bce = (F.softplus(logits).sum(1, keepdim=True) - logits @ gt.t()) / n_vox
            p = logits.sigmoid()
            dice = 1.0 - (2.0 * p @ gt.t() + 1.0) / (p.sum(1, keepdim=True) + gt.sum(1)[None, :] + 1.0)
            obj = -layer.objectness[b].float().sigmoid().unsqueeze(1)
            costs.append(self.cost_bce * bce + self.cost_dice * dice + self.cost_objectness * obj)
        return costs

    @torch.no_grad()
    def __call__(self, layer: DecoderLayerOutput, pixel_features: torch.Tensor,
                 targets: Sequence[LesionTargets]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for c in self.cost_matrices(layer, pixel_features, targets):
            if c.shape[1] == 0:
                empty = torch.zeros(0, dtype=torch.long)
                out.append((empty, empty.clone()))
                continue
            rows, cols = linear_sum_assignment(c.cpu().numpy())
            order = np.argsort(cols)  # report lesions in their own order
            out.append((torch.as_tensor(rows[order], dtype=torch.long), torch.as_tensor(cols[order], dtype=torch.long)))
        return out
