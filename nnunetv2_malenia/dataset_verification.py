"""`malenia verify-dataset`: what `nnUNetv2_plan_and_preprocess --verify_dataset_integrity` does not check.

nnU-Net's check covers file naming, channels, matching geometry of image and label, and label
values against dataset.json for imagesTr/labelsTr. It reads images with SimpleITK, which fills a
truncated `.nii.gz` with zeros without complaint, and it knows nothing of Malenia's side files. A
fault of either kind trains a model on wrong data without an error anywhere, so this check adds:

- every image and label file of imagesTr/labelsTr (and imagesTs/labelsTs, if present) decompresses
  completely and holds the data its header declares (data_integrity.py);
- images are finite: a NaN or inf voxel is either read as 0 without a word (ITK's NIfTI reader,
  nnU-Net's default) or turns the normalised case into NaN (other formats and readers), so the
  stored voxels of a float NIfTI are read directly;
- label values are labels of dataset.json (labelsTs: of the test label list, dataset_test.json,
  which also names the diseases kept out of training);
- lesion_attributes.json uses only vocabulary values (every bad record, not just the first), and
  has a record for every lesion label present in every case's label map, whose disease is the
  label's knowledge-table row: the trainer silently falls back to the row's most likely values
  for a missing record;
- the lesion labels are rows of the knowledge table (resolved exactly as the trainer does).

Each finding is one line naming the file and the case, label or value.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nnunetv2_malenia.data_integrity import check_complete, stored_float_voxels
from nnunetv2_malenia.errors import MaleniaError, TableError
from nnunetv2_malenia.knowledge import LESION_ATTRIBUTES_FILENAME, LesionAttributes, load_lesion_attributes
from nnunetv2_malenia.knowledge.builtin import DEFAULT_KNOWLEDGE_TABLE
from nnunetv2_malenia.training.dataset_knowledge import DatasetKnowledge, dataset_knowledge, normalise_name

TEST_LABELS_FILENAME = "dataset_test.json"


@dataclass
class DatasetReport:
    """Findings (one line each: something to fix), notes (worth knowing, not faults) and what was checked."""

    folder: Path
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: int = 0
    label_maps: int = 0

    def summary(self) -> str:
        checked = f"{self.folder.name}: {self.images} images and {self.label_maps} label maps checked"
        if not self.findings:
            return f"{checked}, no findings"
        return f"{checked}, {len(self.findings)} finding(s)"


def _label_values(labels: dict) -> set[int]:
    """Every value dataset.json's "labels" allows (region-based labels list several)."""
    values: set[int] = set()
    for value in labels.values():
        values.update(int(v) for v in (value if isinstance(value, list) else [value]))
    return values


def _format_values(values: list) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _knowledge(dataset_json: dict, folder: Path) -> DatasetKnowledge:
    """The trainer's resolution of lesion labels and knowledge table, without loading lesion_attributes.json.

    dataset_knowledge stops at the first bad lesion record; the checker loads that file itself so it
    can report every one. So the table reference is made absolute and no folder is passed.
    """
    declared = dict(dataset_json.get("malenia") or {})
    table_ref = declared.get("knowledge_table", DEFAULT_KNOWLEDGE_TABLE)
    if (folder / table_ref).is_file():
        declared["knowledge_table"] = str(folder / table_ref)
    with warnings.catch_warnings():  # "no lesion_attributes.json": handled by the caller
        warnings.simplefilter("ignore")
        return dataset_knowledge({**dataset_json, "malenia": declared}, None)


def _test_label_list(dataset_json: dict, folder: Path) -> tuple[dict, str]:
    """The labels labelsTs may hold, and the file that names them."""
    ref = (dataset_json.get("malenia") or {}).get("test_labels", TEST_LABELS_FILENAME)
    if (folder / ref).is_file():
        try:
            return json.loads((folder / ref).read_text())["labels"], ref
        except (json.JSONDecodeError, KeyError, TypeError):
            raise MaleniaError(f"{folder / ref}: not a label list (expected JSON with \"labels\": "
                               "{name: value})") from None
    return dataset_json["labels"], "dataset.json"


