"""The Clinical Knowledge Table: which attribute values each disease shows, with weights.

A row allows several values per attribute type (e.g. a kidney tumour is left or right, mostly
irregular). A type written as `[]` is unspecified: it contributes nothing to the row's score (a
free-text description that does not speak of the type; see docs/free_text.md). Weights are relative frequencies; they are normalised per type on load, so a row can
be written as one phrase, a list (equal weights) or a phrase -> weight mapping.
Zero-shot segmentation of a new disease is adding a row here: nothing is retrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_malenia.errors import MaleniaError, TableError
from nnunetv2_malenia.knowledge.builtin import DEFAULT_KNOWLEDGE_TABLE, resolve_table
from nnunetv2_malenia.knowledge.vocabulary import AttributeType, Vocabulary, load_vocabulary
from nnunetv2_malenia.knowledge.yaml_io import check_known_keys, read_yaml_document, require

KNOWLEDGE_TABLE_KIND = "knowledge_table"
DISEASE_NAME_TYPE = "disease"


@dataclass(frozen=True)
class DiseaseRow:
    name: str
    source: str
    # attribute type key -> value phrase -> weight (normalised to sum 1 per type)
    attributes: dict[str, dict[str, float]]
    description: str = ""

    def most_likely(self, type_key: str) -> str:
        weights = self.attributes[type_key]
        if not weights:
            raise MaleniaError(f"knowledge-table row {self.name!r} leaves {type_key} unspecified ([]); a disease "
                               "a model is trained on needs a value for every type")
        return max(weights, key=weights.get)

    def unspecified_types(self) -> tuple[str, ...]:
        """Types the row leaves empty (`[]`): scored as chance in table scoring (DiseaseHead: any
        value of the type, equally likely)."""
        return tuple(k for k, w in self.attributes.items() if not w)


@dataclass(frozen=True)
class KnowledgeTable:
    name: str
    vocabulary: Vocabulary
    diseases: tuple[DiseaseRow, ...]
    source: str = "<memory>"

    @property
    def disease_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.diseases)

    def row(self, disease: str) -> DiseaseRow:
        for d in self.diseases:
            if d.name == disease:
                return d
        raise KeyError(f"disease {disease!r} is not in knowledge table {self.name!r} ({self.source}); "
                       f"rows: {', '.join(self.disease_names)}")

    def weight_matrix(self) -> np.ndarray:
        """[num_diseases, num_values] float32, in the vocabulary's value order; each type sums to 1."""
        matrix = np.zeros((len(self.diseases), len(self.vocabulary.phrases)), dtype=np.float32)
        for i, disease in enumerate(self.diseases):
            for type_key, weights in disease.attributes.items():
                for phrase, w in weights.items():
                    matrix[i, self.vocabulary.value_index(type_key, phrase)] = w
        return matrix

    def to_dict(self) -> dict:
        """A plain, JSON-able form (stored in checkpoints beside the vocabulary)."""
        return {
            "kind": KNOWLEDGE_TABLE_KIND,
            "schema_version": 1,
            "name": self.name,
            "vocabulary": self.vocabulary.name,
            "diseases": [
                {"name": d.name, "source": d.source, **({"description": d.description} if d.description else {}),
                 "attributes": {k: dict(v) for k, v in d.attributes.items()}}
                for d in self.diseases
            ],
        }


def disease_name_table(table: KnowledgeTable) -> KnowledgeTable:
    """The table as a name-only ablation sees it: one attribute type, "disease", whose values are the
    disease names (each row: its own name). Text conditioning of Universal Model / ZePT."""
    names = Vocabulary(f"{table.vocabulary.name}:disease-names",
                       (AttributeType(DISEASE_NAME_TYPE, "Disease", table.disease_names),))
    rows = tuple(DiseaseRow(d, "the disease name", {DISEASE_NAME_TYPE: {d: 1.0}}) for d in table.disease_names)
    return KnowledgeTable(f"{table.name}:disease-names", names, rows, table.source)


