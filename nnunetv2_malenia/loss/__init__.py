"""Malenia losses: Hungarian matcher, mask losses, MP-NCE alignment, criterion, DDP helpers."""
from .contrastive import multi_positive_nce
from .criterion import LossWeights, MaleniaCriterion
from .distributed import all_gather_padded, global_mean_count
from .mask_losses import ensemble_bce_dice, objectness_loss, sigmoid_bce, soft_dice_loss
from .matcher import HungarianMatcher
from .targets import LesionTargets

__all__ = ["multi_positive_nce", "LossWeights", "MaleniaCriterion", "all_gather_padded", "global_mean_count",
           "ensemble_bce_dice", "objectness_loss", "sigmoid_bce", "soft_dice_loss", "HungarianMatcher",
           "LesionTargets"]
