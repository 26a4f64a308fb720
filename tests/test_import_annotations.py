import json
import shutil

import openpyxl
import pytest

from conftest import WORKBOOK_EN, WORKBOOK_ZH, run_malenia
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge import load_lesion_attributes, load_vocabulary
from nnunetv2_malenia.knowledge.workbook import import_workbook

# data rows per sheet in the released English workbook, before any is skipped
WORKBOOK_ROWS = {"kidney-tumor": 160, "kidney-cyst": 66, "liver-tumor": 40, "pancreas-tumor": 36,
                 "pancreas-cyst": 58, "colon-tumor": 42, "lung-tumor": 21}


@pytest.fixture(scope="module")
def imported():
    return import_workbook(WORKBOOK_EN, load_vocabulary())


def test_every_case_row_is_imported_or_reported(imported):
    data_row_skips = {}
    for row in imported.skipped:
        if row.case_id.startswith(("case_", "liver_", "pancreas_", "colon_", "lung_")):
            data_row_skips[row.sheet] = data_row_skips.get(row.sheet, 0) + 1
    for sheet, n_rows in WORKBOOK_ROWS.items():
        assert imported.imported[sheet] + data_row_skips.get(sheet, 0) == n_rows, sheet
    assert 355 <= len(imported.lesion_attributes.cases) <= 361


def test_skip_reasons_name_sheet_row_and_cause(imported):
    lines = {str(r) for r in imported.skipped}
    assert "sheet kidney-cyst row 48 (case_00119): location code '1、2' is not one of 1, 2" in lines
    assert "sheet pancreas-cyst row 7 (pancreas_043): shape code '12' is not one of 1, 2" in lines
    assert "sheet kidney-cyst row 43 (case_00110): blank cell in column 2 (enhancement_status)" in lines
    assert any(line.startswith("sheet kidney-tumor row 2 (Example 1): example or header row") for line in lines)
    assert "sheet lung-tumor row 1 (ID): header row" in lines


def test_case_in_two_sheets_keeps_both_labels(imported):
    labels = imported.lesion_attributes.cases["case_00002"]
    assert labels[2].disease == "kidney tumor" and labels[3].disease == "kidney cyst"


def test_codes_map_to_phrases_per_sheet(imported):
    lesions = imported.lesion_attributes
    # liver_2.nii: enhanced, left lobe, round-like, hypodense, heterogeneous, ill-defined, no relationship
    liver = lesions.get("liver_2", 2)
    assert liver.attributes["location"] == "left hepatic lobe"
    assert liver.attributes["shape"] == "round-like"
    assert liver.attributes["surface_characteristics"] == "ill-defined margin"
    assert liver.report.startswith("Contrast-enhanced CT")
    colon = lesions.get("colon_001", 1)
    assert colon.attributes["shape"] == "irregular wall thickening"
    assert colon.attributes["location"] == "transverse colon"
    lung = lesions.get("lung_001", 1)
    assert "spiculated margins" in lung.attributes["specific_features"]


def test_cli_writes_valid_file_and_refuses_to_overwrite(tmp_path):
    dataset = tmp_path / "Dataset220_KiTS2023"
    dataset.mkdir()
    result = run_malenia("import-annotations", "--workbook", str(WORKBOOK_EN), "--dataset", str(dataset),
                         "--sheet", "kidney-tumor", "肾囊肿")
    assert result.returncode == 0, result.stderr
    assert "skipped sheet kidney-cyst row 48 (case_00119)" in result.stdout
    target = dataset / "lesion_attributes.json"
    lesions = load_lesion_attributes(target, load_vocabulary())
    assert {rec.disease for labels in lesions.cases.values() for rec in labels.values()} == {"kidney tumor", "kidney cyst"}
    before = target.read_bytes()

    again = run_malenia("import-annotations", "--workbook", str(WORKBOOK_EN), "--dataset", str(dataset))
    assert again.returncode == 2
    assert again.stderr.strip() == f"malenia import-annotations: error: {target} exists; pass --force to overwrite it"
    assert target.read_bytes() == before

    forced = run_malenia("import-annotations", "--workbook", str(WORKBOOK_EN), "--dataset", str(dataset), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "lung_001" in json.loads(target.read_text())["cases"]


def test_bad_inputs_give_one_line_errors(tmp_path):
    vocab = load_vocabulary()
    with pytest.raises(MaleniaError, match="unknown sheet 'kidney-stone'; known sheets: kidney-tumor"):
        import_workbook(WORKBOOK_EN, vocab, ["kidney-stone"])
    with pytest.raises(MaleniaError, match="the report is not in English.*use annotations_of_lesion_descriptions_en.xlsx"):
        import_workbook(WORKBOOK_ZH, vocab, ["kidney-tumor"])
    not_xlsx = tmp_path / "fake.xlsx"
    not_xlsx.write_text("id,code\n")
    with pytest.raises(MaleniaError, match="fake.xlsx: not a readable .xlsx workbook"):
        import_workbook(not_xlsx, vocab)
    with pytest.raises(MaleniaError, match="missing.xlsx: no such workbook"):
        import_workbook(tmp_path / "missing.xlsx", vocab)

    shifted = tmp_path / "shifted.xlsx"
    shutil.copy(WORKBOOK_EN, shifted)
    book = openpyxl.load_workbook(shifted)
    book["肝癌"].cell(row=1, column=3).value = "location"
    book.save(shifted)
    with pytest.raises(MaleniaError, match="sheet 肝癌 column 3 header should start with '2\\)'"):
        import_workbook(shifted, vocab, ["liver-tumor"])

    result = run_malenia("import-annotations", "--workbook", str(WORKBOOK_EN), "--dataset", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "nope: no such dataset folder" in result.stderr
    assert not (tmp_path / "nope").exists()
