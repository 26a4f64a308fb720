"""Fold-wise benchmark tables in the paper's form: per class DSC and NSD, mean +- std over folds.

Two sources per trained model and fold:
- cross-validation: nnU-Net's own final-validation predictions (`fold_K/validation`) against the
  preprocessed ground truth (`gt_segmentations`), in the model's training labels;
- test set: the dataset's `imagesTs` predicted by that fold alone (Malenia models through the
  zero-shot predictor with their knowledge table, so unseen rows are predicted; other trainers
  through nnU-Net's predictor), scored against `labelsTs` with the label list of
  `dataset_test.json` (else `dataset.json`). Labels are matched by name, so a model trained on
  another dataset (e.g. a supervised upper bound with the unseen diseases labelled) is scored on
  the same cases.
Per fold a class scores the mean over cases (both-empty cases left out); the table gives mean +-
std of those over folds, seen and unseen classes apart. On a merged, partially labelled dataset
(`annotated_labels.json` in the raw folder) a case is not scored on labels its source does not annotate.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.evaluation.case_presence import label_volumes, labels_present, presence_auroc, report_scores
from nnunetv2_malenia.errors import MaleniaError

SEEN, UNSEEN, ORGAN, OTHER = "seen", "unseen", "organ", "other"
GROUP_TITLES = {SEEN: "seen lesion classes", UNSEEN: "unseen lesion classes (zero-shot)", ORGAN: "organs",
                OTHER: "other labels"}


@dataclass(frozen=True)
class ModelEntry:
    """One `-tr` argument: TRAINER (trained on the benchmark's dataset) or ID/TRAINER (another dataset's)."""

    spec: str
    dataset: str
    trainer: str
    folder: Path

    @property
    def is_malenia(self) -> bool:
        plans = self.folder / "plans.json"
        return plans.is_file() and "malenia" in json.loads(plans.read_text())

    @property
    def slug(self) -> str:
        return self.spec.replace("/", "_")


def _nnunet_path(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise MaleniaError(f"${variable} is not set; export it (see `malenia env`)")
    return Path(value)


def dataset_name(dataset: str | int) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(str(dataset))
    except RuntimeError as e:
        raise MaleniaError(f"dataset {dataset}: not found in $nnUNet_raw, $nnUNet_preprocessed or $nnUNet_results "
                           f"({str(e).splitlines()[0]})") from None


def resolve_entry(spec: str, default_dataset: str, plans: str, configuration: str) -> ModelEntry:
    dataset, _, trainer = spec.rpartition("/")
    name = dataset_name(dataset) if dataset else default_dataset
    folder = _nnunet_path("nnUNet_results") / name / f"{trainer}__{plans}__{configuration}"
    if not (folder / "plans.json").is_file():
        raise MaleniaError(f"-tr {spec}: no trained model at {folder}; train it with nnUNetv2_train "
                           f"{name.split('_')[0][7:]} {configuration} FOLD -tr {trainer}")
    return ModelEntry(spec, name, trainer, folder)


@dataclass
class ClassScore:
    """One class of one model in one source: the per-fold means of DSC and NSD."""

    label: str
    group: str
    dsc: dict[int | str, float] = field(default_factory=dict)
    nsd: dict[int | str, float] = field(default_factory=dict)

    @staticmethod
    def stats(values: dict) -> tuple[float, float, int]:
        finite = [v for v in values.values() if v is not None and not math.isnan(v)]
        if not finite:
            return math.nan, math.nan, 0
        return float(np.mean(finite)), float(np.std(finite)), len(finite)


def label_groups(label_file: dict, lesion_labels: Sequence[int] = ()) -> dict[str, str]:
    """{label name: group} from a dataset_test.json (seen/unseen diseases, organs) or a dataset.json."""
    groups = {}
    seen, unseen = label_file.get("seen_diseases", {}), label_file.get("unseen_diseases", {})
    organs = set(label_file.get("organ_labels", {}))
    malenia = label_file.get("malenia", {})
    lesion_values = set(lesion_labels) | set(malenia.get("lesion_labels", []))
    for name, value in label_file["labels"].items():
        if name == "background" or value == 0:
            continue
        if name in unseen:
            groups[name] = UNSEEN
        elif name in seen or (isinstance(value, int) and value in lesion_values):
            groups[name] = SEEN
        elif name in organs or (lesion_values and isinstance(value, int)):
            groups[name] = ORGAN
        else:
            groups[name] = OTHER
    return groups


def remap_labels(source: Path, target: Path, pred_labels: dict[str, int], gt_labels: dict[str, int],
                 file_ending: str, vote_lesions: Sequence[str] = (), min_lesion_ml: float = 0.0) -> None:
    """Copy the label maps of `source` into `target`, renumbered from pred_labels to gt_labels by name.

    A predicted label the ground truth does not name (e.g. "unknown lesion") gets a value above all
    of the ground truth's, so it never counts as any of them. With `vote_lesions` (label names),
    every connected lesion of those labels then takes its majority label (lesion_vote.py), and one
    smaller than `min_lesion_ml` (millilitres, from each image's spacing) is no lesion.
    """
    import SimpleITK as sitk

    from nnunetv2_malenia.evaluation.lesion_vote import one_disease_per_lesion

    spare = max(v for v in gt_labels.values() if isinstance(v, int)) + 1
    lut = {}
    for name, value in sorted(pred_labels.items(), key=lambda kv: kv[1]):
        if name in gt_labels:
            lut[value] = gt_labels[name]
        else:
            lut[value], spare = spare, spare + 1
    target.mkdir(parents=True, exist_ok=True)
    identity = all(k == v for k, v in lut.items())
    # the vote also counts labels the ground truth does not name ("unknown lesion"): a lesion is one finding
    vote_values = set()
    if vote_lesions:
        vote_values = ({gt_labels[n] for n in vote_lesions if n in gt_labels} |
                       {lut[v] for n, v in pred_labels.items() if n not in gt_labels and n != "background"})
    for path in sorted(source.glob(f"*{file_ending}")):
        if identity and not vote_values:
            shutil.copyfile(path, target / path.name)
            continue
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
        table = np.arange(max(int(array.max()), max(lut)) + 1, dtype=np.int32)
        for value, new in lut.items():
            table[value] = new
        mapped = table[array]
        if vote_values:
            min_voxels = int(np.ceil(min_lesion_ml * 1000.0 / float(np.prod(image.GetSpacing())))) if min_lesion_ml > 0 else 0
            mapped = one_disease_per_lesion(mapped, vote_values, min_voxels)
        out = sitk.GetImageFromArray(mapped.astype(np.uint8 if table.max() < 256 else np.uint16))
        out.CopyInformation(image)
        partial = target / f".partial.{path.name}"  # keeps the ending: SimpleITK picks the writer by it
        sitk.WriteImage(out, str(partial), useCompression=True)
        partial.replace(target / path.name)


def predict_test_set(entry: ModelEntry, fold: int | str, images: Path, out: Path, device: str, tta: bool,
                     table: str | None, unknown_threshold: float, checkpoint: str,
                     overlays: bool = False) -> tuple[dict[str, int], float]:
    """Predict `images` with one fold of one model into `out` (skipped when complete); (output labels, seconds)."""
    import torch

    record = out / "prediction.json"
    expected = sorted(p.name[: -len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("cases") == expected and saved.get("table") == table:
            return saved["labels"], saved["seconds"]
    torch_device = torch.device(device)
    kwargs = dict(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta, perform_everything_on_device=device == "cuda",
                  device=torch_device, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    start = time.perf_counter()
    if entry.is_malenia:
        from nnunetv2_malenia.inference.zero_shot_predictor import ZeroShotPredictor
        from nnunetv2_malenia.knowledge import load_knowledge_table

        predictor = ZeroShotPredictor(**kwargs)
        predictor.initialize_from_trained_model_folder(str(entry.folder), [fold], checkpoint)
        labels = predictor.install_table(load_knowledge_table(table) if table else predictor.model.table,
                                         unknown_threshold=unknown_threshold)
        predictor.predict_folder(images, out, overwrite=True, overlays=overlays)
    else:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        predictor = nnUNetPredictor(**kwargs)
        predictor.initialize_from_trained_model_folder(str(entry.folder), [fold], checkpoint)
        out.mkdir(parents=True, exist_ok=True)
        predictor.predict_from_files_sequential(str(images), str(out), save_probabilities=False, overwrite=True)
        labels = dict(predictor.dataset_json["labels"])
    seconds = time.perf_counter() - start
    write_json_atomic(record, {"cases": expected, "table": table, "labels": labels, "seconds": seconds})
    return labels, seconds


def _fold_means(summary: dict) -> tuple[dict[str, float], dict[str, float]]:
    dsc, nsd = {}, {}
    for name, stats in summary["labels"].items():
        dsc[name] = math.nan if stats["dsc"]["mean"] is None else stats["dsc"]["mean"]
        nsd[name] = math.nan if stats["nsd"]["mean"] is None else stats["nsd"]["mean"]
    return dsc, nsd


@dataclass
class BenchmarkResult:
    entries: list[str]
    folds: list[int | str]
    scores: dict[str, dict[str, dict[str, ClassScore]]]  # source -> entry -> label -> score
    timings: dict[str, dict[str, float]]  # entry -> {"predict_s": ...}
    tolerance_mm: float
    rows: list[dict]
    lesion_vote: bool = True   # test-set maps scored after one_disease_per_lesion
    min_lesion_ml: float = 0.0  # with the vote: smaller predicted lesions are not findings
    # entry -> disease -> fold -> AUROC of case-level presence on the test set (case_presence.py)
    presence: dict[str, dict[str, dict]] = field(default_factory=dict)


def run_benchmark(dataset: str | int, trainers: Sequence[str], folds: Sequence[int | str], output: Path,
                  configuration: str = "3d_fullres", plans: str = "nnUNetPlans", table: str | None = None,
                  device: str = "cpu", tta: bool = True, tolerance_mm: float = 2.0, unknown_threshold: float = 0.0,
                  checkpoint: str = "checkpoint_final.pth", test: bool = True, cross_validation: bool = True,
                  overlays: bool = False, lesion_vote: bool = True, min_lesion_ml: float = 0.0,
                  log: Callable[[str], None] = print) -> BenchmarkResult:
    """Score `trainers` (TRAINER or ID/TRAINER) on `folds`; writes benchmark.md/csv/json/png into `output`.

    `lesion_vote`: test-set label maps are scored after one_disease_per_lesion (lesion_vote.py), with
    predicted lesions under `min_lesion_ml` millilitres given to their surroundings."""
    from nnunetv2_malenia.datasets.annotated_labels import find_annotated_labels
    from nnunetv2_malenia.evaluation.evaluate_folder import evaluate_folders

    name = dataset_name(dataset)
    entries = [resolve_entry(spec, name, plans, configuration) for spec in trainers]
    raw = _nnunet_path("nnUNet_raw") / name
    images, gt_test = raw / "imagesTs", raw / "labelsTs"
    annotated = find_annotated_labels(raw)  # partially labelled cases: only their source's labels are scored
    test_label_path = raw / "dataset_test.json" if (raw / "dataset_test.json").is_file() else raw / "dataset.json"
    if test and not (images.is_dir() and gt_test.is_dir() and any(gt_test.iterdir())):
        raise MaleniaError(f"{raw}: no imagesTs/labelsTs to benchmark the test set on; pass --no-test")
    for entry in entries:
        for fold in folds:
            if not (entry.folder / f"fold_{fold}" / checkpoint).is_file():
                raise MaleniaError(f"{entry.folder / f'fold_{fold}' / checkpoint}: missing; train fold {fold} of "
                                   f"{entry.trainer} or leave it out of --folds")
    output.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[str, dict[str, ClassScore]]] = {"cv": {}, "test": {}}
    timings: dict[str, dict[str, float]] = {}
    rows: list[dict] = []

    def collect(source: str, entry: ModelEntry, fold, summary: dict, groups: dict[str, str]) -> None:
        dsc, nsd = _fold_means(summary)
        per_label = scores[source].setdefault(entry.spec, {})
        for label in dsc:
            score = per_label.setdefault(label, ClassScore(label, groups.get(label, OTHER)))
            score.dsc[fold], score.nsd[fold] = dsc[label], nsd[label]
            rows.append({"source": source, "model": entry.spec, "fold": fold, "label": label,
                         "group": score.group, "dsc": dsc[label], "nsd": nsd[label]})

    test_labels = json.loads(test_label_path.read_text()) if test else {}
    presence: dict[str, dict[str, dict]] = {}
    truth = labels_present(gt_test, {v: n for n, v in test_labels["labels"].items()},
                           test_labels.get("file_ending", ".nii.gz")) if test else {}
    for entry in entries:
        model_dataset = json.loads((entry.folder / "dataset.json").read_text())
        ending = model_dataset.get("file_ending", ".nii.gz")
        for fold in folds:
            if cross_validation:
                val = entry.folder / f"fold_{fold}" / "validation"
                gt = _nnunet_path("nnUNet_preprocessed") / entry.dataset / "gt_segmentations"
                if entry.dataset == name and val.is_dir() and any(val.glob(f"*{ending}")):
                    log(f"{entry.spec} fold {fold}: cross-validation predictions")
                    groups = label_groups(model_dataset)
                    result = evaluate_folders(val, gt, labels=sorted(groups), label_file=entry.folder / "dataset.json",
                                              tolerance_mm=tolerance_mm, both_empty=math.nan, progress=False,
                                              allow_missing=True,  # the other folds' cases
                                              annotated=annotated)
                    collect("cv", entry, fold, result.summary, groups)
            if test:
                target = output / "predictions" / entry.slug / f"fold_{fold}"
                log(f"{entry.spec} fold {fold}: predicting {images}")
                pred_labels, seconds = predict_test_set(entry, fold, images, target / "raw", device, tta, table,
                                                        unknown_threshold, checkpoint, overlays)
                timings.setdefault(entry.spec, {})[f"predict_s_fold_{fold}"] = seconds
                groups = label_groups(test_labels)
                lesions = [n for n, g in groups.items() if g in (SEEN, UNSEEN)]
                lesion_names = lesions or sorted(groups)
                remap_labels(target / "raw", target / "labels", pred_labels, test_labels["labels"],
                             test_labels.get("file_ending", ".nii.gz"), vote_lesions=lesions if lesion_vote else (),
                             min_lesion_ml=min_lesion_ml)
                result = evaluate_folders(target / "labels", gt_test, labels=lesion_names, label_file=test_label_path,
                                          tolerance_mm=tolerance_mm, both_empty=math.nan, progress=False)
                collect("test", entry, fold, result.summary, groups)
                case_scores = report_scores(target / "raw") if entry.is_malenia else \
                    label_volumes(target / "labels", {n: test_labels["labels"][n] for n in lesions},
                                  test_labels.get("file_ending", ".nii.gz"))
                for disease, auroc in presence_auroc(case_scores, truth, lesions).items():
                    presence.setdefault(entry.spec, {}).setdefault(disease, {})[fold] = auroc
    result = BenchmarkResult([e.spec for e in entries], list(folds), scores, timings, tolerance_mm, rows,
                             lesion_vote and test, min_lesion_ml if lesion_vote and test else 0.0, presence)
    write_outputs(result, output)
    return result


# ----------------------------------------------------------------------------------------- output
def _cell(score: ClassScore | None, metric: str) -> str:
    if score is None:
        return "-"
    mean, std, n = ClassScore.stats(getattr(score, metric))
    if n == 0:
        return "n/a"
    return f"{100 * mean:.1f}" if n == 1 else f"{100 * mean:.1f} ± {100 * std:.1f}"


def markdown(result: BenchmarkResult) -> str:
    lines = [f"Folds {', '.join(map(str, result.folds))}; DSC and NSD@{result.tolerance_mm:g}mm in %, mean ± std "
             "over folds of the per-fold mean over cases (cases where a class is absent from both the ground "
             "truth and the prediction are left out)." +
             (" Test set: each connected lesion takes its majority disease label before scoring (one disease "
              "per lesion; --voxelwise scores the raw label maps)." if result.lesion_vote else "") +
             (f" Predicted lesions under {result.min_lesion_ml:g} ml are not findings (--min-lesion-ml)."
              if result.min_lesion_ml > 0 else "")]
    for source, title in (("test", "Test set (imagesTs)"), ("cv", "Cross-validation (nnU-Net's fold validation)")):
        models = [m for m in result.entries if m in result.scores[source]]
        if not models:
            continue
        lines += ["", f"### {title}", "", "| class | " + " | ".join(f"{m} DSC | {m} NSD" for m in models) + " |",
                  "|---|" + "---|---|" * len(models)]
        labels: dict[str, str] = {}
        for m in models:
            for label, score in result.scores[source][m].items():
                labels.setdefault(label, score.group)
        for group in (SEEN, UNSEEN, ORGAN, OTHER):
            names = [label for label, g in labels.items() if g == group]
            if not names:
                continue
            if group in (ORGAN, OTHER):  # organs: one mean row keeps the lesion table readable
                cells = []
                for m in models:
                    for metric in ("dsc", "nsd"):
                        values = [ClassScore.stats(getattr(result.scores[source][m][n], metric))[0]
                                  for n in names if n in result.scores[source][m]]
                        values = [v for v in values if not math.isnan(v)]
                        cells.append(f"{100 * np.mean(values):.1f}" if values else "n/a")
                lines.append(f"| *{GROUP_TITLES[group]} (mean of {len(names)})* | " + " | ".join(cells) + " |")
                continue
            lines.append(f"| **{GROUP_TITLES[group]}** |" + " |" * (2 * len(models)))
            for label in names:
                cells = [_cell(result.scores[source][m].get(label), metric) for m in models for metric in ("dsc", "nsd")]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            mean_cells = []
            for m in models:
                for metric in ("dsc", "nsd"):
                    mean_cells.append(_group_mean(result, source, m, names, metric))
            lines.append(f"| *mean* | " + " | ".join(mean_cells) + " |")
    lines += presence_markdown(result)
    if result.timings:
        lines += ["", "Prediction time of the test set (s, per fold): " + "; ".join(
            f"{m}: " + ", ".join(f"{v:.0f}" for v in t.values()) for m, t in result.timings.items())]
    return "\n".join(lines) + "\n"


def presence_markdown(result: BenchmarkResult) -> list[str]:
    """The case-level presence table: per disease and model, AUROC (mean ± std over folds)."""
    models = [m for m in result.entries if m in result.presence]
    if not models:
        return []
    group_of = {}
    for m in models:
        for label, score in result.scores.get("test", {}).get(m, {}).items():
            group_of.setdefault(label, score.group)
    lines = ["", "### Case-level presence (test set, AUROC in %)", "",
             "A case is positive for a disease when its ground truth holds the disease's label. Score: for "
             "Malenia models the case's `case_scores` (strongest token's objectness x p(disease | token)); for "
             "other models the predicted volume of the label.", "",
             "| disease | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]

    def cell(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "n/a"
        return f"{100 * np.mean(values):.1f}" + (f" ± {100 * np.std(values):.1f}" if len(values) > 1 else "")

    for group in (SEEN, UNSEEN, OTHER, ORGAN):
        names = [d for d in result.presence[models[0]] if group_of.get(d, OTHER) == group]
        if not names:
            continue
        lines.append(f"| **{GROUP_TITLES[group]}** |" + " |" * len(models))
        for disease in names:
            lines.append(f"| {disease} | " + " | ".join(cell(list(result.presence[m].get(disease, {}).values()))
                                                     for m in models) + " |")
        means = []
        for m in models:  # per fold, the mean over the group's diseases; then mean ± std over folds
            per_fold = [np.nanmean([result.presence[m][d].get(f, math.nan) for d in names]) if
                        any(not math.isnan(result.presence[m][d].get(f, math.nan)) for d in names) else math.nan
                        for f in result.folds]
            means.append(cell(per_fold))
        lines.append("| *mean* | " + " | ".join(means) + " |")
    return lines


def group_means(result: BenchmarkResult, source: str, model: str, names: Sequence[str], metric: str) -> list[float]:
    """Per fold, the mean over `names` of the class scores (a class with no score in a fold is left out)."""
    per_fold = []
    for fold in result.folds:
        values = [getattr(result.scores[source][model][n], metric).get(fold, math.nan)
                  for n in names if n in result.scores[source][model]]
        values = [v for v in values if not math.isnan(v)]
        if values:
            per_fold.append(float(np.mean(values)))
    return per_fold


def _group_mean(result: BenchmarkResult, source: str, model: str, names: Sequence[str], metric: str) -> str:
    per_fold = group_means(result, source, model, names, metric)
    if not per_fold:
        return "n/a"
    mean = 100 * float(np.mean(per_fold))
    return f"*{mean:.1f}*" if len(per_fold) == 1 else f"*{mean:.1f} ± {100 * float(np.std(per_fold)):.1f}*"


def summary_json(result: BenchmarkResult) -> dict:
    out: dict = {"folds": result.folds, "tolerance_mm": result.tolerance_mm, "lesion_vote": result.lesion_vote,
                 "timings": result.timings, "sources": {},
                 "case_presence_auroc": {m: {d: {str(f): (None if math.isnan(v) else v) for f, v in per_fold.items()}
                                             for d, per_fold in per_disease.items()}
                                         for m, per_disease in result.presence.items()}}
    for source, models in result.scores.items():
        out["sources"][source] = {}
        for model, per_label in models.items():
            groups: dict[str, list[str]] = {}
            for label, score in per_label.items():
                groups.setdefault(score.group, []).append(label)
            out["sources"][source][model] = {
                "classes": {label: {"group": s.group, **{m: dict(zip(("mean", "std", "n"), ClassScore.stats(getattr(s, m))))
                                                        for m in ("dsc", "nsd")}} for label, s in per_label.items()},
                "groups": {g: {m: _mean_std(group_means(result, source, model, names, m)) for m in ("dsc", "nsd")}
                           for g, names in groups.items()},
            }
    return out


def _mean_std(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def plot(result: BenchmarkResult, path: Path, source: str = "test") -> Path | None:
    """Bar plot of test DSC per lesion class and model (error bars: std over folds), seen | unseen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in result.entries if m in result.scores[source]]
    if not models:
        return None
    labels: dict[str, str] = {}
    for m in models:
        for label, score in result.scores[source][m].items():
            if score.group in (SEEN, UNSEEN):
                labels.setdefault(label, score.group)
    order = [n for n, g in labels.items() if g == SEEN] + [n for n, g in labels.items() if g == UNSEEN]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(order) + 2), 4.4))
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        stats = [ClassScore.stats(result.scores[source][m][n].dsc) if n in result.scores[source][m]
                 else (math.nan, math.nan, 0) for n in order]
        xs = [x + (i - (len(models) - 1) / 2) * width for x in range(len(order))]
        ax.bar(xs, [0 if math.isnan(s[0]) else s[0] for s in stats], width,
               yerr=[0 if math.isnan(s[1]) else s[1] for s in stats], label=m, capsize=2)
    n_seen = sum(labels[n] == SEEN for n in order)
    if 0 < n_seen < len(order):
        ax.axvline(n_seen - 0.5, color="k", lw=0.8, ls="--")
        ax.text(n_seen - 0.4, 1.02, "unseen (zero-shot) →", fontsize=8, va="bottom")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("DSC (mean over cases)")
    ax.grid(axis="y", alpha=0.3)
    # outside the axes: inside, it covered the tallest bars and the "unseen" mark
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    folds = f"fold{'s' if len(result.folds) > 1 else ''} {', '.join(map(str, result.folds))}"
    ax.set_title(f"Test-set DSC per lesion class, {folds}")
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial.png")
    fig.savefig(partial, dpi=110, bbox_inches="tight")
    plt.close(fig)
    partial.replace(path)
    return path


def write_outputs(result: BenchmarkResult, output: Path) -> dict[str, Path]:
    paths = {"md": output / "benchmark.md", "csv": output / "benchmark.csv", "json": output / "benchmark.json",
             "png": output / "benchmark.png"}
    partial = paths["md"].with_suffix(".md.partial")
    partial.write_text(markdown(result))
    partial.replace(paths["md"])
    partial = paths["csv"].with_suffix(".csv.partial")
    with open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["source", "model", "fold", "label", "group", "dsc", "nsd"])
        writer.writeheader()
        writer.writerows(result.rows)
    partial.replace(paths["csv"])
    write_json_atomic(paths["json"], summary_json(result))
    plot(result, paths["png"])
    return paths