def _read(path: Path, report: DatasetReport):
    """The voxel array of `path`, or None after recording why it cannot be used."""
    import SimpleITK as sitk

    try:
        check_complete(path)
    except MaleniaError as e:
        report.findings.append(str(e))
        return None
    try:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as e:
        report.findings.append(f"{path}: not readable by SimpleITK ({str(e).strip().splitlines()[-1]}); "
                               "export or convert it again")
        return None


def _check_image(path: Path, report: DatasetReport) -> None:
    array = _read(path, report)
    if array is None:
        return
    stored = stored_float_voxels(path)  # NIfTI: SimpleITK shows NaN and inf as 0, the file's bytes do not
    if stored is not None:
        values, shape = stored  # flat, x fastest
        bad = ~np.isfinite(values)
        first = np.unravel_index(np.flatnonzero(bad)[0], shape, order="F") if bad.any() else None
    elif array.dtype.kind == "f":
        values = array  # (z, y, x)
        bad = ~np.isfinite(values)
        first = tuple(np.argwhere(bad)[0][::-1]) if bad.any() else None
    else:
        return
    if first is not None:
        n_nan = int(np.isnan(values).sum())
        report.findings.append(f"{path}: {n_nan} NaN and {int(bad.sum()) - n_nan} infinite voxel(s), the first at "
                               f"voxel index (x, y, z) {tuple(int(i) for i in first[:3])}; nnU-Net reads them as 0 "
                               "(NIfTI) or spreads them over the case when normalising: replace them with real values "
                               "and save the image again")


def _recorded(lesions_path: Path) -> set[tuple[str, int]]:
    """(case, label) of every record in the file, valid or not: a rejected record is reported once, not twice."""
    cases = json.loads(lesions_path.read_text(encoding="utf-8")).get("cases", {})
    return {(case, int(label)) for case, labels in cases.items() if isinstance(labels, dict)
            for label in labels if str(label).isdigit()}


def _check_label_map(path: Path, case: str, report: DatasetReport, allowed: set[int], label_file: str,
                     lesion_rows: dict[int, str] | None, lesions: LesionAttributes | None, lesions_path: Path,
                     recorded: set[tuple[str, int]]) -> None:
    array = _read(path, report)
    if array is None:
        return
    if array.dtype.kind in "iu" and array.size and array.min() >= 0:
        present = np.flatnonzero(np.bincount(array.ravel())).tolist()
    else:
        present = np.unique(array).tolist()
    integral = {int(v) for v in present if float(v).is_integer()}
    unknown = [v for v in present if not float(v).is_integer() or int(v) not in allowed]
    if unknown:
        report.findings.append(f"{path}: label value(s) {_format_values(unknown)} not in {label_file} \"labels\" "
                               f"(allowed: {_format_values(sorted(allowed))}); relabel the map or add the label")
    if lesion_rows is None or lesions is None:
        return
    for label in sorted(integral & set(lesion_rows)):
        record = lesions.get(case, label)
        if record is None and (case, label) not in recorded:
            report.findings.append(f"{lesions_path}: case {case!r} label {label} ({lesion_rows[label]}): no record, "
                                   f"but {path.name} holds that label; add the lesion's attributes (without them the "
                                   "trainer uses the row's most likely values)")
        elif record is not None and normalise_name(record.disease) != normalise_name(lesion_rows[label]):
            report.findings.append(f"{lesions_path}: case {case!r} label {label}: disease {record.disease!r}, but "
                                   f"label {label} is {lesion_rows[label]!r} in {label_file}; fix the record or the label")


