"""The shipped clinical table's workbook rows are what the workbook's value frequencies say."""

import pytest

from conftest import WORKBOOK_EN
from nnunetv2_malenia.knowledge import load_knowledge_table, load_vocabulary
from nnunetv2_malenia.knowledge.derive import derived_rows
from nnunetv2_malenia.knowledge.workbook import WORKBOOK_SHEETS, import_workbook


@pytest.fixture(scope="module")
def derived():
    vocab = load_vocabulary()
    result = import_workbook(WORKBOOK_EN, vocab)
    return {row["name"]: row for row in derived_rows(result.lesion_attributes, vocab, "workbook")}


@pytest.mark.parametrize("disease", sorted({s.disease for s in WORKBOOK_SHEETS}))
def test_workbook_rows_match_value_frequencies(derived, disease):
    row = load_knowledge_table().row(disease)
    assert "value frequencies" in row.source
    for type_key, frequencies in derived[disease]["attributes"].items():
        total = sum(frequencies.values())
        expected = {phrase: f / total for phrase, f in frequencies.items()}
        assert set(row.attributes[type_key]) == set(expected), (disease, type_key)
        for phrase, weight in expected.items():
            assert row.attributes[type_key][phrase] == pytest.approx(weight, abs=1e-6), (disease, type_key, phrase)


def test_knowledge_rows_are_marked_as_such():
    table = load_knowledge_table()
    workbook_diseases = {s.disease for s in WORKBOOK_SHEETS}
    for row in table.diseases:
        if row.name not in workbook_diseases:
            assert row.source.startswith("radiology knowledge:"), row.name
