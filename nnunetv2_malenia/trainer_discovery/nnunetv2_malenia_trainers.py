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
from nnunetv2_malenia.training.partial_labels import nnUNetTrainer_partial
from nnunetv2_malenia.training.cpu_recipe import (
    nnUNetTrainer_cpu,
    nnUNetTrainerMalenia_cpu,
    nnUNetTrainerMalenia_cpu_demo,
    nnUNetTrainerMalenia_nameonly_cpu,
)
from nnunetv2_malenia.training.zero_shot_recipe import (
    nnUNetTrainerMalenia_cpu_zeroshot,
    nnUNetTrainerMalenia_cpu_zeroshot_demo,
    nnUNetTrainerMalenia_nameonly_cpu_zeroshot,
    nnUNetTrainerMalenia_zeroshot,
)

__all__ = [
    "nnUNetTrainerMalenia",
    "nnUNetTrainerMalenia_5epochs",
    "nnUNetTrainerMalenia_50epochs",
    "nnUNetTrainerMalenia_250epochs",
    "nnUNetTrainerMalenia_demo",
    "nnUNetTrainerMalenia_nameonly",
    "nnUNetTrainerMalenia_smoke",
    "nnUNetTrainer_partial",
    "nnUNetTrainer_cpu",
    "nnUNetTrainerMalenia_cpu",
    "nnUNetTrainerMalenia_cpu_demo",
    "nnUNetTrainerMalenia_nameonly_cpu",
    "nnUNetTrainerMalenia_zeroshot",
    "nnUNetTrainerMalenia_cpu_zeroshot",
    "nnUNetTrainerMalenia_cpu_zeroshot_demo",
    "nnUNetTrainerMalenia_nameonly_cpu_zeroshot",
]
