"""Disease identification against a knowledge table and the eval-mode semantic output.

Table scoring rule (not published; see docs/network.md): attribute types are treated as
independent evidence. For token q and disease d,
    log L(q, d) = sum_t log( sum_{v in type t} table[d, v] * p_q(v | t) ),
i.e. the probability that the token's predicted attributes are drawn from the row, and
p(d | q) = softmax_d log L(q, d). Types a row leaves empty are skipped.
Semantic maps (Mask2Former's semantic inference): P_d(x) = sum_q sigmoid(obj_q) p(d|q) m_q(x).
The output is the log of one distribution over labels: lesion mass sum_d P_d (rescaled to at most
1), the remainder shared among the non-lesion labels by nnU-Net's own head.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .attribute_bank import type_one_hot
from .buffers import ResizableBuffersMixin, as_index_tensor
from .config import VOXEL_NAMING_RULES

LOG_EPS = 1e-8
# With presence "nnunet", a voxel no token covers shares its lesion mass evenly among the diseases.
PRESENCE_EPS = 1e-6


class DiseaseHead(ResizableBuffersMixin):
    """Holds the swappable knowledge table and turns token predictions into label log-probabilities."""

    _resizable_buffers = ("table_weights", "label_of_disease", "head_label_map", "num_labels")

    def __init__(self, num_values: int, num_head_classes: int, lesion_labels: Sequence[int] = ()):
        super().__init__()
        head_map = torch.arange(num_head_classes, dtype=torch.long)
        for lbl in lesion_labels:
            if 0 < lbl < num_head_classes:
                head_map[lbl] = -1
        self.register_buffer("table_weights", torch.zeros(0, num_values))
        self.register_buffer("label_of_disease", torch.zeros(0, dtype=torch.long))
        # Output label of each channel of nnU-Net's head, -1 for lesion channels (ignored in eval).
        self.register_buffer("head_label_map", head_map)
        self.register_buffer("num_labels", torch.tensor(num_head_classes, dtype=torch.long))

    @property
    def num_diseases(self) -> int:
        return self.table_weights.shape[0]

    def set_knowledge_table(self, table_weights: torch.Tensor, label_of_disease: Sequence[int] | torch.Tensor,
                            num_labels: Optional[int] = None,
                            head_label_map: Optional[Sequence[int] | torch.Tensor] = None) -> None:
        """Install a table (num_diseases, V) and the output label of each disease.

        head_label_map optionally re-maps nnU-Net's head channels to output labels (-1 = unused);
        num_labels defaults to the largest label used + 1. No weight changes.
        """
        dev = self.head_label_map.device
        table = torch.as_tensor(table_weights, dtype=torch.float32, device=dev)
        labels = as_index_tensor(label_of_disease, dev)
        if table.ndim != 2 or labels.numel() != table.shape[0]:
            raise ValueError(f"table (num_diseases, V) {tuple(table.shape)} and {labels.numel()} labels disagree")
        if (table < 0).any():
            raise ValueError("table weights must be non-negative")
        head_map = self.head_label_map if head_label_map is None else as_index_tensor(head_label_map, dev)
        if head_map.numel() != self.head_label_map.numel():
            raise ValueError(f"head_label_map needs {self.head_label_map.numel()} entries")
        if (labels <= 0).any():
            raise ValueError("diseases cannot map to label 0 (background)")
        clash = set(labels.tolist()) & set(head_map[head_map >= 0].tolist())
        if clash:
            raise ValueError(f"labels {sorted(clash)} are both a disease and a non-lesion head channel; "
                             "pass head_label_map to free them")
        used = torch.cat([labels, head_map[head_map >= 0]])
        needed = int(used.max()) + 1 if used.numel() else 1
        n = needed if num_labels is None else int(num_labels)
        if n < needed:
            raise ValueError(f"num_labels {n} too small for labels up to {needed - 1}")
        self.table_weights = table.clone()
        self.label_of_disease = labels.clone()
        self.head_label_map = head_map.clone()
        self.num_labels = torch.tensor(n, dtype=torch.long, device=dev)

    def disease_given_token(self, type_probs: torch.Tensor, value_type: torch.Tensor,
                            epsilon: float = 0.0, seen_penalty: float = 0.0) -> torch.Tensor:
        """type_probs (B, N, T, V) -> p(disease | token) (B, N, num_diseases).

        `epsilon` mixes each type's readout with a uniform one before scoring, so that one
        confidently wrong type cannot veto a row the other types support (LEARNABILITY.md 8).
        `seen_penalty` is subtracted from log L of the rows the model was trained on
        (seen_disease_channels): calibrated stacking, a prior against the seen rows."""
        num_types = type_probs.shape[-2]
        if self.num_diseases == 0:
            return type_probs.new_zeros(*type_probs.shape[:2], 0)
        member = type_one_hot(value_type, num_types)  # (V, T)
        table_t = self.table_weights.float().unsqueeze(-1) * member  # (Dz, V, T)
        mass = torch.einsum("bntv,dvt->bndt", type_probs.float(), table_t)
        values_per_type = member.sum(0).clamp_min(1)  # (T,)
        if epsilon > 0:
            uniform = table_t.sum(1) / values_per_type  # (Dz, T): the mass of a uniform readout
            mass = (1 - epsilon) * mass + epsilon * uniform
        row_has_type = table_t.sum(1) > 0  # (Dz, T)
        # A type the row leaves empty ([]: a description that does not speak of it) counts as "any
        # value, equally likely": mass 1 / (values of the type), whatever the token reads. Skipping
        # it (a factor of 1) let a row that says little beat every row that says more: measured with
        # plain-English rows for the unseen diseases, seen lesions fell from 37.9 to 17.3 DSC
        # (docs/free_text.md, "Measured: descriptions instead of rows").
        chance = values_per_type.reciprocal().log().expand_as(mass)  # (B, N, Dz, T)
        log_l = torch.where(row_has_type, mass.clamp_min(1e-6).log(), chance).sum(-1)
        if seen_penalty:
            log_l = log_l - seen_penalty * self.seen_disease_channels().to(log_l.dtype)
        return torch.softmax(log_l, dim=-1)

    def row_match(self, type_probs: torch.Tensor, value_type: torch.Tensor) -> torch.Tensor:
        """How well each row explains a token's attributes, in [0, 1] (B, N, num_diseases).

        The geometric mean over the row's attribute types of the probability the token puts on
        values the row allows (whatever their weights). Unlike p(d | q), which is
        relative to the other rows, it is low when no row fits: the open-set "unknown lesion" test.
        """
        if self.num_diseases == 0:
            return type_probs.new_zeros(*type_probs.shape[:2], 0)
        num_types = type_probs.shape[-2]
        member = type_one_hot(value_type, num_types)  # (V, T)
        allowed = (self.table_weights.float() > 0).float().unsqueeze(-1) * member  # (Dz, V, T)
        mass = torch.einsum("bntv,dvt->bndt", type_probs.float(), allowed).clamp(1e-6, 1.0)
        row_has_type = allowed.sum(1) > 0  # (Dz, T)
        log_mass = torch.where(row_has_type, mass.log(), torch.zeros_like(mass)).sum(-1)
        return torch.exp(log_mass / row_has_type.sum(-1).clamp_min(1))

    def seen_disease_channels(self) -> torch.Tensor:
        """(num_diseases,) bool: diseases the model was trained on, i.e. whose output label is one of
        nnU-Net's lesion channels (a trained disease keeps its training label, zero_shot_predictor)."""
        labels, n_head = self.label_of_disease, self.head_label_map.numel()
        inside = labels < n_head
        return inside & (self.head_label_map[labels.clamp(max=n_head - 1)] < 0)

    def seen_named_by_head(self, voxel_disease: torch.Tensor, head_logits: torch.Tensor) -> torch.Tensor:
        """voxel_disease (B, D, X, Y, Z) with the seen diseases' summed share split among them by
        nnU-Net's head (softmax over their channels alone). Why: the readout names a lesion from its
        attributes, and two seen diseases of one organ that share most values get confused (liver
        tumour read as liver cyst); the head learnt them from their labels. The readout still decides
        how much of a voxel is a disease without a label, which only it can name."""
        seen = self.seen_disease_channels()
        if not seen.any():
            return voxel_disease
        head = torch.softmax(head_logits.float()[:, self.label_of_disease[seen]], dim=1)
        out = voxel_disease.clone()
        out[:, seen] = voxel_disease[:, seen].sum(1, keepdim=True) * head
        return out

    def nnunet_lesion_mass(self, head_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, X, Y, Z): the softmax mass of nnU-Net's lesion channels (the class-agnostic prior
        of `lesion_presence="nnunet"`), float32."""
        return torch.softmax(head_logits.float(), dim=1)[:, self.head_label_map < 0].sum(1, keepdim=True)

    def label_log_probs(self, token_probs: torch.Tensor, disease_scores: torch.Tensor,
                        head_logits: torch.Tensor, presence: str = "tokens", naming: str = "sum",
                        voxel_disease: Optional[torch.Tensor] = None) -> torch.Tensor:
        """token_probs (B, N, X, Y, Z); disease_scores (B, N, Dz) = objectness x p(d|q);
        head_logits (B, C_head, X, Y, Z) -> log-probabilities (B, num_labels, X, Y, Z), float32.

        presence "tokens": a voxel's lesion mass is the tokens' sum_d P_d (clamped at 1);
        "nnunet": it is the softmax mass of nnU-Net's lesion channels (the channels the eval output
        otherwise ignores), and the tokens only share it among the diseases in proportion to P_d.
        naming "sum": the mass is shared among diseases in proportion to P_d (every token's vote);
        "token": all of it goes by p(d | q) of the one token with the largest objectness x mask at
        that voxel (Mask2Former's instance inference), so weak, diffuse tokens cannot outvote it;
        "voxel": all of it goes by `voxel_disease` (B, num_diseases, X, Y, Z), the voxel's own
        readout scored against the table (MaleniaNetwork.voxel_disease); "hybrid": as "voxel", with
        the seen diseases' share split by nnU-Net's head (seen_named_by_head).
        """
        b = token_probs.shape[0]
        spatial = token_probs.shape[2:]
        n_labels = int(self.num_labels)
        probs = token_probs.new_zeros(b, n_labels, *spatial, dtype=torch.float32)
        lesion_total = torch.zeros(b, 1, *spatial, dtype=torch.float32, device=token_probs.device)
        keep = self.head_label_map >= 0
        if self.num_diseases:
            per_disease = torch.einsum("bnd,bnxyz->bdxyz", disease_scores.float(), token_probs.float())
            token_total = per_disease.sum(1, keepdim=True)
            if naming == "token":
                objectness = disease_scores.float().sum(-1)  # p(d | q) sums to 1 over the rows
                strength = objectness[:, :, None, None, None] * token_probs.float()
                best = torch.zeros_like(strength).scatter_(1, strength.argmax(1, keepdim=True), 1.0)
                share = torch.einsum("bnd,bnxyz->bdxyz", disease_scores.float() / objectness.clamp_min(1e-8)[..., None], best)
                per_disease = share * token_total
            elif naming in VOXEL_NAMING_RULES:
                if voxel_disease is None:
                    raise ValueError(f"lesion_naming {naming!r} needs the per-voxel disease probabilities")
                named = voxel_disease.float()
                if naming == "hybrid":
                    named = self.seen_named_by_head(named, head_logits)
                per_disease = named * token_total
            if presence == "nnunet":
                lesion_total = self.nnunet_lesion_mass(head_logits)
                share = (per_disease + PRESENCE_EPS / self.num_diseases) / (token_total + PRESENCE_EPS)
                per_disease = share * lesion_total
            else:
                per_disease = per_disease / token_total.clamp_min(1.0)
                lesion_total = token_total.clamp(max=1.0)
            probs = probs.index_add(1, self.label_of_disease, per_disease)
        rest = 1.0 - lesion_total
        if keep.any():
            head = torch.softmax(head_logits.float()[:, keep], dim=1)  # over the kept channels: no underflow
            probs = probs.index_add(1, self.head_label_map[keep], rest * head)
        else:
            probs = probs.index_add(1, torch.zeros(1, dtype=torch.long, device=probs.device), rest)
        return probs.clamp_min(LOG_EPS).log()
