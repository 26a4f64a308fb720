"""Validate any table file by what it says it is: vocabulary, knowledge table, lesion attributes."""

from __future__ import annotations

from pathlib import Path

from nnunetv2_malenia.errors import TableError
from nnunetv2_malenia.knowledge.knowledge_table import KNOWLEDGE_TABLE_KIND, load_knowledge_table
from nnunetv2_malenia.knowledge.lesion_attributes import load_lesion_attributes
from nnunetv2_malenia.knowledge.vocabulary import VOCABULARY_KIND, Vocabulary, load_vocabulary
from nnunetv2_malenia.knowledge.yaml_io import read_yaml_document


def check_table_file(path: str | Path, vocabulary: Vocabulary | None = None) -> str:
    """Validate one file; return a one-line summary, or raise TableError naming file, row and field."""
    path = Path(path)
    if path.suffix == ".json":
        lesions = load_lesion_attributes(path, vocabulary or load_vocabulary())
        n = sum(len(labels) for labels in lesions.cases.values())
        return f"{path}: lesion attributes, {len(lesions.cases)} cases, {n} lesions"
    if path.suffix not in (".yaml", ".yml"):
        raise TableError(path, "not a table file: expected .yaml/.yml (vocabulary, knowledge table) or .json (lesion attributes)")
    kind = read_yaml_document(path).get("kind")
    if kind == VOCABULARY_KIND:
        vocab = load_vocabulary(path)
        return f"{path}: attribute vocabulary {vocab.name!r}, {len(vocab.types)} types, {len(vocab.phrases)} values"
    if kind == KNOWLEDGE_TABLE_KIND:
        table = load_knowledge_table(path)
        return f"{path}: knowledge table {table.name!r}, {len(table.diseases)} diseases"
    raise TableError(path, f"unknown kind {kind!r}; expected {VOCABULARY_KIND} or {KNOWLEDGE_TABLE_KIND}", field="kind")

