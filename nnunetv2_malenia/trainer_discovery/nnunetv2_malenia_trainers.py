"""Re-exports Malenia's trainer classes for nnU-Net's `nnUNet_extTrainer` lookup."""

from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia

__all__ = ["nnUNetTrainerMalenia"]
