"""Import the authors' released lesion-description workbook into `lesion_attributes.json`.

The workbook (annotations_of_lesion_descriptions_en.xlsx, MIT) has one sheet per lesion class;
each row is one case: an id, seven numeric attribute codes defined in the sheet's header row, and
the report text. `WORKBOOK_SHEETS` is the single place that says which nnU-Net dataset and label
each sheet annotates.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.lesion_attributes import LesionAttributes, LesionRecord
from nnunetv2_malenia.knowledge.report_features import specific_features_from_report
from nnunetv2_malenia.knowledge.vocabulary import Vocabulary


@dataclass(frozen=True)
class SheetSpec:
    sheet: str  # sheet name in the workbook (Chinese)
    key: str  # English name accepted by --sheet
    disease: str  # knowledge-table row
    code_group: str  # which `workbook_codes` group of the vocabulary defines this sheet's codes
    dataset: str  # the nnU-Net dataset whose cases the sheet describes
    label: int  # the label of this lesion class in that dataset's segmentations
    case_id_pattern: str


WORKBOOK_SHEETS: tuple[SheetSpec, ...] = (
    SheetSpec("肾癌", "kidney-tumor", "kidney tumor", "kidney", "KiTS23", 2, r"case_\d{5}"),
    SheetSpec("肾囊肿", "kidney-cyst", "kidney cyst", "kidney", "KiTS23", 3, r"case_\d{5}"),
    SheetSpec("肝癌", "liver-tumor", "liver tumor", "liver", "MSD Task03_Liver", 2, r"liver_\d+"),
    SheetSpec("胰腺癌", "pancreas-tumor", "pancreas tumor", "pancreas", "MSD Task07_Pancreas", 2, r"pancreas_\d+"),
    SheetSpec("胰腺囊肿", "pancreas-cyst", "pancreas cyst", "pancreas", "MSD Task07_Pancreas", 2, r"pancreas_\d+"),
    SheetSpec("结肠癌", "colon-tumor", "colon tumor", "colon", "MSD Task10_Colon", 1, r"colon_\d+"),
    SheetSpec("肺癌", "lung-tumor", "lung tumor", "lung", "MSD Task06_Lung", 1, r"lung_\d+"),
)

# workbook columns 1..7 (after the id), in the order of the header's "1)" .. "7)"
CODED_COLUMNS = (
    "enhancement_status",
    "location",
    "shape",
    "density",
    "density_variation",
    "surface_characteristics",
    "relationship",
)


@dataclass(frozen=True)
class SkippedRow:
    sheet: str
    row: int  # 1-based spreadsheet row number, as a person sees it in Excel
    case_id: str
    reason: str

    def __str__(self) -> str:
        return f"sheet {self.sheet} row {self.row} ({self.case_id}): {self.reason}"


@dataclass
class ImportResult:
    lesion_attributes: LesionAttributes
    imported: Counter = field(default_factory=Counter)  # sheet key -> rows imported
    skipped: list[SkippedRow] = field(default_factory=list)


def sheet_spec(name: str) -> SheetSpec:
    for spec in WORKBOOK_SHEETS:
        if name in (spec.sheet, spec.key):
            return spec
    known = ", ".join(f"{s.key} ({s.sheet})" for s in WORKBOOK_SHEETS)
    raise MaleniaError(f"unknown sheet {name!r}; known sheets: {known}")


def normalise_case_id(raw: object) -> str:
    text = str(raw).strip() if raw is not None else ""
    return re.sub(r"\.nii(\.gz)?$", "", text)


def import_workbook(workbook: str | Path, vocabulary: Vocabulary, sheets: Sequence[str] | None = None) -> ImportResult:
    """Read the chosen sheets (default: all) and convert every valid row; collect skipped ones."""
    workbook = Path(workbook)
    specs = [sheet_spec(s) for s in sheets] if sheets else list(WORKBOOK_SHEETS)
    book = _open_workbook(workbook)
    result = ImportResult(LesionAttributes(vocabulary.name, source=f"{workbook.name} (Malenia authors' annotations, MIT)"))
    owner: dict[tuple[str, int], str] = {}
    try:
        for spec in specs:
            if spec.sheet not in book.sheetnames:
                raise MaleniaError(f"{workbook}: sheet {spec.sheet!r} ({spec.key}) not found; sheets present: {', '.join(book.sheetnames)}")
            rows = list(book[spec.sheet].iter_rows(values_only=True))
            _check_header(workbook, spec, rows[0] if rows else ())
            result.skipped.append(SkippedRow(spec.key, 1, "ID", "header row"))
            for number, row in enumerate(rows[1:], start=2):
                _import_row(workbook, spec, number, row, vocabulary, result, owner)
    finally:
        book.close()
    return result


def _open_workbook(path: Path):
    import openpyxl

    if not path.is_file():
        raise MaleniaError(f"{path}: no such workbook; pass the released annotations_of_lesion_descriptions_en.xlsx")
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for a file that is not xlsx
        raise MaleniaError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None


def _check_header(workbook: Path, spec: SheetSpec, header: Iterable) -> None:
    cells = [str(c or "").strip() for c in header]
    for column in range(1, len(CODED_COLUMNS) + 1):
        if column >= len(cells) or not cells[column].startswith(f"{column})"):
            raise MaleniaError(f"{workbook}: sheet {spec.sheet} column {column + 1} header should start with "
                               f"'{column})' (the {CODED_COLUMNS[column - 1]} codes); is this the released workbook?")
    if len(cells) < len(CODED_COLUMNS) + 2:
        raise MaleniaError(f"{workbook}: sheet {spec.sheet} has no report column after the 7 coded columns")


def _import_row(workbook: Path, spec: SheetSpec, number: int, row: tuple, vocabulary: Vocabulary,
                result: ImportResult, owner: dict[tuple[str, int], str]) -> None:
    def skip(reason: str) -> None:
        result.skipped.append(SkippedRow(spec.key, number, case_id or "<blank id>", reason))

    case_id = normalise_case_id(row[0] if row else None)
    if all(c is None or str(c).strip() == "" for c in row):
        return skip("empty row")
    if not re.fullmatch(spec.case_id_pattern, case_id):
        return skip(f"example or header row: id is not a {spec.dataset} case id ({spec.case_id_pattern})")
    attributes: dict[str, str | list[str]] = {}
    for column, type_key in enumerate(CODED_COLUMNS, start=1):
        cell = row[column] if column < len(row) else None
        allowed = vocabulary.type(type_key).codes_for_group(spec.code_group)
        code = _parse_code(cell)
        if cell is None or str(cell).strip() == "":
            return skip(f"blank cell in column {column + 1} ({type_key})")
        if code not in allowed:
            return skip(f"{type_key} code {str(cell).strip()!r} is not one of {', '.join(map(str, sorted(allowed)))}")
        attributes[type_key] = allowed[code]
    report = str(row[len(CODED_COLUMNS) + 1] or "").strip()
    if not report:
        return skip("blank report text")
    if re.search(r"[\u4e00-\u9fff]", report):
        raise MaleniaError(f"{workbook}: sheet {spec.sheet} row {number}: the report is not in English; Specific "
                           "Features are read from English reports: use annotations_of_lesion_descriptions_en.xlsx")
    specific = vocabulary.type("specific_features")
    attributes["specific_features"] = specific_features_from_report(report, specific.none_value or specific.values[0])
    key = (case_id, spec.label)
    if key in owner:
        return skip(f"case already has label {spec.label} from sheet {owner[key]}")
    owner[key] = spec.key
    ordered = {k: attributes[k] for k in vocabulary.type_keys}
    result.lesion_attributes.add(case_id, spec.label, LesionRecord(spec.disease, ordered, report, f"{spec.key} row {number}"))
    result.imported[spec.key] += 1


def _parse_code(cell: object) -> int | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    text = str(cell).strip() if cell is not None else ""
    return int(text) if text.isdigit() else None
