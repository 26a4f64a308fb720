"""Re-exports Malenia's trainer classes for nnU-Net's `nnUNet_extTrainer` lookup."""

from nnunetv2_malenia.training.nnUNetTrainerMalenia import (
    nnUNetTrainerMalenia,
    nnUNetTrainerMalenia_5epochs,
    nnUNetTrainerMalenia_50epochs,
    nnUNetTrainerMalenia_250epochs,
    nnUNetTrainerMalenia_demo,
    nnUNetTrainerMalenia_nameonly,
    nnUNetTrainerMalenia_smoke,
)

__all__ = [
    "nnUNetTrainerMalenia",
    "nnUNetTrainerMalenia_5epochs",
    "nnUNetTrainerMalenia_50epochs",
    "nnUNetTrainerMalenia_250epochs",
    "nnUNetTrainerMalenia_demo",
    "nnUNetTrainerMalenia_nameonly",
    "nnUNetTrainerMalenia_smoke",
]
