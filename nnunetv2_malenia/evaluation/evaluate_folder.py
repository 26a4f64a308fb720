"""Folders of label maps -> per case and label DSC/NSD rows, a summary, and CSV / JSON / markdown files."""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nnunetv2_malenia._atomic import atomic_path, read_json_file, write_json_atomic
from nnunetv2_malenia.data_integrity import check_complete
from nnunetv2_malenia.datasets.annotated_labels import AnnotatedLabels, find_annotated_labels
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.evaluation.metrics import (
    BOTH_EMPTY, DEFAULT_TOLERANCE_MM, EMPTY_KINDS, GT_EMPTY, PRED_EMPTY, evaluate_case,
)

DEFAULT_FILE_ENDING = ".nii.gz"
MISSING = "missing"
NOT_ANNOTATED = "not annotated"  # the case's source dataset does not label this class (annotated_labels.json)
UNSCORED = (MISSING, NOT_ANNOTATED)
CSV_COLUMNS = ("case", "label", "value", "dsc", "nsd", "gt_voxels", "pred_voxels", "empty")
METRICS = ("dsc", "nsd")
CONVENTION = ("Metrics Reloaded (Maier-Hein et al., Nat. Methods 2024): both empty -> {both} ; "
              "GT empty, prediction not -> 0 ; prediction empty, GT not -> 0")
REFERENCE = "MONAI compute_surface_dice(use_subvoxels=True): DeepMind surface-distance algorithm (Nikolov et al. 2021)"
GEOMETRY_TOLERANCE = 1e-4  # relative, for spacing and origin (nnU-Net writes predictions with the input geometry)


@dataclass
class EvaluationResult:
    """What `evaluate_folders` found: one row per case and label, and the summary written to summary.json."""

    rows: list[dict]
    summary: dict
    labels: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- labels


def load_label_file(path: str | Path) -> dict[str, Any]:
    """The "labels" mapping {name: value} of a dataset.json / dataset_test.json (a value may be a list: a region)."""
    path = Path(path)
    data = read_json_file(path, "label file not found")
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise MaleniaError(f"{path}: no \"labels\": {{name: value}} mapping (expected a dataset.json or dataset_test.json)")
    out: dict[str, Any] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value))):
            raise MaleniaError(f"{path}: label {name!r} has value {value!r}; expected an integer or a list of integers")
        out[str(name)] = tuple(value) if isinstance(value, (list, tuple)) else int(value)
    return out


def resolve_labels(requested: Sequence[str | int] | None, label_file_labels: Mapping[str, Any] | None,
                   gt_values: Iterable[int] = ()) -> dict[str, Any]:
    """{display name: value} of the labels to evaluate.

    `requested`: numbers or names (names need `label_file_labels`); None = every value present in
    the ground truth except 0, named through the label file where it has a name for the value.
    """
    names_by_value = {v: n for n, v in (label_file_labels or {}).items() if isinstance(v, int)}
    if not requested:
        values = sorted(int(v) for v in set(gt_values) if int(v) != 0)
        return {names_by_value.get(v, str(v)): v for v in values}
    out: dict[str, Any] = {}
    items = [part.strip() for item in requested for part in str(item).split(",") if part.strip()]
    for text in items:
        if text.lstrip("-").isdigit():
            value: Any = int(text)
            if value == 0:
                raise MaleniaError("label 0 is the background; it is not evaluated")
            name = names_by_value.get(value, str(value))
        elif label_file_labels is None:
            raise MaleniaError(f"label {text!r} is a name; pass --label-file DATASET.json to resolve names to values")
        elif text in label_file_labels:
            name, value = text, label_file_labels[text]
            if value == 0:
                raise MaleniaError(f"label {text!r} is the background (0); it is not evaluated")
        else:
            known = ", ".join(n for n, v in label_file_labels.items() if v != 0)
            raise MaleniaError(f"label {text!r} is not in the label file; known labels: {known}")
        out[name] = value
    return out


# --------------------------------------------------------------------------- files


def list_cases(folder: Path, file_ending: str) -> dict[str, Path]:
    """{case id: path} of the files in `folder` named CASE<file_ending> (nnU-Net's label-map naming)."""
    return {p.name[: -len(file_ending)]: p for p in sorted(folder.iterdir())
            if p.is_file() and p.name.endswith(file_ending) and not p.name.startswith(".")}


