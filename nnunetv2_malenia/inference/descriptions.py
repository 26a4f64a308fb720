"""`malenia predict --describe "NAME=TEXT"`: free-text descriptions as extra knowledge-table rows.

Kept apart from the predictor so the table-building part (names, tower check, rows appended,
output labels) runs and is tested without a trained network. The text is parsed against the
vocabulary of the table in use with the model's own text tower: similarities are only
meaningful in the embedding space the model was trained in.
"""

from __future__ import annotations

from typing import Sequence

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.inference.lesion_report import UNKNOWN_LESION
from nnunetv2_malenia.inference.zero_shot_predictor import ModelKnowledge
from nnunetv2_malenia.knowledge.free_text import (Embedder, ParsedDescription, check_new_names, parse_description,
                                                  table_with_descriptions, tower_embedder)
from nnunetv2_malenia.knowledge.knowledge_table import KnowledgeTable


def taken_names(model: ModelKnowledge, training_labels: dict[str, int], table: KnowledgeTable) -> dict[str, str]:
    """Every name a description may not take, and whose it is (for the error message)."""
    taken = {name: f"a row of table {table.name!r}" for name in table.disease_names}
    taken |= {name: f"a row of the model's table {model.table.name!r}" for name in model.table.disease_names}
    taken |= {disease: "a lesion label the model was trained on" for disease in model.disease_of_label.values()}
    taken |= {name: "a label of the model (dataset.json)" for name in training_labels
              if name not in model.disease_of_label.values()}
    taken[UNKNOWN_LESION] = "the open-set label"
    return taken


def model_embedder(model: ModelKnowledge, tower_spec: str | None = None) -> Embedder:
    """The model's text tower (or --tower, which must be the same weights), as an Embedder."""
    from nnunetv2_malenia.text import tower_identity

    spec = tower_spec or model.tower_spec
    try:
        identity = tower_identity(spec)
    except MaleniaError as e:
        raise MaleniaError(f"--describe needs the model's text tower to read the descriptions, and it is not "
                           f"available: {e}") from None
    expected = model.tower_identity
    if (identity.get("weights_sha256"), identity.get("embed_dim")) != (expected.get("weights_sha256"),
                                                                     expected.get("embed_dim")):
        raise MaleniaError(f"--describe needs the model's text tower {expected.get('name')} (sha256 "
                           f"{str(expected.get('weights_sha256'))[:12]}...), but --tower {spec} is "
                           f"{identity.get('name')} (sha256 {str(identity.get('weights_sha256'))[:12]}...)")
    return tower_embedder(spec)


def describe_table(model: ModelKnowledge, training_labels: dict[str, int], table: KnowledgeTable,
                   descriptions: Sequence[tuple[str, str]], tower_spec: str | None = None, only: bool = False,
                   embed: Embedder | None = None) -> tuple[KnowledgeTable, list[ParsedDescription]]:
    """`table` plus one row per (NAME, TEXT) description (the descriptions alone with `only`).

    Names are checked before the tower is loaded, so a clash costs nothing."""
    if model.name_only:
        raise MaleniaError("--describe: this model was trained on disease names only (nnUNetTrainerMalenia_nameonly) "
                           "and reads no attributes; use a model trained with attributes")
    check_new_names([name for name, _ in descriptions], taken_names(model, training_labels, table))
    embed = embed or model_embedder(model, tower_spec)
    parsed = [parse_description(name, text, table.vocabulary, embed) for name, text in descriptions]
    return table_with_descriptions(table, parsed, only), parsed
