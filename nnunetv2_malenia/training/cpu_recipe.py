"""The CPU tier's training recipe: one short schedule and recipe for every model compared on it.

nnU-Net's defaults (SGD 1e-2 with momentum 0.99, 1000 epochs x 250 iterations, mirroring, the
full augmentation) are tuned for days on a GPU. On 2 CPU cores a comparison of four models must
fit in an afternoon, about 1700 steps each, and there nnU-Net's SGD barely moves a narrow network
(docs/benchmarks.md measures it on the tier, nnUNetTrainer_cpu_nnunetrecipe). The
recipe below changes only what a short budget needs, and every compared trainer uses it alike:

- AdamW, learning rate 2e-3, nnU-Net's weight decay (3e-5), nnU-Net's poly decay;
- no mirroring, neither in training nor at test time (the phantoms have a left and a right:
  mirroring would swap left and right kidney labels);
- no Gaussian-noise augmentation (the phantoms carry CT noise of their own); the rest of
  nnU-Net's augmentation stays as it is;
- the schedule `cpu_schedule` (epochs x iterations), calibrated on the tier (docs/benchmarks.md).

`CpuRecipe` is a mixin: `class nnUNetTrainer_cpu(CpuRecipe, nnUNetTrainer)`. The network and
everything else come from the trainer it is mixed into.
"""

from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia, nnUNetTrainerMalenia_nameonly


def without_noise(transforms: ComposeTransforms) -> ComposeTransforms:
    """nnU-Net's training transforms minus Gaussian-noise augmentation (wrapped or not)."""
    def is_noise(t) -> bool:
        inner = t.transform if isinstance(t, RandomTransform) else t
        return isinstance(inner, GaussianNoiseTransform)

    kept = [t for t in transforms.transforms if not is_noise(t)]
    return ComposeTransforms(kept)


class CpuRecipe:
    """Mixin for nnU-Net trainers: the CPU tier's schedule, optimiser and augmentation."""

    cpu_schedule: dict[str, int] = {"num_epochs": 34, "num_iterations_per_epoch": 50,
                                    "num_val_iterations_per_epoch": 3}
    cpu_lr = 2e-3

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for name, value in self.cpu_schedule.items():
            setattr(self, name, value)
        self.initial_lr = self.cpu_lr

    def configure_optimizers(self):
        super().configure_optimizers()   # a Malenia trainer installs its vocabulary and table here
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None

    @staticmethod
    def get_training_transforms(*args, **kwargs):
        return without_noise(nnUNetTrainer.get_training_transforms(*args, **kwargs))


class nnUNetTrainer_cpu(CpuRecipe, nnUNetTrainer):
    """nnU-Net's own trainer on the CPU recipe: the reference every Malenia `_cpu` trainer is
    compared with (`nnUNetv2_train ID 3d_cpu FOLD -tr nnUNetTrainer_cpu`)."""


# The Malenia head sized for the CPU tier's 48^3 patches and 8-16-32-64 backbone: a patch holds
# 2-6 lesions, so 8 tokens; a 128-wide head keeps the head's share of a step near the backbone's.
CPU_HEAD = {"hidden_dim": 128, "num_tokens": 8, "num_heads": 4, "ffn_dim": 512}


class nnUNetTrainerMalenia_cpu(CpuRecipe, nnUNetTrainerMalenia):
    """Malenia on the CPU recipe (`nnUNetv2_train ID 3d_cpu FOLD -tr nnUNetTrainerMalenia_cpu`)."""

    malenia_config = CPU_HEAD


class nnUNetTrainerMalenia_nameonly_cpu(CpuRecipe, nnUNetTrainerMalenia_nameonly):
    """The name-only ablation on the CPU recipe."""

    malenia_config = CPU_HEAD


class nnUNetTrainerMalenia_cpu_demo(nnUNetTrainerMalenia_cpu):
    """`malenia demo`'s model: the CPU recipe on a schedule that fits the demo's 30 minutes."""

    cpu_schedule = {"num_epochs": 30, "num_iterations_per_epoch": 40, "num_val_iterations_per_epoch": 2}
