"""Per-mask BCE and Dice, computed in float32 (safe under autocast)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..network.cmki import ensemble_log_probs

DICE_SMOOTH = 1.0


def sigmoid_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(M, ...) -> (M,) mean BCE per mask."""
    if logits.shape[0] == 0:
        return logits.new_zeros(0, dtype=torch.float32)
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return loss.flatten(1).mean(1)


def soft_dice_loss(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(M, ...) probabilities -> (M,) 1 - soft Dice per mask (smoothed, so empty masks are fine)."""
    if probs.shape[0] == 0:
        return probs.new_zeros(0, dtype=torch.float32)
    p, t = probs.float().flatten(1), targets.float().flatten(1)
    inter = (p * t).sum(1)
    return 1.0 - (2.0 * inter + DICE_SMOOTH) / (p.sum(1) + t.sum(1) + DICE_SMOOTH)


def ensemble_bce_dice(logit_m: torch.Tensor, logit_t: torch.Tensor,
                      targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and Dice (each (M,)) of the two-branch ensemble p = (sigmoid(a) + sigmoid(b)) / 2."""
    if logit_m.shape[0] == 0:
        z = logit_m.new_zeros(0, dtype=torch.float32)
        return z, z
    log_p, log_q = ensemble_log_probs(logit_m, logit_t)
    t = targets.float()
    bce = -(t * log_p + (1.0 - t) * log_q).flatten(1).mean(1)
    return bce, soft_dice_loss(log_p.exp(), t)


def objectness_loss(logits: torch.Tensor, matched: torch.Tensor, no_object_weight: float) -> torch.Tensor:
    """Weighted BCE over all tokens: matched -> 1, unmatched -> 0 with weight `no_object_weight`."""
    t = matched.float()
    w = torch.where(matched, torch.ones_like(t), torch.full_like(t, no_object_weight))
    loss = F.binary_cross_entropy_with_logits(logits.float(), t, weight=w, reduction="sum")
    return loss / w.sum().clamp_min(1e-6)
