"""Hyperparameters of the Malenia head that sits on the nnU-Net backbone.

The backbone's shape comes from the nnU-Net plans; everything else the network's parameter shapes
depend on is in this dataclass, so a trainer (and nnU-Net's predictor, which rebuilds the network
from the model folder alone) can recreate it from a small JSON file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

# The section of an nnU-Net plans file (and so of a model folder's plans.json) holding the head's
# configuration, vocabulary, knowledge table and text tower identity.
PLANS_KEY = "malenia"
LESION_PRESENCE_RULES = ("tokens", "nnunet")
LESION_NAMING_RULES = ("sum", "token", "voxel", "hybrid")
# What the readout's lesion-only and mask-only types read as "the lesion" in training.
READOUT_TRAINING_MASKS = ("targets", "targets_or_predicted")
# Naming rules that read the per-voxel attribute readout.
VOXEL_NAMING_RULES = ("voxel", "hybrid")


@dataclass(frozen=True)
class MaleniaConfig:
    """Sizes and switches of the Malenia head. Defaults are documented in docs/network.md."""

    hidden_dim: int = 192
    num_tokens: int = 16
    num_blocks: int = 3
    num_heads: int = 8
    ffn_dim: int = 768
    fusion_layers: int = 3
    text_dim: int = 384
    num_attribute_types: int = 8
    dropout: float = 0.0
    temperature_init: float = 0.07
    # Subtract each attribute type's mean text embedding before the alignment (AttributeBank).
    center_text_bank: bool = False
    # Attribute embedding also from the token's own voxels: the per-voxel features averaged under
    # the token's (detached) mask, through their own head, added to the token's (transformer_decoder.py).
    mask_pooled_readout: bool = False
    # Attribute readout per voxel: a small head maps each voxel's feature into the text space, trained
    # with the alignment loss on the voxels of each lesion (network/voxel_readout.py). Needed by
    # lesion_naming "voxel".
    voxel_readout: bool = False
    # The per-voxel readout reads a small dilated CNN on the image (receptive field 15 voxels) instead
    # of the backbone's features, which know the organ (network/voxel_readout.py).
    voxel_readout_local: bool = False
    # One local CNN and readout per attribute type, each read only against its type's values, so no
    # type can use another type's features as a shortcut (network/voxel_readout.py). Needs voxel_readout_local.
    voxel_readout_per_type: bool = False
    # Types (indices into the vocabulary's types) whose per-type CNN reads only the lesion: the image
    # inside the lesion mask and the mask, nothing of the organ around it (network/voxel_readout.py).
    # The mask is the target lesions' in training and the presence rule's lesion mass >= 0.5 at
    # inference. Needs voxel_readout_per_type.
    voxel_readout_lesion_only_types: tuple[int, ...] = field(default_factory=tuple)
    # Types whose per-type CNN reads the lesion mask alone, no image at all: for a type that is the
    # outline (shape), the lesion's own CT numbers are one more way to tell the organ. Same mask as
    # above; disjoint from voxel_readout_lesion_only_types. Needs voxel_readout_per_type.
    voxel_readout_mask_only_types: tuple[int, ...] = field(default_factory=tuple)
    # The lesion-only types read the lesion's CT numbers minus their mean over the lesion, not the
    # absolute ones, which are the organ's plus an offset (network/voxel_readout.py). Needs
    # voxel_readout_lesion_only_types.
    voxel_readout_lesion_relative: bool = False
    # The lesion mask those types read in training: "targets", the target lesions' voxels;
    # "targets_or_predicted", those and every voxel where nnU-Net's head (detached) puts a lesion mass
    # of at least 0.5, the inference mask. Why: at inference the mask is predicted, and where it
    # reaches a voxel past the lesion, the organ's ring around a dark lesion reads as a thin cystic
    # wall (liver tumours and splenic lymphomas named cysts; benchmarks/probe_naming.py).
    voxel_readout_training_mask: str = "targets"
    # Scale of the gradient the token path (transformer decoder, masks, CMKI, alignment; and a
    # per-voxel readout on the backbone's features, not the local one) sends into nnU-Net's
    # backbone: 1.0 as in the paper, 0.0 detaches the backbone's features from it, so the
    # backbone learns from nnU-Net's own loss (and the any-lesion loss) alone; the forward pass is
    # the same. Why: Malenia's loss gives the backbone 12-24x nnU-Net's gradient (LEARNABILITY.md 4),
    # and with the per-voxel readout on the image and nnU-Net's head deciding presence, nothing at
    # inference reads what the tokens teach the backbone.
    token_backbone_gradient: float = 1.0
    # Table scoring: each type's readout mixed with this share of a uniform one (disease_head.py).
    row_score_epsilon: float = 0.0
    # Table scoring: subtracted from the log-likelihood of every row the model was trained on
    # (calibrated stacking, Chao et al. 2016). Why: a readout trained on the seen diseases reads their
    # values more confidently than an unseen row's, so p(d | q) leans to the seen rows; a constant
    # offset trades seen for unseen recall without retraining (docs/benchmarks.md measures the trade).
    seen_row_penalty: float = 0.0
    # Inference-time attribute injection: argmax value per type (False) or similarity-weighted (True).
    soft_attribute_injection: bool = False
    # Labels of the training dataset that are lesions: their channels of nnU-Net's own head are
    # ignored in the eval output (the token path owns them).
    lesion_labels: tuple[int, ...] = field(default_factory=tuple)
    # nnU-Net's head has one channel more than the dataset has labels: the synthetic anomalies' own
    # label (AnomalyConfig.label_in_head="own"), a lesion channel of no disease. Set by the trainer.
    anomaly_head_channel: bool = False
    # Eval rule: what decides whether a voxel is a lesion at all. "tokens": the tokens' summed
    # lesion mass (the paper's semantic inference); "nnunet": the summed lesion channels of nnU-Net's
    # own head, a class-agnostic lesion prior; either way the tokens decide which disease.
    lesion_presence: str = "tokens"
    # Eval rule: how a voxel's lesion mass is shared among diseases. "sum": in proportion to every
    # token's objectness x p(d|q) x mask; "token": by p(d|q) of the strongest token there;
    # "voxel": by the voxel's own attribute readout scored against the table (needs voxel_readout);
    # "hybrid": the readout decides how much goes to diseases the model has no label of (unseen),
    # nnU-Net's head, trained on their labels, which of the seen diseases gets the rest.
    lesion_naming: str = "sum"

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads {self.num_heads}")
        for name in ("hidden_dim", "num_tokens", "num_blocks", "num_heads", "ffn_dim", "text_dim",
                     "num_attribute_types"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fusion_layers < 0:
            raise ValueError(f"fusion_layers must be >= 0, got {self.fusion_layers}")
        if not self.seen_row_penalty >= 0:  # NaN too
            raise ValueError(f"seen_row_penalty must be >= 0 (a log-likelihood offset against the seen rows), "
                             f"got {self.seen_row_penalty}")
        if not 0.0 <= self.token_backbone_gradient <= 1.0:  # NaN too
            raise ValueError(f"token_backbone_gradient must be in [0, 1] (0 detaches the backbone from the token "
                             f"path), got {self.token_backbone_gradient}")
        if not 0.0 <= self.row_score_epsilon < 1.0:
            raise ValueError(f"row_score_epsilon must be in [0, 1), got {self.row_score_epsilon}")
        if self.lesion_naming not in LESION_NAMING_RULES:
            raise ValueError(f"lesion_naming must be one of {', '.join(LESION_NAMING_RULES)}, got {self.lesion_naming!r}")
        if self.voxel_readout_local and not self.voxel_readout:
            raise ValueError("voxel_readout_local needs voxel_readout=True")
        if self.voxel_readout_per_type and not self.voxel_readout_local:
            raise ValueError("voxel_readout_per_type needs voxel_readout_local=True")
        for name in ("voxel_readout_lesion_only_types", "voxel_readout_mask_only_types"):
            types = tuple(int(t) for t in getattr(self, name))
            if types and not self.voxel_readout_per_type:
                raise ValueError(f"{name} needs voxel_readout_per_type=True")
            bad = [t for t in types if not 0 <= t < self.num_attribute_types]
            if bad:
                raise ValueError(f"{name}: {bad[0]} is not a type index (0..{self.num_attribute_types - 1})")
            object.__setattr__(self, name, tuple(sorted(set(types))))
        both = set(self.voxel_readout_lesion_only_types) & set(self.voxel_readout_mask_only_types)
        if both:
            raise ValueError(f"type {min(both)} is in both voxel_readout_lesion_only_types and "
                             "voxel_readout_mask_only_types: a type reads the lesion or the mask, choose one")
        if self.voxel_readout_lesion_relative and not self.voxel_readout_lesion_only_types:
            raise ValueError("voxel_readout_lesion_relative needs voxel_readout_lesion_only_types: only the "
                             "lesion-only types read the lesion's CT numbers")
        if self.voxel_readout_training_mask not in READOUT_TRAINING_MASKS:
            raise ValueError(f"voxel_readout_training_mask must be one of {', '.join(READOUT_TRAINING_MASKS)}, "
                             f"got {self.voxel_readout_training_mask!r}")
        if self.lesion_naming in VOXEL_NAMING_RULES and not self.voxel_readout:
            raise ValueError(f"lesion_naming {self.lesion_naming!r} needs voxel_readout=True (a model trained with the "
                             "per-voxel readout)")
        if self.lesion_presence not in LESION_PRESENCE_RULES:
            raise ValueError(f"lesion_presence must be one of {', '.join(LESION_PRESENCE_RULES)}, got {self.lesion_presence!r}")
        object.__setattr__(self, "lesion_labels", tuple(int(i) for i in self.lesion_labels))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lesion_labels"] = list(self.lesion_labels)
        d["voxel_readout_lesion_only_types"] = list(self.voxel_readout_lesion_only_types)
        d["voxel_readout_mask_only_types"] = list(self.voxel_readout_mask_only_types)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MaleniaConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MaleniaConfig keys: {sorted(unknown)}")
        return cls(**dict(d))
