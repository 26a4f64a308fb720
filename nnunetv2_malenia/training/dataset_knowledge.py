"""What the trainer knows about a dataset's lesions: which labels are lesions, of which disease,
with which attributes, described by which vocabulary and table.

Declared in dataset.json under "malenia" (what `malenia synth` writes):
    "malenia": {"lesion_labels": [10, 11], "knowledge_table": "knowledge_table.yaml",
                "lesion_attributes": "lesion_attributes.json"}
paths relative to the raw dataset folder. Without that entry, every label whose name matches a
knowledge-table row (case and "_" ignored, e.g. "kidney_tumor") is a lesion label, and the table
is the shipped clinical one. `lesion_attributes.json` beside the raw dataset is used if present.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge import (
    LESION_ATTRIBUTES_FILENAME,
    KnowledgeTable,
    LesionAttributes,
    load_knowledge_table,
    load_lesion_attributes,
)
from nnunetv2_malenia.knowledge.builtin import DEFAULT_KNOWLEDGE_TABLE


def normalise_name(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


@dataclass
class DatasetKnowledge:
    table: KnowledgeTable
    disease_of_label: dict[int, str]  # lesion label -> knowledge-table row
    lesion_attributes: LesionAttributes | None

    @property
    def vocabulary(self):
        return self.table.vocabulary

    @property
    def lesion_labels(self) -> list[int]:
        return sorted(self.disease_of_label)


def dataset_knowledge(dataset_json: dict, raw_dataset_folder: str | Path | None) -> DatasetKnowledge:
    """Resolve the lesion labels and their knowledge; errors name the label or file to fix."""
    declared = dataset_json.get("malenia") or {}
    folder = Path(raw_dataset_folder) if raw_dataset_folder is not None else None
    table_ref = declared.get("knowledge_table", DEFAULT_KNOWLEDGE_TABLE)
    table_path = folder / table_ref if folder is not None and (folder / table_ref).is_file() else table_ref
    table = load_knowledge_table(table_path)
    rows = {normalise_name(name): name for name in table.disease_names}
    label_names = {int(value): name for name, value in dataset_json["labels"].items() if not isinstance(value, list)}

    if "lesion_labels" in declared:
        disease_of_label = {}
        for label in declared["lesion_labels"]:
            name = label_names.get(int(label))
            if name is None:
                raise MaleniaError(f"dataset.json: malenia.lesion_labels lists {label}, which is not a label of "
                                   f"dataset.json 'labels'")
            if normalise_name(name) not in rows:
                raise MaleniaError(f"dataset.json: lesion label {name!r} ({label}) matches no row of knowledge table "
                                   f"{table.source}; rename the label or add a row (rows: {', '.join(table.disease_names)})")
            disease_of_label[int(label)] = rows[normalise_name(name)]
    else:
        disease_of_label = {label: rows[normalise_name(name)] for label, name in label_names.items()
                            if normalise_name(name) in rows}
    if not disease_of_label:
        raise MaleniaError(f"dataset.json: no label names a disease of knowledge table {table.source}; name lesion "
                           f"labels after table rows ({', '.join(table.disease_names)}) or declare "
                           f"\"malenia\": {{\"lesion_labels\": [...]}}")

    lesions = None
    attributes_ref = declared.get("lesion_attributes", LESION_ATTRIBUTES_FILENAME)
    if folder is not None and (folder / attributes_ref).is_file():
        lesions = load_lesion_attributes(folder / attributes_ref, table.vocabulary)
    else:
        warnings.warn(f"no {attributes_ref} beside the raw dataset ({folder}): every lesion gets the most likely "
                      "values of its disease's knowledge-table row", stacklevel=2)
    return DatasetKnowledge(table, disease_of_label, lesions)


def raw_dataset_folder(dataset_name: str) -> Path | None:
    raw = os.environ.get("nnUNet_raw")
    return Path(raw) / dataset_name if raw else None
