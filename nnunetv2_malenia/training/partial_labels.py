"""Training on partially labelled data: a mixin for nnU-Net trainers.

A dataset from `malenia merge-datasets` has `annotated_labels.json` beside its dataset.json: per
case, the labels its source dataset annotates. `PartialLabels` reads it and trains nnU-Net's head
with the marginal Dice+CE (loss/marginal.py): per case of the batch (`batch['keys']`), the classes
its source does not annotate are merged into background. Data loading, augmentation and the loop
are nnU-Net's; without the file the trainer is the one it is mixed into, unchanged.

    class nnUNetTrainer_partial(PartialLabels, nnUNetTrainer): ...

nnUNetTrainerMalenia mixes it in too. Its token path needs nothing more: a merged case's label map
holds only its source's lesion labels, so every lesion target is an annotated one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_malenia.datasets.annotated_labels import ANNOTATED_LABELS_FILENAME, AnnotatedLabels, find_annotated_labels
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.loss.marginal import PartialLabelLoss
from nnunetv2_malenia.training.dataset_knowledge import raw_dataset_folder


class PartialLabels:
    """Mixin: marginal loss for the cases whose source leaves labels unannotated."""

    annotated_labels: AnnotatedLabels | None = None

    def _load_annotated_labels(self) -> AnnotatedLabels | None:
        folder = raw_dataset_folder(self.plans_manager.dataset_name)
        labels = range(1, self.label_manager.num_segmentation_heads)
        return find_annotated_labels(folder, labels)

    def _build_loss(self):
        loss = super()._build_loss()
        self.annotated_labels = self._load_annotated_labels()
        if self.annotated_labels is None:
            return loss
        if self.label_manager.has_regions:
            raise MaleniaError(f"{self.annotated_labels.path}: partial labels need plain integer labels; "
                               "this dataset trains on regions (dataset.json labels with lists)")
        partial = len(self.annotated_labels.partial_cases())
        self.print_to_log_file(f"partial labels ({ANNOTATED_LABELS_FILENAME}): marginal Dice+CE, {partial} of "
                               f"{len(self.annotated_labels.cases)} cases leave labels unannotated")
        return PartialLabelLoss(loss)

    def on_train_start(self):
        super().on_train_start()  # initialises, which builds the loss and reads the file
        if self.annotated_labels is not None:
            train, val = self.do_split()
            unlisted = sorted((set(train) | set(val)) - set(self.annotated_labels.cases))
            if unlisted:
                self.print_to_log_file(f"{len(unlisted)} cases (e.g. {unlisted[0]}) are not in "
                                       f"{ANNOTATED_LABELS_FILENAME}: they count as annotating every label")

    @contextmanager
    def annotation_of(self, batch: dict) -> Iterator[None]:
        """Within the block, `self.loss` knows which labels each case of `batch` annotates."""
        loss = self.loss
        if not isinstance(loss, PartialLabelLoss) or self.annotated_labels is None:
            yield
            return
        mask = self.annotated_labels.mask([str(k) for k in batch["keys"]], self.label_manager.num_segmentation_heads)
        if getattr(self, "anomaly_label", None) is not None:  # the pasted anomalies' own channel: always labelled
            mask = np.concatenate([mask, np.ones((len(mask), 1), dtype=bool)], axis=1)
        loss.annotated = torch.from_numpy(mask).to(self.device)
        try:
            yield
        finally:
            loss.annotated = None

    def train_step(self, batch: dict) -> dict:
        with self.annotation_of(batch):
            return super().train_step(batch)

    def validation_step(self, batch: dict) -> dict:
        with self.annotation_of(batch):
            return super().validation_step(batch)


class nnUNetTrainer_partial(PartialLabels, nnUNetTrainer):
    """Plain nnU-Net on a merged, partially labelled dataset: `-tr nnUNetTrainer_partial`."""
