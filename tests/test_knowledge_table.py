from pathlib import Path

import numpy as np
import pytest

from conftest import TABLES, run_malenia
from nnunetv2_malenia.errors import TableError
from nnunetv2_malenia.knowledge import load_knowledge_table

PAPER_CATEGORIES = {
    "kidney tumor", "kidney cyst", "liver tumor", "pancreas tumor", "pancreas cyst", "colon tumor", "lung tumor",
    "hepatic vessel tumor", "liver cyst", "kidney stone", "gallbladder tumor",
}


def test_clinical_table_covers_the_paper_categories_with_sources():
    table = load_knowledge_table()
    assert PAPER_CATEGORIES <= set(table.disease_names)
    assert all(row.source.strip() for row in table.diseases)


def test_weight_matrix_sums_to_one_per_type():
    table = load_knowledge_table()
    matrix = table.weight_matrix()
    value_type = np.array(table.vocabulary.value_type)
    for t in range(len(table.vocabulary.types)):
        np.testing.assert_allclose(matrix[:, value_type == t].sum(axis=1), 1.0, rtol=1e-5)
    stone = table.row("kidney stone")
    assert matrix[table.disease_names.index("kidney stone"), table.vocabulary.value_index("density", "hyperdense lesion")] == 1.0
    assert stone.most_likely("specific_features") == "calcified foci"


def test_shipped_tables_pass_the_checker():
    result = run_malenia("tables", "check", *sorted(str(p) for p in TABLES.glob("*.yaml")))
    assert result.returncode == 0, result.stderr
    assert "knowledge table 'malenia-clinical', 11 diseases" in result.stdout


def _plant(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, row, field, problem", [
    ("      hyperdense lesion: 0.444", "      hyperdens lesion: 0.444", "kidney tumor", "density", "unknown value 'hyperdens lesion'"),
    ("    shape:\n      round-like: 0.859", "    shapes:\n      round-like: 0.859", "kidney cyst", "shapes", "unknown attribute type 'shapes'"),
    ("- name: liver cyst", "- name: liver tumor", "liver tumor", "name", "disease 'liver tumor' is listed twice"),
    ("      surrounding fat stranding: 0.69", "      surrounding fat stranding: -1", "colon tumor", "specific_features",
     "weight of 'surrounding fat stranding' must be a positive number"),
])
def test_planted_mistake_is_named_by_file_row_and_field(tables_copy, old, new, row, field, problem):
    path = tables_copy / "clinical_knowledge_table.yaml"
    _plant(path, old, new)
    with pytest.raises(TableError) as info:
        load_knowledge_table(path)
    assert str(info.value) == f"{path}: row {row!r}: field {field!r}: " + str(info.value).split(f"field {field!r}: ")[1]
    assert problem in str(info.value)


def test_row_with_no_value_for_a_type(tables_copy):
    path = tables_copy / "clinical_knowledge_table.yaml"
    _plant(path, "    enhancement_status:\n      contrast-enhanced CT: 1.0\n    surface_characteristics:\n      well-defined margin: 0.844",
           "    surface_characteristics:\n      well-defined margin: 0.844")
    with pytest.raises(TableError, match="row 'kidney cyst': field 'enhancement_status': no value given"):
        load_knowledge_table(path)


def test_checker_cli_reports_typo_in_one_line_and_fails(tables_copy):
    path = tables_copy / "clinical_knowledge_table.yaml"
    _plant(path, "      ill-defined margin: 0.988", "      ill-defnied margin: 0.988")
    result = run_malenia("tables", "check", str(tables_copy / "vocabulary.yaml"), str(path))
    assert result.returncode == 1
    assert "ok   " in result.stdout  # the vocabulary still passes
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"FAIL {path}: row 'kidney tumor': field 'surface_characteristics': unknown value 'ill-defnied margin'")


def test_checker_rejects_malformed_and_unknown_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: knowledge_table\nschema_version: 1\ndiseases: [\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run_malenia("tables", "check", str(broken), str(notes))
    assert result.returncode == 1
    assert f"FAIL {broken}: malformed YAML at line" in result.stderr
    assert f"FAIL {notes}: not a table file" in result.stderr
