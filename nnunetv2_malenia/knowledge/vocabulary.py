"""The attribute vocabulary: 8 attribute types, each a closed list of value phrases.

Everything downstream indexes values by their position in `Vocabulary.phrases` (all types
concatenated in file order), so the text bank, the network's value embeddings and the knowledge
table matrix line up without any further mapping.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

from nnunetv2_malenia.errors import TableError
from nnunetv2_malenia.knowledge.builtin import DEFAULT_VOCABULARY, resolve_table
from nnunetv2_malenia.knowledge.yaml_io import check_known_keys, read_yaml_document, require

ATTRIBUTE_TYPE_KEYS = (
    "location",
    "shape",
    "density",
    "density_variation",
    "enhancement_status",
    "surface_characteristics",
    "relationship",
    "specific_features",
)
VOCABULARY_KIND = "attribute_vocabulary"


@dataclass(frozen=True)
class AttributeType:
    key: str
    name: str
    values: tuple[str, ...]
    multi_valued: bool = False
    none_value: str | None = None
    # sheet group -> workbook code -> value phrase ("default" applies to groups without an entry)
    workbook_codes: dict[str, dict[int, str]] = field(default_factory=dict)

    def phrase_for_code(self, group: str, code: int) -> str | None:
        for source in (group, "default"):
            if code in self.workbook_codes.get(source, {}):
                return self.workbook_codes[source][code]
        return None

    def codes_for_group(self, group: str) -> dict[int, str]:
        return {**self.workbook_codes.get("default", {}), **self.workbook_codes.get(group, {})}


@dataclass(frozen=True)
class Vocabulary:
    name: str
    types: tuple[AttributeType, ...]
    source: str = "<memory>"

    @cached_property
    def phrases(self) -> tuple[str, ...]:
        """Every value phrase, types concatenated in order; the index space of all value tensors."""
        return tuple(v for t in self.types for v in t.values)

    @cached_property
    def value_type(self) -> tuple[int, ...]:
        """The type index of each entry of `phrases`."""
        return tuple(i for i, t in enumerate(self.types) for _ in t.values)

    @cached_property
    def _index(self) -> dict[tuple[str, str], int]:
        return {(t.key, v): i for i, (t, v) in enumerate((t, v) for t in self.types for v in t.values)}

    @property
    def type_keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.types)

    def type(self, key: str) -> AttributeType:
        for t in self.types:
            if t.key == key:
                return t
        raise KeyError(f"unknown attribute type {key!r}; known: {', '.join(self.type_keys)}")

    def value_index(self, type_key: str, phrase: str) -> int:
        return self._index[(type_key, phrase)]

    def has_value(self, type_key: str, phrase: str) -> bool:
        return (type_key, phrase) in self._index

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of types and phrases: checkpoints and embedding banks record it."""
        content = [[t.key, list(t.values), t.multi_valued] for t in self.types]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """A plain, JSON-able form (stored in checkpoints so inference needs no table file)."""
        return {
            "kind": VOCABULARY_KIND,
            "schema_version": 1,
            "name": self.name,
            "attribute_types": [
                {
                    "key": t.key,
                    "name": t.name,
                    **({"multi_valued": True} if t.multi_valued else {}),
                    **({"none_value": t.none_value} if t.none_value else {}),
                    "values": [
                        {"phrase": v, **self._codes_of(t, v)} for v in t.values
                    ],
                }
                for t in self.types
            ],
        }

    @staticmethod
    def _codes_of(t: AttributeType, phrase: str) -> dict:
        codes = {g: c for g, m in t.workbook_codes.items() for c, p in m.items() if p == phrase}
        return {"workbook_codes": codes} if codes else {}


def vocabulary_from_dict(data: dict, source: str | Path = "<memory>",
                         type_keys: Sequence[str] = ATTRIBUTE_TYPE_KEYS) -> Vocabulary:
    """Validate a parsed vocabulary document; errors name the file, type and field.

    `type_keys` are the types it must hold, in order: the 8 attribute types, except for a model's
    stored name-only vocabulary (one type, "disease")."""
    file = Path(source) if not isinstance(source, Path) else source
    check_known_keys(data, {"kind", "schema_version", "name", "description", "attribute_types"}, file)
    name = require(data, "name", str, file)
    raw_types = require(data, "attribute_types", list, file)
    types = []
    seen_keys: set[str] = set()
    for position, raw in enumerate(raw_types, start=1):
        row = raw.get("key", f"#{position}") if isinstance(raw, dict) else f"#{position}"
        key = require(raw, "key", str, file, row=f"attribute type {row}")
        row = f"attribute type {key}"
        check_known_keys(raw, {"key", "name", "values", "multi_valued", "none_value"}, file, row=row)
        if key not in type_keys:
            raise TableError(file, f"unknown attribute type {key!r}; the types are {', '.join(type_keys)}",
                             row=row, field="key")
        if key in seen_keys:
            raise TableError(file, f"attribute type {key!r} is defined twice", row=row, field="key")
        seen_keys.add(key)
        values, codes = _parse_values(require(raw, "values", list, file, row=row), file, row)
        multi = bool(raw.get("multi_valued", False))
        none_value = raw.get("none_value")
        if none_value is not None and none_value not in values:
            raise TableError(file, f"none_value {none_value!r} is not one of this type's values", row=row, field="none_value")
        types.append(AttributeType(key, require(raw, "name", str, file, row=row), tuple(values), multi, none_value, codes))
    missing = [k for k in type_keys if k not in seen_keys]
    if missing:
        raise TableError(file, f"attribute type(s) missing: {', '.join(missing)}", field="attribute_types")
    order = {k: i for i, k in enumerate(type_keys)}
    types.sort(key=lambda t: order[t.key])
    return Vocabulary(name, tuple(types), str(source))


def _parse_values(raw_values: list, file: Path, row: str) -> tuple[list[str], dict[str, dict[int, str]]]:
    values: list[str] = []
    codes: dict[str, dict[int, str]] = {}
    if not raw_values:
        raise TableError(file, "an attribute type needs at least one value", row=row, field="values")
    for raw in raw_values:
        if isinstance(raw, str):
            raw = {"phrase": raw}
        phrase = require(raw, "phrase", str, file, row=row).strip()
        check_known_keys(raw, {"phrase", "workbook_codes"}, file, row=f"{row}, value {phrase!r}")
        if not phrase:
            raise TableError(file, "empty value phrase", row=row, field="phrase")
        if phrase in values:
            raise TableError(file, f"value {phrase!r} is listed twice", row=row, field="values")
        values.append(phrase)
        for group, code in (raw.get("workbook_codes") or {}).items():
            if not isinstance(code, int) or isinstance(code, bool):
                raise TableError(file, f"workbook code for group {group!r} must be an integer, found {code!r}",
                                 row=f"{row}, value {phrase!r}", field="workbook_codes")
            taken = codes.setdefault(str(group), {})
            if code in taken:
                raise TableError(file, f"workbook code {code} of group {group!r} is used by {taken[code]!r} too",
                                 row=f"{row}, value {phrase!r}", field="workbook_codes")
            taken[code] = phrase
    return values, codes


def load_vocabulary(name_or_path: str | Path = DEFAULT_VOCABULARY) -> Vocabulary:
    """Load and validate a vocabulary file (or a shipped one by name)."""
    path = resolve_table(name_or_path)
    return vocabulary_from_dict(read_yaml_document(path, VOCABULARY_KIND), path)