def _geometry(image) -> dict[str, tuple]:
    return {"size": tuple(image.GetSize()), "spacing": tuple(round(s, 6) for s in image.GetSpacing()),
            "origin": tuple(round(o, 6) for o in image.GetOrigin())}


def _same_geometry(a, b) -> bool:
    if tuple(a.GetSize()) != tuple(b.GetSize()):
        return False
    for x, y in ((a.GetSpacing(), b.GetSpacing()), (a.GetOrigin(), b.GetOrigin())):
        if not np.allclose(x, y, rtol=GEOMETRY_TOLERANCE, atol=GEOMETRY_TOLERANCE):
            return False
    return True


def _fmt_geometry(g: Mapping[str, tuple]) -> str:
    def f(values):
        return "x".join(f"{v:g}" for v in values)
    return f"size {f(g['size'])}, spacing {f(g['spacing'])} mm, origin ({', '.join(f'{v:g}' for v in g['origin'])})"


def load_pair(gt_path: str | Path, pred_path: str | Path, case: str | None = None
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Ground truth and prediction label maps as (z, y, x) arrays, and the GT spacing in that axis order (mm).

    Raises MaleniaError naming the case and both geometries when size, spacing or origin differ, and
    naming the file when one is truncated (SimpleITK would read the missing part as background).
    """
    import SimpleITK as sitk

    case = case or Path(gt_path).name
    check_complete(gt_path)
    check_complete(pred_path)
    try:
        gt_img, pred_img = sitk.ReadImage(str(gt_path)), sitk.ReadImage(str(pred_path))
    except RuntimeError as e:
        raise MaleniaError(f"case {case}: cannot read label map ({str(e).strip().splitlines()[-1]})") from None
    if not _same_geometry(gt_img, pred_img):
        raise MaleniaError(f"case {case}: prediction geometry ({_fmt_geometry(_geometry(pred_img))}) does not match "
                           f"the ground truth ({_fmt_geometry(_geometry(gt_img))})")
    spacing_zyx = tuple(float(s) for s in reversed(gt_img.GetSpacing()))
    return sitk.GetArrayFromImage(gt_img), sitk.GetArrayFromImage(pred_img), spacing_zyx


def _case_job(job: tuple) -> list[dict]:
    """Rows of one case. With labels None: every non-zero value of the GT or the prediction, named by `names`."""
    case, gt_path, pred_path, labels, names, tolerance_mm, both_empty = job
    gt, pred, spacing = load_pair(gt_path, pred_path, case)
    if labels is None:
        values = sorted((set(np.unique(gt).tolist()) | set(np.unique(pred).tolist())) - {0})
        labels = {names.get(int(v), str(int(v))): int(v) for v in values}
    return evaluate_case(gt, pred, spacing, labels, tolerance_mm, both_empty, case=case)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- folders


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, labels: Sequence[str | int] | None = None,
                     label_file: str | Path | None = None, tolerance_mm: float = DEFAULT_TOLERANCE_MM,
                     file_ending: str | None = None, allow_missing: bool = False, num_processes: int = 1,
                     both_empty: float = 1.0, progress: bool = True,
                     annotated: AnnotatedLabels | None = None) -> EvaluationResult:
    """DSC and NSD of every case of `gt_dir` against the file of the same name in `pred_dir`.

    Cases are matched by file name (CASE + file ending; default: the label file's "file_ending",
    else .nii.gz). A GT case without prediction raises MaleniaError naming it unless
    `allow_missing`: then it gets rows with empty == "missing" and no numbers, excluded from the
    means and listed in the summary. Spacing comes from the GT image.

    Partially labelled data: with `annotated` (default: the annotated_labels.json beside
    `label_file`, if any), a (case, label) pair whose source dataset does not annotate the label
    gets a row with empty == "not annotated" and no numbers: an unlabelled liver in a lung case is
    no false positive. Cases the file does not list are scored for every label.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for what, folder in (("prediction", pred_dir), ("ground truth", gt_dir)):
        if not folder.is_dir():
            raise MaleniaError(f"{folder}: {what} folder not found")
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise MaleniaError(f"--tolerance-mm must be a finite number >= 0, got {tolerance_mm}")
    if num_processes < 1:
        raise MaleniaError(f"-np must be at least 1, got {num_processes}")
    file_labels = load_label_file(label_file) if label_file else None
    if file_ending is None and label_file:
        file_ending = json.loads(Path(label_file).read_text(encoding="utf-8")).get("file_ending")
    file_ending = file_ending or DEFAULT_FILE_ENDING
    if annotated is None and label_file:
        annotated = find_annotated_labels(Path(label_file).parent)

    gt_cases = list_cases(gt_dir, file_ending)
    if not gt_cases:
        raise MaleniaError(f"{gt_dir}: no ground-truth label maps named CASE{file_ending}")
    pred_cases = list_cases(pred_dir, file_ending)
    missing = [c for c in gt_cases if c not in pred_cases]
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
        raise MaleniaError(f"{pred_dir}: no prediction for case{'s' if len(missing) > 1 else ''} {shown} "
                           f"(expected CASE{file_ending}); pass --allow-missing to report them and go on")
    extra = sorted(c for c in pred_cases if c not in gt_cases)

    selected = resolve_labels(labels, file_labels) if labels else None
    names = {v: n for n, v in (file_labels or {}).items() if isinstance(v, int)}
    jobs = [(c, str(gt_cases[c]), str(pred_cases[c]), selected, names, float(tolerance_mm), float(both_empty))
            for c in gt_cases if c in pred_cases]
    results: dict[str, list[dict]] = {}
    bar = _progress(len(jobs), progress)
    try:
        if num_processes == 1 or len(jobs) <= 1:
            for job in jobs:
                results[job[0]] = _case_job(job)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(num_processes, len(jobs)), initializer=_worker_init) as pool:
                for job, case_rows in zip(jobs, pool.imap(_case_job, jobs)):
                    results[job[0]] = case_rows
                    bar.update(1)
    finally:
        bar.close()

    if selected is None:  # default: every label present in any GT case, in value order
        gt_values = {r["value"] for case_rows in results.values() for r in case_rows if r["gt_voxels"]}
        selected = resolve_labels(None, file_labels, gt_values)
        if not selected:
            raise MaleniaError(f"{gt_dir}: the ground truth holds no label other than 0; pass --labels")

    rows: list[dict] = []
    for case in gt_cases:
        if case not in results:
            rows.extend({"case": case, "label": name, "value": value, "dsc": math.nan, "nsd": math.nan,
                         "gt_voxels": None, "pred_voxels": None, "empty": MISSING} for name, value in selected.items())
            continue
        by_name = {r["label"]: r for r in results[case]}
        for name, value in selected.items():
            if annotated is not None and isinstance(value, int) and not annotated.annotates(case, value):
                rows.append({"case": case, "label": name, "value": value, "dsc": math.nan, "nsd": math.nan,
                             "gt_voxels": None, "pred_voxels": None, "empty": NOT_ANNOTATED})
                continue
            # a label absent from both masks of this case was not computed: both empty by definition
            rows.append(by_name.get(name) or {"case": case, "label": name, "value": value, "dsc": float(both_empty),
                                              "nsd": float(both_empty), "gt_voxels": 0, "pred_voxels": 0,
                                              "empty": BOTH_EMPTY})
    summary = summarize(rows, selected, tolerance_mm=tolerance_mm, both_empty=both_empty)
    summary.update({
        "prediction_folder": str(pred_dir), "ground_truth_folder": str(gt_dir),
        "label_file": str(label_file) if label_file else None, "file_ending": file_ending,
        "n_cases": len(gt_cases), "missing_cases": missing, "extra_predictions": extra,
        "annotated_labels": annotated.path if annotated is not None else None,
    })
    return EvaluationResult(rows=rows, summary=summary, labels=selected)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="evaluate", unit="case", disable=not enabled, leave=False)


