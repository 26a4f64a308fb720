"""Marginal Dice + CE for partially labelled cases (Shi et al. 2021, "Marginal loss and exclusion
loss for partially supervised multi-organ segmentation", Medical Image Analysis 70).

In a dataset merged from partially labelled ones, a lung case's label map has no liver: its liver
voxels are background. Trained naively, the model learns to erase livers from lung scans. The
marginal loss instead merges, per case, the softmax probabilities of every class the case's source
does not annotate into background before the loss: "background" then means "background or any
class this case does not label", which is exactly what the label map says. Mass moving between
background and an unannotated class changes nothing, so the loss has no opinion on it.

Nothing of nnU-Net's loss is rewritten: the merged distribution is handed to nnU-Net's own
DC_and_CE_loss as log-probabilities (softmax and cross-entropy of normalised log-probabilities
give the probabilities back), so with every class annotated the loss is nnU-Net's exactly, and
deep supervision stays nnU-Net's DeepSupervisionWrapper.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunetv2_malenia.errors import MaleniaError

# log-probability of an unannotated class after merging: exp(-1e4) is exactly 0 in float32 and
# float64, and a finite floor keeps inf and NaN out of the backward pass
LOG_ZERO = -1e4


def marginal_log_probs(logits: torch.Tensor, annotated: torch.Tensor | None) -> torch.Tensor:
    """Log-probabilities (b, C, ...) with the mass of every unannotated class merged into background.

    `annotated`: (b, C) bool, True where sample b's source annotates class c (column 0, background,
    is always treated as annotated). None: every class annotated, plain log-softmax.
    """
    # at least float32: under autocast, half-precision logits would lose the small probabilities
    log_p = torch.log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, 1)
    if annotated is None:
        return log_p
    b, c = log_p.shape[:2]
    if tuple(annotated.shape) != (b, c):
        raise ValueError(f"annotated mask has shape {tuple(annotated.shape)}, expected (batch, classes) = {(b, c)}")
    mask = annotated.to(device=log_p.device, dtype=torch.bool).clone()
    mask[:, 0] = True
    mask = mask.view(b, c, *([1] * (log_p.ndim - 2)))
    absorbed = ~mask  # the classes that join background, and background itself
    absorbed[:, 0] = True
    background = torch.logsumexp(log_p.masked_fill(~absorbed, float("-inf")), 1, keepdim=True)
    rest = log_p[:, 1:].masked_fill(~mask[:, 1:], LOG_ZERO)
    return torch.cat([background, rest], 1)


class MarginalDCandCELoss(nn.Module):
    """nnU-Net's DC_and_CE_loss on the marginal distribution: forward(logits, target, annotated).

    Wraps an existing DC_and_CE_loss (its Dice class, weights, torch.compile and DDP settings are
    kept). A sample's unannotated classes get probability 0: their Dice term (no target, no
    prediction) is a constant without gradient, so with batch Dice a class is scored only on the
    samples that annotate it. The target must not hold a class its sample does not annotate (a
    merged dataset never does: each case keeps only its source's labels).
    """

    def __init__(self, dc_and_ce: DC_and_CE_loss):
        super().__init__()
        self.dc_and_ce = dc_and_ce

    def forward(self, net_output: torch.Tensor, target: torch.Tensor,
                annotated: torch.Tensor | None = None) -> torch.Tensor:
        return self.dc_and_ce(marginal_log_probs(net_output, annotated), target)


class PartialLabelLoss(nn.Module):
    """The trainer's `self.loss` for partially labelled data: nnU-Net's loss (plain or deep
    supervised) made marginal. nnU-Net's train/validation steps call `loss(output, target)`, with
    no room for the case ids, so the trainer sets `annotated` (b, C) for the batch before the step
    (training/partial_labels.py); None means every class is annotated."""

    def __init__(self, nnunet_loss: nn.Module):
        super().__init__()
        wrapped = isinstance(nnunet_loss, DeepSupervisionWrapper)
        inner = nnunet_loss.loss if wrapped else nnunet_loss
        if not isinstance(inner, DC_and_CE_loss):
            raise MaleniaError(f"partial labels need nnU-Net's Dice+CE loss over plain integer labels; this trainer "
                               f"uses {type(inner).__name__} (region-based training is not supported)")
        if wrapped:
            nnunet_loss.loss = MarginalDCandCELoss(inner)
            self.loss = nnunet_loss
        else:
            self.loss = MarginalDCandCELoss(inner)
        self.deep_supervision = wrapped
        self.annotated: torch.Tensor | None = None

    def forward(self, output: torch.Tensor | Sequence[torch.Tensor],
                target: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if self.deep_supervision:  # one mask per scale: DeepSupervisionWrapper zips its arguments
            return self.loss(output, target, [self.annotated] * len(output))
        return self.loss(output, target, self.annotated)