def _check_lesion_attributes(path: Path, declared: bool, knowledge: DatasetKnowledge, report: DatasetReport
                             ) -> tuple[LesionAttributes | None, set[tuple[str, int]]]:
    """(the valid records, (case, label) of every record) of lesion_attributes.json; its problems go to `report`."""
    if not path.is_file():
        if declared:
            report.findings.append(f"{path}: named by dataset.json (malenia.lesion_attributes) but missing")
        else:
            report.notes.append(f"no {path.name} in {path.parent}: the trainer gives every lesion the most likely "
                                "values of its disease's knowledge-table row")
        return None, set()
    problems: list[TableError] = []
    try:
        lesions = load_lesion_attributes(path, knowledge.vocabulary, problems)
    except TableError as e:  # not a lesion-attributes document at all
        report.findings.append(str(e))
        return None, set()
    report.findings.extend(str(p) for p in problems)
    table = knowledge.table
    rows = set(map(normalise_name, table.disease_names))
    for case, by_label in sorted(lesions.cases.items()):
        for label, record in sorted(by_label.items()):
            if normalise_name(record.disease) not in rows:
                report.findings.append(f"{path}: case {case!r} label {label}: disease {record.disease!r} is not a row "
                                       f"of knowledge table {table.source} (rows: {', '.join(table.disease_names)})")
    return lesions, _recorded(path)


def verify_raw_dataset(folder: str | Path, progress: bool = False,
                       on_finding: Callable[[str], None] | None = None) -> DatasetReport:
    """Check the raw nnU-Net dataset `folder` (see the module docstring); `on_finding` sees each finding as it is made.

    Raises MaleniaError only when there is nothing to check (no dataset.json, no imagesTr).
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    report = DatasetReport(folder)
    reported = 0

    def flush() -> None:
        nonlocal reported
        if on_finding is not None:
            for line in report.findings[reported:]:
                on_finding(line)
        reported = len(report.findings)

    try:
        dataset_json = json.loads((folder / "dataset.json").read_text())
    except FileNotFoundError:
        raise MaleniaError(f"{folder}: no dataset.json; pass the id or name of an nnU-Net raw dataset") from None
    except json.JSONDecodeError as e:
        raise MaleniaError(f"{folder / 'dataset.json'}: malformed JSON at line {e.lineno}: {e.msg}") from None
    if not (folder / "imagesTr").is_dir():
        raise MaleniaError(f"{folder}: no imagesTr folder; this is not an nnU-Net raw dataset")
    ending = dataset_json.get("file_ending", ".nii.gz")

    knowledge: DatasetKnowledge | None = None
    try:
        knowledge = _knowledge(dataset_json, folder)
    except MaleniaError as e:  # a lesion label that is no table row, a broken table: the lesion checks need it
        report.findings.append(str(e))
    declared = dataset_json.get("malenia") or {}
    lesions_path = folder / declared.get("lesion_attributes", LESION_ATTRIBUTES_FILENAME)
    lesions, recorded = (_check_lesion_attributes(lesions_path, "lesion_attributes" in declared, knowledge, report)
                         if knowledge is not None else (None, set()))
    flush()

    splits = [("Tr", _label_values(dataset_json["labels"]), "dataset.json",
               dict(knowledge.disease_of_label) if knowledge else None)]
    if (folder / "imagesTs").is_dir() or (folder / "labelsTs").is_dir():
        test_labels, test_file = _test_label_list(dataset_json, folder)
        rows = {normalise_name(name): name for name in knowledge.table.disease_names} if knowledge else {}
        test_rows = {int(v): rows[normalise_name(n)] for n, v in test_labels.items()
                     if not isinstance(v, list) and normalise_name(n) in rows}
        splits.append(("Ts", _label_values(test_labels), test_file, test_rows if knowledge else None))

    jobs = []
    for split, allowed, label_file, lesion_rows in splits:
        jobs += [("image", path, None) for path in sorted((folder / f"images{split}").glob(f"*{ending}"))]
        label_folder = folder / f"labels{split}"
        if split == "Tr" and not label_folder.is_dir():
            report.findings.append(f"{label_folder}: missing; nnU-Net needs a label map per training case")
        jobs += [("label", path, (allowed, label_file, lesion_rows)) for path in sorted(label_folder.glob(f"*{ending}"))]
    flush()
    for kind, path, spec in tqdm(jobs, desc="verify", unit="file", disable=not progress):
        if kind == "image":
            report.images += 1
            _check_image(path, report)
        else:
            report.label_maps += 1
            allowed, label_file, lesion_rows = spec
            _check_label_map(path, path.name[: -len(ending)], report, allowed, label_file, lesion_rows, lesions,
                             lesions_path, recorded)
        flush()
    return report
