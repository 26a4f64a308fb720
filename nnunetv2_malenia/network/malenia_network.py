"""The Malenia network: nnU-Net backbone + masked-attention decoder + CMKI + disease head.

Training (network.train()): `forward(x, targets, matcher)` returns a dict of outputs. Matching
has to happen between the transformer decoder and CMKI (CMKI injects the matched lesions'
ground-truth attributes), and DDP only synchronises what runs inside `forward`, so the trainer
passes the criterion's matcher as a callback instead of calling sub-modules itself:

    out = network(x, targets=targets, matcher=criterion.matcher)
    losses = criterion(out, targets)          # reuses out["indices"]

Without targets, CMKI uses the predicted attributes for every token (as at inference).
Eval (network.eval()): `forward(x)` returns only label log-probabilities (B, num_labels, X, Y, Z)
for nnU-Net's sliding-window predictor; `predict_details(x)` returns everything behind them.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from .attribute_bank import AttributeBank
from .backbone_adapter import NnUNetBackboneAdapter
from .cmki import CMKIOutput, CrossModalKnowledgeInjection, ensemble_probs
from .config import VOXEL_NAMING_RULES, MaleniaConfig
from .disease_head import DiseaseHead
from .transformer_decoder import DecoderLayerOutput, MaskedAttentionDecoder
from .voxel_readout import VoxelReadout, lesion_union

# Lesion mass below which a voxel's own readout is not computed (lesion_naming "voxel").
VOXEL_NAMING_MIN_MASS = 0.01
# Lesion mass from which a voxel is inside a lesion for the readout's lesion-only types at inference.
LESION_MASK_MIN_MASS = 0.5

# matcher(last_layer, pixel_features, targets) -> per sample (token indices, target indices)
Matcher = Callable[[DecoderLayerOutput, torch.Tensor, Sequence[Any]], list[tuple[torch.Tensor, torch.Tensor]]]


def scale_gradient(t: torch.Tensor, scale: float) -> torch.Tensor:
    """`t` in the forward pass, `scale` x its gradient in the backward pass (0: detached; negative:
    a gradient reversal, as benchmarks/probe_lesion_readout.py uses)."""
    if scale == 1.0:
        return t
    if scale == 0.0:
        return t.detach()
    return t * scale + t.detach() * (1.0 - scale)


class MaleniaNetwork(nn.Module):
    """Build from an nnU-Net network (as built from the plans), a config and the vocabulary size.

    The vocabulary, its types and the knowledge table are buffers (saved in the state dict, and
    resized to the checkpoint's shapes on load); nothing learnable depends on their sizes.
    """

    def __init__(self, backbone: nn.Module, config: MaleniaConfig, num_values: int, input_channels: int = 1):
        super().__init__()
        self.config = config
        self.backbone = NnUNetBackboneAdapter(backbone)
        channels = self.backbone.feature_channels
        # Transformer levels: the coarsest decoder stages, never the last (per-voxel) one, which is F4.
        n_levels = max(1, min(config.num_blocks, len(channels) - 1))
        self.level_indices = list(range(n_levels))
        pixel_channels = channels[-1]
        self.transformer_decoder = MaskedAttentionDecoder([channels[i] for i in self.level_indices],
                                                          pixel_channels, config)
        self.attributes = AttributeBank(num_values, config.text_dim, config.num_attribute_types,
                                        config.temperature_init, config.center_text_bank)
        self.cmki = CrossModalKnowledgeInjection(config, pixel_channels)
        head_channels = int(backbone.decoder.num_classes)
        # the anomalies' own channel, the last one, is a lesion channel of no disease
        lesion_channels = (*config.lesion_labels, *((head_channels - 1,) if config.anomaly_head_channel else ()))
        self.disease_head = DiseaseHead(num_values, head_channels, lesion_channels)
        self.voxel_readout = VoxelReadout(pixel_channels, config.hidden_dim, config.text_dim,
                                          input_channels if config.voxel_readout_local else None,
                                          config.num_attribute_types if config.voxel_readout_per_type else None,
                                          config.voxel_readout_lesion_only_types,
                                          config.voxel_readout_mask_only_types,
                                          config.voxel_readout_lesion_relative) \
            if config.voxel_readout else None
        self._kept: list[dict] | None = None  # see keep_next_details

    # nnU-Net's trainer toggles `network.decoder.deep_supervision`; keep that working.
    @property
    def decoder(self) -> nn.Module:
        return self.backbone.decoder

    def set_vocabulary(self, value_embeddings: torch.Tensor, value_type: torch.Tensor) -> None:
        self.attributes.set_vocabulary(value_embeddings, value_type)

    def set_knowledge_table(self, table_weights: torch.Tensor, label_of_disease: Sequence[int] | torch.Tensor,
                            num_labels: Optional[int] = None,
                            head_label_map: Optional[Sequence[int] | torch.Tensor] = None) -> None:
        """Swap the knowledge table (zero-shot: rows for unseen diseases); weights are untouched."""
        if table_weights.shape[-1] != self.attributes.num_values:
            raise ValueError(f"table has {table_weights.shape[-1]} values, vocabulary {self.attributes.num_values}")
        self.disease_head.set_knowledge_table(table_weights, label_of_disease, num_labels, head_label_map)

    def _run_decoder(self, x: torch.Tensor):
        feats = self.backbone(x)
        scale = self.config.token_backbone_gradient
        pixel = scale_gradient(feats.pixel_features, scale)
        dec = self.transformer_decoder([scale_gradient(feats.decoder_features[i], scale) for i in self.level_indices],
                                       pixel)
        return feats, pixel, dec

    def _injected_attributes(self, attr_logits: torch.Tensor, targets: Optional[Sequence[Any]],
                             indices: Optional[list[tuple[torch.Tensor, torch.Tensor]]]) -> torch.Tensor:
        """(B, N, T, D): matched tokens get their lesion's attributes, the others the predicted ones."""
        allowed = None
        if targets and indices is not None:
            allowed = torch.ones(attr_logits.shape, dtype=torch.bool, device=attr_logits.device)
            for b, (tok, tgt) in enumerate(indices):
                if tok.numel():
                    tok, tgt = tok.to(allowed.device), tgt.to(allowed.device)
                    allowed[b, tok] = targets[b].attribute_targets.to(allowed.device)[tgt].bool()
        return self.attributes.select(attr_logits, soft=self.config.soft_attribute_injection, allowed=allowed)

    def keep_next_details(self) -> None:
        """Keep everything behind the next eval forward's output (for lesion reports): nnU-Net's
        predictor calls `forward`, which returns only the log-probabilities, first on the window as
        it is and then on its mirrored copies; the first call's details are the ones kept."""
        self._kept = []

    def take_kept_details(self) -> dict[str, torch.Tensor] | None:
        kept, self._kept = self._kept, None
        return kept[0] if kept else None

    def forward(self, x: torch.Tensor, targets: Optional[Sequence[Any]] = None,
                matcher: Optional[Matcher] = None):
        if not self.training:
            details = self.predict_details(x)
            if self._kept is not None and not self._kept:
                self._kept.append(details)
            return details["log_probs"]
        feats, pixel, dec = self._run_decoder(x)
        attr_logits = self.attributes.logits(dec.layers[-1].attr_embed)
        indices = None
        if targets is not None:
            if matcher is None:
                raise ValueError("training with targets needs the criterion's matcher (matcher=criterion.matcher)")
            if len(targets) != x.shape[0]:
                raise ValueError(f"{len(targets)} targets for a batch of {x.shape[0]}")
            indices = matcher(dec.layers[-1], pixel, targets)
        cmki = self.cmki(dec.tokens, self._injected_attributes(attr_logits, targets, indices))
        voxel_pairs = None
        if self.voxel_readout is not None and targets is not None:
            lesions = self._training_lesion_mask(targets, feats.seg, x) if self.voxel_readout.needs_lesion_mask else None
            voxel_pairs = self.voxel_readout.training_pairs(self.voxel_readout.features(x, pixel, lesions), targets)
        return {
            "voxel_attributes": voxel_pairs,
            "seg": feats.seg,
            "pixel_features": pixel,
            "layers": dec.layers,
            "cmki": cmki,
            "indices": indices,
            "logit_scale": self.attributes.logit_scale(),
            "value_embeddings": self.attributes.normalized_bank(),
            "value_type": self.attributes.value_type,
            "num_attribute_types": self.config.num_attribute_types,
        }

    def _training_lesion_mask(self, targets: Sequence[Any], seg: Any, x: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) bool: what the readout's lesion-only types read as the lesion in training
        (MaleniaConfig.voxel_readout_training_mask): the target lesions, or those and the inference
        mask of this very forward pass (nnU-Net's lesion mass >= LESION_MASK_MIN_MASS, no gradient)."""
        lesions = lesion_union(targets, x.shape[2:], x.device)
        if self.config.voxel_readout_training_mask == "targets_or_predicted":
            full_resolution = seg[0] if isinstance(seg, (list, tuple)) else seg
            with torch.no_grad():
                lesions = lesions | (self.disease_head.nnunet_lesion_mass(full_resolution.detach())[:, 0]
                                     >= LESION_MASK_MIN_MASS)
        return lesions

    def disease_given_readout(self, type_probs: torch.Tensor) -> torch.Tensor:
        """p(disease | readout) (B, N, num_diseases) for attribute readouts (B, N, T, V), a token's or
        a voxel's, scored against the installed table with this model's scoring settings."""
        return self.disease_head.disease_given_token(type_probs, self.attributes.value_type,
                                                     self.config.row_score_epsilon, self.config.seen_row_penalty)

    def voxel_disease(self, pixel: torch.Tensor, where: torch.Tensor,
                      readout: Optional[list] = None) -> torch.Tensor:
        """p(disease | voxel) (B, num_diseases, X, Y, Z) from the per-voxel readout of `pixel`
        (`voxel_readout.features(x, pixel_features)`), computed only where `where` (B, X, Y, Z) is
        True (elsewhere uniform: no lesion mass to share there). `readout`, a list, receives the
        readout at those voxels, p(value | type) (M, T, V) in `where`'s nonzero order: what the
        lesion reports of a voxel-named model read."""
        b, _, *spatial = pixel.shape
        n = self.disease_head.num_diseases
        out = pixel.new_full((b, *spatial, n), 1.0 / max(n, 1), dtype=torch.float32)
        if n and where.any():
            feats = pixel.permute(0, 2, 3, 4, 1)[where]  # (M, C)
            type_probs = self.attributes.type_probs(self.voxel_readout.attribute_logits(feats, self.attributes))
            out[where] = self.disease_given_readout(type_probs.unsqueeze(0))[0]
            if readout is not None:
                readout.append(type_probs)
        return out.permute(0, 4, 1, 2, 3)

    def predict_details(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything inference reports: per-token masks, attributes, disease scores, label log-probs."""
        feats, pixel, dec = self._run_decoder(x)
        last = dec.layers[-1]
        attr_logits = self.attributes.logits(last.attr_embed)
        type_probs = self.attributes.type_probs(attr_logits)  # (B, N, T, V)
        cmki: CMKIOutput = self.cmki(dec.tokens, self.attributes.select(
            attr_logits, soft=self.config.soft_attribute_injection))
        token_probs = ensemble_probs(cmki, pixel)  # (B, N, X, Y, Z)
        objectness = torch.sigmoid(last.objectness.float())
        p_disease = self.disease_given_readout(type_probs)
        scores = objectness.unsqueeze(-1) * p_disease
        seg = feats.seg[0] if isinstance(feats.seg, (list, tuple)) else feats.seg
        voxel_disease = None
        if self.config.lesion_naming in VOXEL_NAMING_RULES:  # read where the presence rule may put lesion mass
            if self.config.lesion_presence == "nnunet":
                mass = self.disease_head.nnunet_lesion_mass(seg)[:, 0]
            else:
                mass = torch.einsum("bn,bnxyz->bxyz", objectness, token_probs)
            lesions = mass >= LESION_MASK_MIN_MASS if self.voxel_readout.needs_lesion_mask else None
            read = self.voxel_readout.features(x, pixel, lesions)
            voxel_where, voxel_attributes = mass >= VOXEL_NAMING_MIN_MASS, []
            voxel_disease = self.voxel_disease(read, voxel_where, voxel_attributes)
        log_probs = self.disease_head.label_log_probs(token_probs, scores, seg, self.config.lesion_presence,
                                                     self.config.lesion_naming, voxel_disease)
        details = {"log_probs": log_probs, "token_probs": token_probs, "objectness": objectness,
                   "attribute_probs": type_probs, "disease_given_token": p_disease, "disease_scores": scores,
                   "nnunet_logits": seg}
        if voxel_disease is not None:  # what named each lesion voxel: (B, X, Y, Z), (M, T, V), (B, D, X, Y, Z)
            details["voxel_where"] = voxel_where
            details["voxel_attribute_probs"] = voxel_attributes[0] if voxel_attributes else type_probs.new_zeros(
                0, *type_probs.shape[-2:])
            details["voxel_disease"] = voxel_disease
        return details


def build_malenia_network(arch_class_name: str, arch_kwargs: dict, arch_kwargs_req_import: Sequence[str],
                          input_channels: int, num_classes: int, config: MaleniaConfig, num_values: int,
                          deep_supervision: bool = True) -> MaleniaNetwork:
    """What `build_network_architecture` of the trainer needs: plans-derived backbone + config + V.
    `num_classes` is the dataset's (nnU-Net's label manager); with `config.anomaly_head_channel` the
    head gets one channel more, so nnU-Net's predictor builds the trained shape from the plans."""
    from .backbone_adapter import build_nnunet_backbone

    head_channels = num_classes + (1 if config.anomaly_head_channel else 0)
    backbone = build_nnunet_backbone(arch_class_name, arch_kwargs, arch_kwargs_req_import, input_channels,
                                     head_channels, deep_supervision)
    return MaleniaNetwork(backbone, config, num_values, input_channels)
