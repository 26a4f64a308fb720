"""Per-sample lesion targets, as the trainer builds them from a patch's connected components."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LesionTargets:
    """masks: bool (n_lesions, X, Y, Z); attribute_targets: bool multi-hot (n_lesions, V)."""

    masks: torch.Tensor
    attribute_targets: torch.Tensor

    def __post_init__(self) -> None:
        if self.masks.ndim != 4:
            raise ValueError(f"masks must be (n, X, Y, Z), got {tuple(self.masks.shape)}")
        if self.attribute_targets.ndim != 2 or self.attribute_targets.shape[0] != self.masks.shape[0]:
            raise ValueError(f"attribute_targets must be (n, V) with n={self.masks.shape[0]}, "
                             f"got {tuple(self.attribute_targets.shape)}")

    @property
    def num_lesions(self) -> int:
        return self.masks.shape[0]

    def to(self, device: torch.device | str) -> "LesionTargets":
        return LesionTargets(self.masks.to(device), self.attribute_targets.to(device))
