"""nnUNetTrainerMalenia: nnU-Net's trainer with the Malenia head.

Foundation stage: the class exists so that nnU-Net's own commands can find it through
`nnUNet_extTrainer` (see `nnunetv2_malenia.trainer_discovery`); the Malenia network, losses and
targets are wired in by the training issue, overriding only the hooks they need.
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainerMalenia(nnUNetTrainer):
    """nnU-Net's trainer; the Malenia hooks are overridden in the training issue."""
