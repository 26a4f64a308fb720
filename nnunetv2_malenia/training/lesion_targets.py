"""Per-patch lesion targets: instances, their disease and their attribute values.

Instances are the connected components, per lesion label, of the augmented patch's segmentation;
they are computed here from the batch rather than stored, so they always match the augmentation.
Attributes come from `lesion_attributes.json` (per case and label), falling back to the knowledge
table row of the label's disease when a case has no record.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from nnunetv2_malenia.knowledge import KnowledgeTable, LesionAttributes, Vocabulary
from nnunetv2_malenia.loss.targets import LesionTargets


def connected_lesions(segmentation: np.ndarray, lesion_labels: Sequence[int], max_instances: int) -> list[tuple[int, np.ndarray]]:
    """(label, boolean mask) per connected component of each lesion label, largest first, at most `max_instances`."""
    found: list[tuple[int, int, np.ndarray]] = []
    structure = ndimage.generate_binary_structure(segmentation.ndim, segmentation.ndim)  # 26-connectivity in 3D
    for label in lesion_labels:
        components, count = ndimage.label(segmentation == label, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        for index in np.argsort(-sizes, kind="stable"):
            found.append((int(sizes[index]), label, components == index + 1))
    found.sort(key=lambda item: -item[0])
    return [(label, mask) for _, label, mask in found[:max_instances]]


class LesionAttributeLookup:
    """Maps (case id, lesion label) to a multi-hot attribute vector over the vocabulary."""

    def __init__(self, vocabulary: Vocabulary, table: KnowledgeTable, disease_of_label: Mapping[int, str],
                 lesion_attributes: LesionAttributes | None = None):
        self.vocabulary = vocabulary
        self.disease_of_label = dict(disease_of_label)
        self.lesion_attributes = lesion_attributes
        self._fallback = {label: self._row_vector(table, disease) for label, disease in self.disease_of_label.items()}
        self._warned = False

    def _row_vector(self, table: KnowledgeTable, disease: str) -> np.ndarray:
        """The most likely value of each type in the disease's table row."""
        row = table.row(disease)
        vector = np.zeros(len(self.vocabulary.phrases), dtype=bool)
        for type_key in self.vocabulary.type_keys:
            vector[self.vocabulary.value_index(type_key, row.most_likely(type_key))] = True
        return vector

    def _record_vector(self, attributes: Mapping[str, str | list[str]]) -> np.ndarray:
        vector = np.zeros(len(self.vocabulary.phrases), dtype=bool)
        for type_key, value in attributes.items():
            for phrase in value if isinstance(value, list) else [value]:
                vector[self.vocabulary.value_index(type_key, phrase)] = True
        return vector

    def vector(self, case_id: str, label: int) -> np.ndarray:
        record = self.lesion_attributes.get(case_id, label) if self.lesion_attributes is not None else None
        if record is not None:
            return self._record_vector(record.attributes)
        if self.lesion_attributes is not None and not self._warned:
            self._warned = True
            warnings.warn(f"no lesion attributes for case {case_id!r} label {label}: using the knowledge-table row of "
                          f"{self.disease_of_label[label]!r} (warned once; later misses are silent)", stacklevel=2)
        return self._fallback[label]


def build_lesion_targets(segmentation: np.ndarray, case_id: str, lookup: LesionAttributeLookup, max_instances: int,
                         device: torch.device | str = "cpu") -> tuple[LesionTargets, list[int]]:
    """Targets for one patch (`segmentation` is [X, Y, Z] with dataset labels) and each lesion's label."""
    instances = connected_lesions(segmentation, sorted(lookup.disease_of_label), max_instances)
    n_values = len(lookup.vocabulary.phrases)
    if not instances:
        empty = LesionTargets(torch.zeros((0, *segmentation.shape), dtype=torch.bool, device=device),
                              torch.zeros((0, n_values), dtype=torch.bool, device=device))
        return empty, []
    masks = torch.from_numpy(np.stack([m for _, m in instances])).to(device)
    attributes = torch.from_numpy(np.stack([lookup.vector(case_id, label) for label, _ in instances])).to(device)
    return LesionTargets(masks, attributes), [label for label, _ in instances]