def _stats(values: list[float]) -> dict:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    arr = np.asarray(finite, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize(rows: Sequence[Mapping], labels: Mapping[str, Any], tolerance_mm: float = DEFAULT_TOLERANCE_MM,
              both_empty: float = 1.0) -> dict:
    """Per-label mean/std/n of DSC and NSD (NaN and missing excluded), convention counts, and the overall mean.

    The overall mean is the mean of the per-label means (each label weighs the same, as nnU-Net's
    foreground mean); std is the population standard deviation over cases.
    """
    per_label: dict[str, dict] = {}
    # "not annotated" is counted only on partially labelled data: fully labelled summaries stay as they were
    kinds = (*EMPTY_KINDS, *UNSCORED) if any(r["empty"] == NOT_ANNOTATED for r in rows) else (*EMPTY_KINDS, MISSING)
    for name, value in labels.items():
        mine = [r for r in rows if r["label"] == name]
        counts = {kind: sum(r["empty"] == kind for r in mine) for kind in kinds}
        counts["evaluated"] = sum(r["empty"] not in UNSCORED for r in mine)
        per_label[name] = {"value": list(value) if isinstance(value, tuple) else value,
                           **{m: _stats([float(r[m]) for r in mine if r["empty"] not in UNSCORED]) for m in METRICS},
                           "counts": counts}
    overall = {}
    for m in METRICS:
        means = [s[m]["mean"] for s in per_label.values() if s[m]["mean"] is not None]
        overall[m] = float(np.mean(means)) if means else None
    totals = {kind: sum(s["counts"][kind] for s in per_label.values()) for kind in (*kinds, "evaluated")}
    both = "NaN (excluded from means)" if math.isnan(both_empty) else f"{both_empty:g}"
    return {"tolerance_mm": float(tolerance_mm), "both_empty": None if math.isnan(both_empty) else float(both_empty),
            "convention": CONVENTION.format(both=both), "nsd_implementation": _implementation(),
            "labels": per_label, "mean": overall, "counts": totals}


def _implementation() -> str:
    try:
        from importlib.metadata import version

        return f"{REFERENCE}; monai {version('monai')}"
    except Exception:  # noqa: BLE001 - metadata is informative only
        return REFERENCE


# --------------------------------------------------------------------------- output


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, tuple):
        return "+".join(str(v) for v in value)
    return str(value)


