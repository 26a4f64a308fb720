"""nnU-Net's per-epoch logging, extended with Malenia's loss components and attribute accuracy.

nnU-Net's LocalLogger keeps one value per epoch per key and checkpoints the whole dict, so `--c`
resumes these curves too. Besides nnU-Net's own progress.png, every epoch writes
progress_malenia.png: the alignment (MP-NCE) loss, the mask loss of every decoder layer, the CMKI
segmentation loss, and attribute accuracy per type on validation patches.
"""

from __future__ import annotations

import math
from os.path import join
from typing import Sequence

from nnunetv2.training.logging.nnunet_logger import LocalLogger


class MaleniaProgressLogger(LocalLogger):
    def __init__(self, type_keys: Sequence[str], num_layers: int, verbose: bool = False):
        super().__init__(verbose)
        self.type_keys = tuple(type_keys)
        self.num_layers = num_layers

    @classmethod
    def replacing(cls, logger: LocalLogger, type_keys: Sequence[str], num_layers: int) -> "MaleniaProgressLogger":
        new = cls(type_keys, num_layers, logger.verbose)
        new.my_fantastic_logging.update(logger.my_fantastic_logging)
        return new

    def log_components(self, values: dict[str, float], epoch: int, prefix: str) -> None:
        """Log `prefix/key` for each value; a key first seen late is back-filled with NaN so every
        list keeps one entry per epoch (nnU-Net's plot derives the epoch from the shortest list)."""
        for key, value in values.items():
            name = f"{prefix}/{key}"
            history = self.my_fantastic_logging.setdefault(name, [])
            history.extend([math.nan] * (epoch - len(history)))
            self.log(name, float(value), epoch)

    def attribute_accuracy(self, epoch: int) -> dict[str, float]:
        values = {}
        for key in self.type_keys:
            history = self.my_fantastic_logging.get(f"val_accuracy/{key}", [])
            if len(history) > epoch:
                values[key] = history[epoch]
        return values

    def plot_progress_png(self, output_folder: str) -> None:
        super().plot_progress_png(output_folder)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        log = self.my_fantastic_logging
        epochs = min(len(v) for v in log.values())
        x = list(range(epochs))
        with plt.style.context("default"):  # nnU-Net's plot leaves seaborn's large fonts set
            self._plot_components(plt, log, x, epochs, output_folder)

    def _plot_components(self, plt, log: dict, x: list[int], epochs: int, output_folder: str) -> None:
        fig, axes = plt.subplots(3, 1, figsize=(12, 14), sharex=True)
        panels = [
            (axes[0], "losses", [("train/contrastive", "alignment (MP-NCE)"), ("train/seg_bce", "CMKI BCE"),
                                 ("train/seg_dice", "CMKI Dice"), ("train/objectness", "objectness"),
                                 ("train/nnunet_loss", "nnU-Net head"),
                                 ("train/lesion_region", "any-lesion (head)")]),
            (axes[1], "mask loss (BCE + Dice)", [(f"train/mask_layer{i}", "initial tokens" if i == 0 else f"block {i}")
                                                 for i in range(self.num_layers)]),
            (axes[2], "attribute accuracy (val)", [(f"val_accuracy/{k}", k) for k in self.type_keys]),
        ]
        for ax, ylabel, series in panels:
            for key, label in series:
                if key in log:
                    ax.plot(x, log[key][:epochs], label=label, linewidth=2)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        axes[2].set_ylim(0, 1.05)
        axes[2].set_xlabel("epoch")
        fig.suptitle("Malenia training progress")
        fig.tight_layout()
        fig.savefig(join(output_folder, "progress_malenia.png"))
        plt.close(fig)
