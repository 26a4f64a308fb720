"""Malenia's training loss: deep-supervised mask losses, objectness, MP-NCE alignment, L_seg.

    total = sum_layers [w_bce BCE + w_dice Dice + w_obj objectness]      (initial tokens + every block)
          + w_sim sum_blocks MP-NCE                                        (blocks 1..num_blocks)
          + w_seg_bce BCE(ensemble) + w_seg_dice Dice(ensemble)            (CMKI, L_seg)
          + w_voxel MP-NCE(per-voxel readout, lesion voxels)                (only with voxel_readout)

Mask losses are computed at full resolution for matched tokens only (as in Mask2Former, unmatched
tokens are supervised through objectness alone), normalised by the number of lesions averaged
over DDP ranks. The contrastive term runs over the global batch (gathered with gradient).
A zero-weighted sum of every token-level output keeps every parameter in the graph when a batch
has no lesion, so DDP works without find_unused_parameters. nnU-Net's own head output
(`outputs["seg"]`) is not handled here: the trainer keeps nnU-Net's loss for it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..network.cmki import CMKIOutput
from ..network.transformer_decoder import DecoderLayerOutput
from .contrastive import multi_positive_nce
from .distributed import all_gather_padded, global_mean_count, world_size
from .mask_losses import ensemble_bce_dice, objectness_loss, sigmoid_bce, soft_dice_loss
from .matcher import HungarianMatcher
from .targets import LesionTargets


@dataclass(frozen=True)
class LossWeights:
    mask_bce: float = 5.0
    mask_dice: float = 5.0
    objectness: float = 2.0
    no_object: float = 0.1  # weight of an unmatched token inside the objectness BCE
    contrastive: float = 1.0
    seg_bce: float = 5.0
    seg_dice: float = 5.0
    voxel_attributes: float = 1.0  # per-voxel readout (MaleniaConfig.voxel_readout), when the network has one


def _matched_logits(embed: torch.Tensor, bias: Optional[torch.Tensor], pixel: torch.Tensor,
                    batch_tokens: list[torch.Tensor]) -> torch.Tensor:
    """Full-resolution logits (M, X, Y, Z) of the matched tokens only, sample by sample."""
    parts = []
    for b, tok in enumerate(batch_tokens):
        if tok.numel() == 0:
            continue
        lg = torch.einsum("nc,cxyz->nxyz", embed[b, tok], pixel[b])
        if bias is not None:
            lg = lg + bias[b, tok][:, None, None, None]
        parts.append(lg)
    if not parts:
        return pixel.new_zeros(0, *pixel.shape[2:])
    return torch.cat(parts)


def _touch(outputs: dict[str, Any]) -> torch.Tensor:
    """0 * sum of every Malenia output: zero value, but a gradient path to each parameter
    (the per-voxel features included, which otherwise only meet a loss through a matched mask)."""
    terms = [outputs["logit_scale"].float().sum(), outputs["pixel_features"].sum(dtype=torch.float32)]
    for layer in outputs["layers"]:
        for t in (layer.mask_embed, layer.objectness, layer.attr_embed):
            terms.append(t.sum(dtype=torch.float32))
    cmki: CMKIOutput = outputs["cmki"]
    for head in (cmki.mask_m, cmki.mask_t):
        terms += [head.query.sum(dtype=torch.float32), head.bias.sum(dtype=torch.float32)]
    return 0.0 * torch.stack(terms).sum()


class MaleniaCriterion(nn.Module):
    """`criterion(outputs, targets)` -> dict with "loss" (backward this) and detached components,
    including `mask_layer{i}` (BCE + Dice of layer i: 0 = initial tokens, then one per block)."""

    def __init__(self, weights: LossWeights = LossWeights(), matcher: Optional[HungarianMatcher] = None,
                 gather_contrastive: bool = True):
        super().__init__()
        self.weights = weights
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.gather_contrastive = gather_contrastive

    def forward(self, outputs: dict[str, Any], targets: Sequence[LesionTargets]) -> dict[str, torch.Tensor]:
        w = self.weights
        layers: list[DecoderLayerOutput] = outputs["layers"]
        pixel: torch.Tensor = outputs["pixel_features"]
        dev = pixel.device
        indices = outputs.get("indices")
        if indices is None:
            indices = self.matcher(layers[-1], pixel, targets)
        toks = [t.to(dev) for t, _ in indices]
        gts = [g.to(dev) for _, g in indices]
        n_local = sum(int(t.numel()) for t in toks)
        norm = global_mean_count(n_local, dev)

        b, n = layers[-1].objectness.shape
        matched = torch.zeros(b, n, dtype=torch.bool, device=dev)
        for i, t in enumerate(toks):
            matched[i, t] = True
        gt_masks = torch.cat([tg.masks.to(dev)[g] for tg, g in zip(targets, gts)]) if targets else \
            torch.zeros(0, *pixel.shape[2:], dtype=torch.bool, device=dev)
        gt_attrs = torch.cat([tg.attribute_targets.to(dev)[g] for tg, g in zip(targets, gts)]) if targets else \
            torch.zeros(0, outputs["value_embeddings"].shape[0], dtype=torch.bool, device=dev)

        parts: dict[str, torch.Tensor] = {}
        zero = pixel.new_zeros((), dtype=torch.float32)
        bce_sum, dice_sum, obj_sum, sim_sum = zero, zero, zero, zero
        bank, vtype = outputs["value_embeddings"], outputs["value_type"]
        num_types = int(outputs["num_attribute_types"])
        for li, layer in enumerate(layers):
            logits = _matched_logits(layer.mask_embed, None, pixel, toks)
            layer_bce = sigmoid_bce(logits, gt_masks).sum() / norm
            layer_dice = soft_dice_loss(logits.float().sigmoid(), gt_masks).sum() / norm
            parts[f"mask_layer{li}"] = (layer_bce + layer_dice).detach()
            bce_sum, dice_sum = bce_sum + layer_bce, dice_sum + layer_dice
            obj_sum = obj_sum + objectness_loss(layer.objectness, matched, w.no_object)
            if li == 0:
                continue  # alignment at the transformer blocks only
            z = torch.cat([layer.attr_embed[i, t] for i, t in enumerate(toks)])
            pos = gt_attrs.float()
            valid = None
            if self.gather_contrastive and world_size() > 1:
                z, valid = all_gather_padded(z, with_grad=True)
                pos, _ = all_gather_padded(pos, with_grad=False)
            sim_sum = sim_sum + multi_positive_nce(z, pos > 0.5, bank, vtype, num_types,
                                                   outputs["logit_scale"], valid)

        cmki: CMKIOutput = outputs["cmki"]
        lm = _matched_logits(cmki.mask_m.query, cmki.mask_m.bias, pixel, toks)
        lt = _matched_logits(cmki.mask_t.query, cmki.mask_t.bias, pixel, toks)
        seg_bce, seg_dice = ensemble_bce_dice(lm, lt, gt_masks)
        seg_bce, seg_dice = seg_bce.sum() / norm, seg_dice.sum() / norm

        total = (w.mask_bce * bce_sum + w.mask_dice * dice_sum + w.objectness * obj_sum
                 + w.contrastive * sim_sum + w.seg_bce * seg_bce + w.seg_dice * seg_dice + _touch(outputs))
        if outputs.get("voxel_attributes") is not None:
            voxel_z, voxel_pos = outputs["voxel_attributes"]
            voxel_sim = multi_positive_nce(voxel_z, voxel_pos, bank, vtype, num_types, outputs["logit_scale"])
            total = total + w.voxel_attributes * voxel_sim
            parts["voxel_attributes"] = voxel_sim.detach()
        parts.update(loss=total, mask_bce=bce_sum.detach(), mask_dice=dice_sum.detach(),
                     objectness=obj_sum.detach(), contrastive=sim_sum.detach(), seg_bce=seg_bce.detach(),
                     seg_dice=seg_dice.detach(), num_matched=torch.tensor(float(n_local), device=dev))
        return parts

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.weights).items())