def write_csv(rows: Sequence[Mapping], target: str | Path) -> Path:
    with atomic_path(target) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                writer.writerow([_csv_value(row[c]) for c in CSV_COLUMNS])
    return Path(target)


def _fmt(stats: Mapping) -> str:
    return "n/a" if stats["mean"] is None else f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def markdown_table(summary: Mapping) -> str:
    """The summary as a markdown table: one row per label, then the mean over labels."""
    both = "NaN, excluded" if summary["both_empty"] is None else f"{summary['both_empty']:g}"
    lines = [
        f"NSD tolerance {summary['tolerance_mm']:g} mm; empty masks: both empty -> {both}, "
        f"only one empty -> 0 (Metrics Reloaded). Mean ± std over cases.",
        "",
        "| label | value | n | DSC | NSD | both empty | GT empty | pred empty | missing |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, s in summary["labels"].items():
        value = "+".join(map(str, s["value"])) if isinstance(s["value"], list) else s["value"]
        c = s["counts"]
        lines.append(f"| {name} | {value} | {s['dsc']['n']} | {_fmt(s['dsc'])} | {_fmt(s['nsd'])} | "
                     f"{c[BOTH_EMPTY]} | {c[GT_EMPTY]} | {c[PRED_EMPTY]} | {c[MISSING]} |")
    mean = summary["mean"]
    cell = {m: "n/a" if mean[m] is None else f"**{mean[m]:.4f}**" for m in METRICS}
    t = summary["counts"]
    lines.append(f"| **mean over labels** | | | {cell['dsc']} | {cell['nsd']} | "
                 f"{t[BOTH_EMPTY]} | {t[GT_EMPTY]} | {t[PRED_EMPTY]} | {t[MISSING]} |")
    if summary.get("missing_cases"):
        lines += ["", f"Cases without prediction (not in the means): {', '.join(summary['missing_cases'])}"]
    if t.get(NOT_ANNOTATED):
        lines += ["", f"{t[NOT_ANNOTATED]} (case, label) pairs are left out: the case's source dataset does not "
                      "annotate the label (annotated_labels.json)."]
    return "\n".join(lines) + "\n"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_outputs(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """metrics.csv, summary.json and summary.md in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "metrics.csv", "json": out_dir / "summary.json", "md": out_dir / "summary.md"}
    write_csv(result.rows, paths["csv"])
    write_json_atomic(paths["json"], _json_safe(result.summary))
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(markdown_table(result.summary), encoding="utf-8")
    return paths

