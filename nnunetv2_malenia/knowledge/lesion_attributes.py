"""Per-dataset lesion attributes: `lesion_attributes.json` beside an nnU-Net raw dataset.

Layout (schema_version 1):
    {"schema_version": 1, "vocabulary": "malenia-ct", "source": "...",
     "cases": {CASE_ID: {LABEL: {"disease": ..., "attributes": {TYPE: PHRASE or [PHRASES]},
                                  "report": ...}}}}
Case ids are nnU-Net's (file name without channel suffix and extension); labels are the integer
label values of the segmentation, written as strings because JSON keys are strings. The trainer
reads this; it must not live in the preprocessed folder, where nnU-Net would take it for a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.errors import TableError
from nnunetv2_malenia.knowledge.vocabulary import Vocabulary

LESION_ATTRIBUTES_FILENAME = "lesion_attributes.json"


@dataclass
class LesionRecord:
    disease: str
    attributes: dict[str, str | list[str]]
    report: str = ""
    source: str = ""

    def to_dict(self) -> dict:
        out: dict = {"disease": self.disease, "attributes": self.attributes}
        if self.report:
            out["report"] = self.report
        if self.source:
            out["source"] = self.source
        return out


@dataclass
class LesionAttributes:
    vocabulary_name: str
    cases: dict[str, dict[int, LesionRecord]] = field(default_factory=dict)
    source: str = ""

    def get(self, case_id: str, label: int) -> LesionRecord | None:
        return self.cases.get(case_id, {}).get(int(label))

    def add(self, case_id: str, label: int, record: LesionRecord) -> None:
        self.cases.setdefault(case_id, {})[int(label)] = record

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "vocabulary": self.vocabulary_name,
            **({"source": self.source} if self.source else {}),
            "cases": {
                case: {str(label): rec.to_dict() for label, rec in sorted(labels.items())}
                for case, labels in sorted(self.cases.items())
            },
        }

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())


def validate_record(attributes: dict, vocabulary: Vocabulary, file: Path | str, row: str) -> dict[str, str | list[str]]:
    """Check one lesion's attribute values against the vocabulary (every type, known values)."""
    for key in attributes:
        if key not in vocabulary.type_keys:
            raise TableError(file, f"unknown attribute type {key!r}; known: {', '.join(vocabulary.type_keys)}", row=row, field=key)
    clean: dict[str, str | list[str]] = {}
    for attr_type in vocabulary.types:
        value = attributes.get(attr_type.key)
        if value is None or value == [] or value == "":
            raise TableError(file, "no value given", row=row, field=attr_type.key)
        phrases = value if isinstance(value, list) else [value]
        if len(phrases) > 1 and not attr_type.multi_valued:
            raise TableError(file, f"takes one value, found {len(phrases)}", row=row, field=attr_type.key)
        for phrase in phrases:
            if phrase not in attr_type.values:
                raise TableError(file, f"unknown value {phrase!r}; allowed: {', '.join(attr_type.values)}", row=row, field=attr_type.key)
        if attr_type.none_value in phrases and len(phrases) > 1:
            raise TableError(file, f"{attr_type.none_value!r} cannot be combined with other values", row=row, field=attr_type.key)
        clean[attr_type.key] = list(phrases) if attr_type.multi_valued else phrases[0]
    return clean


def load_lesion_attributes(path: str | Path, vocabulary: Vocabulary,
                           problems: list[TableError] | None = None) -> LesionAttributes:
    """Read and validate a lesion_attributes.json against the vocabulary it was written with.

    The first bad record raises TableError. With a `problems` list, a bad record is appended to it
    and left out instead, so a checker (`malenia verify-dataset`) can report every one at once; a
    file that is not a lesion-attributes document at all still raises.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TableError(path, "no such file") from None
    except json.JSONDecodeError as e:
        raise TableError(path, f"malformed JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("cases"), dict):
        raise TableError(path, "expected {'schema_version': 1, 'vocabulary': ..., 'cases': {...}}")
    if data.get("vocabulary") != vocabulary.name:
        raise TableError(path, f"written for vocabulary {data.get('vocabulary')!r}, but {vocabulary.name!r} is in use",
                         field="vocabulary")
    result = LesionAttributes(vocabulary.name, source=data.get("source", ""))
    for case_id, labels in data["cases"].items():
        if not isinstance(labels, dict):
            _report(TableError(path, "expected a mapping label -> lesion record", row=case_id), problems)
            continue
        for label, rec in labels.items():
            row = f"{case_id} label {label}"
            try:
                if not str(label).isdigit():
                    raise TableError(path, f"label must be a non-negative integer, found {label!r}", row=row)
                if not isinstance(rec, dict) or not isinstance(rec.get("disease"), str) or not isinstance(rec.get("attributes"), dict):
                    raise TableError(path, "expected {'disease': str, 'attributes': {...}}", row=row)
                attrs = validate_record(rec["attributes"], vocabulary, path, row)
            except TableError as e:
                _report(e, problems)
                continue
            result.add(case_id, int(label), LesionRecord(rec["disease"], attrs, rec.get("report", ""), rec.get("source", "")))
    return result


def _report(error: TableError, problems: list[TableError] | None) -> None:
    """Raise `error`, or collect it when the caller asked for every problem."""
    if problems is None:
        raise error
    problems.append(error)