def knowledge_table_from_dict(data: dict, vocabulary: Vocabulary, source: str | Path = "<memory>") -> KnowledgeTable:
    """Validate a parsed table against a vocabulary; errors name file, disease row and field."""
    file = Path(source)
    check_known_keys(data, {"kind", "schema_version", "name", "description", "vocabulary", "diseases"}, file)
    name = require(data, "name", str, file)
    raw_rows = require(data, "diseases", list, file)
    if not raw_rows:
        raise TableError(file, "a knowledge table needs at least one disease row", field="diseases")
    rows: list[DiseaseRow] = []
    for position, raw in enumerate(raw_rows, start=1):
        label = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else f"#{position}"
        disease = require(raw, "name", str, file, row=label).strip()
        check_known_keys(raw, {"name", "source", "description", "attributes"}, file, row=disease)
        if disease in (r.name for r in rows):
            raise TableError(file, f"disease {disease!r} is listed twice", row=disease, field="name")
        source_note = require(raw, "source", str, file, row=disease)
        raw_attrs = require(raw, "attributes", dict, file, row=disease)
        attributes = _parse_attributes(raw_attrs, vocabulary, file, disease)
        rows.append(DiseaseRow(disease, source_note, attributes, raw.get("description", "") or ""))
    return KnowledgeTable(name, vocabulary, tuple(rows), str(source))


def _parse_attributes(raw_attrs: dict, vocabulary: Vocabulary, file: Path, disease: str) -> dict[str, dict[str, float]]:
    for key in raw_attrs:
        if key not in vocabulary.type_keys:
            raise TableError(file, f"unknown attribute type {key!r}; known: {', '.join(vocabulary.type_keys)}",
                             row=disease, field=str(key))
    attributes: dict[str, dict[str, float]] = {}
    for attr_type in vocabulary.types:
        raw = raw_attrs.get(attr_type.key)
        if raw is None or raw == "":
            raise TableError(file, f"no value given; give at least one of: {', '.join(attr_type.values)} "
                             "(or [] to leave the type unspecified: scored as chance)",
                             row=disease, field=attr_type.key)
        if raw == [] or raw == {}:  # explicitly unspecified (e.g. a free-text description says nothing of it)
            attributes[attr_type.key] = {}
            continue
        if isinstance(raw, str):
            raw = {raw: 1.0}
        elif isinstance(raw, list):
            raw = {phrase: 1.0 for phrase in raw}
        elif not isinstance(raw, dict):
            raise TableError(file, f"expected a phrase, a list of phrases or a phrase: weight mapping, found {type(raw).__name__}",
                             row=disease, field=attr_type.key)
        weights: dict[str, float] = {}
        for phrase, weight in raw.items():
            if not isinstance(phrase, str) or phrase not in attr_type.values:
                raise TableError(file, f"unknown value {phrase!r}; allowed: {', '.join(attr_type.values)}",
                                 row=disease, field=attr_type.key)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise TableError(file, f"weight of {phrase!r} must be a positive number, found {weight!r}",
                                 row=disease, field=attr_type.key)
            weights[phrase] = float(weight)
        total = sum(weights.values())
        attributes[attr_type.key] = {p: w / total for p, w in weights.items()}
    if not any(attributes.values()):
        raise TableError(file, "every attribute type is [] (unspecified); give a value for at least one",
                         row=disease, field="attributes")
    return attributes


def load_knowledge_table(name_or_path: str | Path = DEFAULT_KNOWLEDGE_TABLE,
                         vocabulary: Vocabulary | None = None) -> KnowledgeTable:
    """Load and validate a knowledge table; its `vocabulary:` field names the vocabulary file
    (relative to the table, or a shipped one) unless one is passed in."""
    path = resolve_table(name_or_path)
    data = read_yaml_document(path, KNOWLEDGE_TABLE_KIND)
    if vocabulary is None:
        vocab_ref = require(data, "vocabulary", str, path)
        sibling = path.parent / vocab_ref
        vocabulary = load_vocabulary(sibling if sibling.is_file() else vocab_ref)
    return knowledge_table_from_dict(data, vocabulary, path)
