from pathlib import Path

import pytest

from nnunetv2_malenia.errors import TableError
from nnunetv2_malenia.knowledge import ATTRIBUTE_TYPE_KEYS, load_vocabulary


def test_shipped_vocabulary_has_the_eight_types_in_order():
    vocab = load_vocabulary()
    assert vocab.type_keys == ATTRIBUTE_TYPE_KEYS
    assert len(vocab.phrases) == len(vocab.value_type)
    assert vocab.phrases[vocab.value_index("density", "hyperdense lesion")] == "hyperdense lesion"
    assert vocab.type("specific_features").multi_valued and not vocab.type("shape").multi_valued


def test_workbook_codes_depend_on_the_sheet_group():
    vocab = load_vocabulary()
    density = vocab.type("density")
    assert density.phrase_for_code("kidney", 1) == "hypodense lesion"
    assert density.phrase_for_code("lung", 1) == "low-density ground-glass opacity"
    assert density.phrase_for_code("lung", 3) == "hyperdense lesion"  # falls back to the default group
    assert vocab.type("shape").phrase_for_code("colon", 2) == "irregular wall thickening"
    assert vocab.type("location").codes_for_group("pancreas") == {
        1: "pancreatic head", 2: "pancreatic body", 3: "pancreatic tail"}


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, expected", [
    ("  - key: shape\n", "  - key: shapes\n", "row 'attribute type shapes': field 'key': unknown attribute type 'shapes'"),
    ("- {phrase: lobulated}", "- {phrase: irregular}", "row 'attribute type shape': field 'values': value 'irregular' is listed twice"),
    ("{phrase: spleen}", "{phrase: spleen, workbook_codes: {liver: 1}}",
     "field 'workbook_codes': workbook code 1 of group 'liver' is used by 'left hepatic lobe' too"),
    ("kind: attribute_vocabulary", "kind: vocabulary", "field 'kind': expected kind: attribute_vocabulary"),
    ("name: malenia-ct", "name: malenia-ct\n  bad: [", "malformed YAML at line"),
])
def test_bad_vocabulary_names_file_row_and_field(tables_copy, old, new, expected):
    path = tables_copy / "vocabulary.yaml"
    _rewrite(path, old, new)
    with pytest.raises(TableError) as info:
        load_vocabulary(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_attribute_type_is_named(tables_copy):
    path = tables_copy / "vocabulary.yaml"
    text = path.read_text()
    start = text.index("  - key: relationship")
    end = text.index("  - key: specific_features")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(TableError, match="attribute type\\(s\\) missing: relationship"):
        load_vocabulary(path)
