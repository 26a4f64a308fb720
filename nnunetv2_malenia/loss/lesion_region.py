"""A class-agnostic "any lesion" loss on nnU-Net's head: Dice + BCE of its summed lesion channels.

Why: the eval rule `lesion_presence="nnunet"` reads the summed softmax of the head's lesion
channels as "is this voxel a lesion?", and synthetic anomalies are meant to teach that question
for appearances no seen disease has. But nnU-Net's Dice+CE only teaches each lesion channel its
own disease: a blob labelled with the first lesion label must out-vote the organ as "liver cyst",
wherever it sits and however it looks. Measured on the varied tier (docs/benchmarks.md): the
trained head leaves blobs brighter than their organ unfound (lesion mass 0.01-0.02 on training
patches, against 0.64 on real lesions), and 30 steps on one frozen batch move it to 0.006. This
loss asks the question the eval rule reads, with a Dice term that weighs a blob as much as a
lesion of any size. Partially labelled cases whose source does not annotate every lesion label
are left out (an unlabelled lesion would be taught as "not a lesion").
"""

from __future__ import annotations

import torch

DICE_SMOOTH = 1.0


def lesion_region_loss(logits: torch.Tensor, target: torch.Tensor, lesion_channels: torch.Tensor,
                       lesion_labels: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Soft Dice (per sample) + BCE of the lesion mass sum_{c lesion} softmax(logits)_c against
    "target is a lesion label". logits (B, C, X, Y, Z); target (B, 1, X, Y, Z) labels;
    lesion_channels (C,) bool; lesion_labels (L,) ints; keep (B,) bool: the samples to use (None:
    all). Zero (with a graph) when no sample is kept."""
    if keep is not None and not bool(keep.any()):
        return logits.sum() * 0.0
    if keep is not None:
        logits, target = logits[keep], target[keep]
    log_probs = torch.log_softmax(logits.float(), 1)
    # log m and log(1 - m) as log-sum-exps over the lesion and the other channels: stable, and no
    # F.binary_cross_entropy, which CUDA autocast refuses
    log_mass = torch.logsumexp(log_probs[:, lesion_channels], 1)               # (B, X, Y, Z)
    log_rest = torch.logsumexp(log_probs[:, ~lesion_channels], 1)
    truth = torch.isin(target[:, 0].long(), lesion_labels.to(target.device)).float()
    mass = log_mass.exp()
    inter = (mass * truth).flatten(1).sum(1)
    dice = 1.0 - (2.0 * inter + DICE_SMOOTH) / (mass.flatten(1).sum(1) + truth.flatten(1).sum(1) + DICE_SMOOTH)
    bce = -(truth * log_mass + (1.0 - truth) * log_rest).mean()
    return dice.mean() + bce
