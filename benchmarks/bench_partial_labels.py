"""Partial labels (issue 15): one model on several partially labelled datasets, on the CPU tier.

Does the partial-label (marginal) loss let one model learn from datasets that each label only some
classes, as well as from fully labelled data? One run, everything sequential on the CPU:

1. `--stage data` (seconds). The training cases of the CPU tier's Dataset905_MaleniaZS (made by
   `malenia synth -d 905 --name MaleniaZS --preset cpu` if WORKDIR has none; `--source-dataset` for
   another) are dealt round robin (sorted case ids, case i -> source i mod 3) into three raw
   "source" datasets 921-923 (Dataset92X_MaleniaPartialSrcA/B/C; `--first-id`). Each keeps only
   some organ systems: the labels of a dropped system are set to background (0) in its label maps
   and are not in its dataset.json, which numbers the kept labels 1..k (as separate datasets would);
   its lesion_attributes.json keeps only the kept lesions; images are hard-linked. A label's organ
   system comes from its name: liver (liver, hepatic, gallbladder), kidney (kidney, renal), spleen
   (spleen, splenic), lung (lung, pulmonary), pancreas, colon; a name matching none is kept by all.
   Split `--scheme two-of-three` (default; every class but colon is dropped by exactly one source,
   so each is annotated in 2/3 of the cases):
       source A (921) drops liver + pancreas:  keeps kidneys, kidney tumor, spleen, splenic cyst,
                                               splenic lymphoma, lungs, lung tumor, colon
       source B (922) drops kidney + spleen:   keeps liver, gallbladder, liver cyst, liver tumor,
                                               lungs, lung tumor, pancreas, colon
       source C (923) drops lung:              keeps everything but right/left lung and lung tumor
   `--scheme disjoint` (like the paper's MSD/KiTS mix: each system labelled by one source only):
       A keeps liver + pancreas + colon, B kidney + spleen + colon, C lung + colon.
   Colon is kept by every source: a control class. Then
       malenia merge-datasets -d 921 922 923 -o 924 --name MaleniaPartial
   unites the labels by name (renumbered: 924's numbers are not 905's) and writes
   annotated_labels.json. The case ids are 905's, so nnU-Net's default 5-fold split (sorted ids,
   seed 12345) gives 924 the same fold-0 training cases as 905 (checked and reported).
2. `--stage train`: `nnUNetv2_plan_and_preprocess -d 924 -c 3d_fullres --verify_dataset_integrity
   -np 2 -npfp 2` and `malenia cpu-config -d 924 --name 3d_cpu` (905 likewise if not yet done),
   then `nnUNetv2_train ID 3d_cpu 0 -tr TRAINER -device cpu`, one subprocess (and log) each, on the
   CPU recipe and schedule (nnunetv2_malenia.training.cpu_recipe):
       (a) partial: nnUNetTrainer_cpu_partial on 924 (benchmarks/trainers/: CpuRecipe + PartialLabels,
           reads annotated_labels.json: marginal Dice+CE)
       (b) naive:   nnUNetTrainer_cpu on 924 (ignores annotated_labels.json: unlabelled = background)
       (c) full:    nnUNetTrainer_cpu on 905 (the fully labelled data; the model bench_zero_shot.py
           trains, reused with --reuse when its schedule matches)
       (d) twothirds: nnUNetTrainer_cpu_twothirds on 905, trained on source A's and C's cases only
           (the control: the classes B drops see the same labelled lesions as in (a), and nothing
           unlabelled; (a)-(d) on them is the loss's part of (a)-(c), (d)-(c) the missing labels')
3. `--stage evaluate`: each model predicts 905's fully labelled test set
       nnUNetv2_predict -i .../Dataset905_MaleniaZS/imagesTs -o OUT -d ID -c 3d_cpu -f 0 -tr TRAINER
                        -device cpu -npp 0 -nps 0 --disable_tta
   (its own subprocess: wall time, peak RSS); the 924 models' label maps are renumbered into 905's
   labels by name (evaluation.benchmark.remap_labels; no lesion vote unless --min-lesion-ml), and
   every class of 905's dataset.json is scored per case against labelsTs with the project's evaluate_folders (DSC and
   NSD at --tolerance-mm; cases where the class is absent from both GT and prediction left out;
   the test set's unseen diseases are in the GT but scored for no model). Table: rows = classes,
   columns (a), (b), (c), (a)-(c), (b)-(c), which sources drop the class; the goal checks ((a)
   within 3 DSC points of (c) on every class; (b) worse on the classes some source drops; with (d),
   (a)-(d) and (d)-(c) on the classes source B drops); training
   and prediction wall time and peak RSS; whether (a)'s log shows the marginal loss and (b)'s not.

Results: WORKDIR/partial_labels/bench_partial_labels.md and .json (and data.json, predictions/,
per-model evaluation folders); logs in WORKDIR/logs. One training per model: docs/benchmarks.md
measured lesion classes moving by 15-28 DSC points between two runs of one trainer on this tier,
so read lesion-class differences of a few points as noise.

    python3 benchmarks/bench_partial_labels.py --workdir /work/zs_cpu --reuse
    python3 benchmarks/bench_partial_labels.py --workdir /work/zs_cpu --reuse --stage data
    python3 benchmarks/bench_partial_labels.py --workdir /work/zs_cpu --reuse --stage train --only partial

`--reuse` keeps the source datasets and the merge when they were made from the same source with the
same scheme, preprocessed data, trainings made with the same schedule, and predictions of the same
checkpoints; without it the data are rebuilt and all three models retrained.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_training as bt  # noqa: E402  (the shared run / train / timing helpers)

SOURCE_ID, SOURCE_NAME = 905, "MaleniaZS"   # the CPU tier's dataset, as bench_zero_shot.py makes it
FIRST_ID = 921
SOURCE_LETTERS = ("A", "B", "C")
MERGED_NAME = "MaleniaPartial"
CONFIGURATION = "3d_cpu"
TOLERANCE_MM = 2.0   # malenia benchmark's default NSD tolerance
GOAL_POINTS = 3.0    # issue 15: (a) within 3 DSC points of (c) on every class

# organ systems, matched on a label's lower-cased name, first match wins (gallbladder before liver)
SYSTEMS = (("liver", ("gallbladder", "liver", "hepatic")), ("kidney", ("kidney", "renal")),
           ("spleen", ("spleen", "splen")), ("lung", ("lung", "pulmonary")), ("pancreas", ("pancrea",)),
           ("colon", ("colon", "colorectal", "bowel")))
# per scheme: the organ systems each source (A, B, C) drops
SCHEMES = {
    "two-of-three": ({"liver", "pancreas"}, {"kidney", "spleen"}, {"lung"}),
    "disjoint": ({"kidney", "spleen", "lung"}, {"liver", "pancreas", "lung"}, {"liver", "pancreas", "kidney", "spleen"}),
}
# key -> (column title, dataset: "merged" or "source", trainer)
MODELS = {
    "partial": ("(a) partial-label loss", "merged", "nnUNetTrainer_cpu_partial"),
    "naive": ("(b) naive", "merged", "nnUNetTrainer_cpu"),
    "full": ("(c) fully labelled", "source", "nnUNetTrainer_cpu"),
    "twothirds": ("(d) fully labelled, sources A + C's cases", "source", "nnUNetTrainer_cpu_twothirds"),
}
MARGINAL_LOG_LINE = "partial labels (annotated_labels.json)"   # PartialLabels._build_loss's log line

COMMANDS: list[str] = []   # the commands this invocation ran


def run(cmd: list[str], env: dict, log: Path, cwd: Path) -> dict:
    COMMANDS.append(" ".join(cmd))
    return bt.run(cmd, env, log, cwd)


# ----- data --------------------------------------------------------------------------------------
def system_of(name: str) -> str:
    lowered = name.lower()
    for system, keys in SYSTEMS:
        if any(key in lowered for key in keys):
            return system
    return "other"


def find_raw(raw_root: Path, dataset_id: int) -> Path | None:
    found = sorted(raw_root.glob(f"Dataset{dataset_id:03d}_*")) if raw_root.is_dir() else []
    found = [f for f in found if f.is_dir()]
    if len(found) > 1:
        raise SystemExit(f"several raw datasets with id {dataset_id} in {raw_root}: {', '.join(f.name for f in found)}")
    return found[0] if found else None


def plan_split(source: Path, scheme: str, first_id: int) -> dict:
    """Which cases and labels each source dataset gets (a JSON-able description: also the reuse key)."""
    dataset = json.loads((source / "dataset.json").read_text())
    ending = dataset["file_ending"]
    labels = {name: int(value) for name, value in dataset["labels"].items() if int(value) != 0}
    cases = sorted(p.name[: -len(ending)] for p in (source / "labelsTr").glob(f"*{ending}"))
    if len(cases) < 3:
        raise SystemExit(f"{source}/labelsTr: {len(cases)} cases; at least 3 are needed (one per source)")
    sources = []
    for index, (letter, dropped_systems) in enumerate(zip(SOURCE_LETTERS, SCHEMES[scheme])):
        kept = [n for n, _ in sorted(labels.items(), key=lambda kv: kv[1]) if system_of(n) not in dropped_systems]
        dropped = [n for n, _ in sorted(labels.items(), key=lambda kv: kv[1]) if system_of(n) in dropped_systems]
        sources.append({"id": first_id + index, "name": f"Dataset{first_id + index:03d}_{MERGED_NAME}Src{letter}",
                        "letter": letter, "drops_systems": sorted(dropped_systems), "kept": kept, "dropped": dropped,
                        "cases": cases[index::3]})
    never = [n for n in labels if not any(n in s["kept"] for s in sources)]
    if never:
        raise SystemExit(f"scheme {scheme}: no source keeps {', '.join(never)}")
    return {"source_dataset": source.name, "scheme": scheme, "case_assignment": "sorted case ids, case i -> source i mod 3",
            "labels": labels, "systems": {n: system_of(n) for n in labels}, "sources": sources,
            "merged": {"id": first_id + 3, "name": f"Dataset{first_id + 3:03d}_{MERGED_NAME}"}}


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_source_dataset(source: Path, spec: dict, plan: dict, raw_root: Path) -> Path:
    """One partially labelled raw dataset, built in a hidden folder and renamed into place."""
    import SimpleITK as sitk
    import numpy as np

    dataset = json.loads((source / "dataset.json").read_text())
    ending = dataset["file_ending"]
    old = plan["labels"]
    new = {name: i + 1 for i, name in enumerate(spec["kept"])}   # kept labels renumbered 1..k, 905's order
    lut = np.zeros(max(old.values()) + 1, dtype=np.uint8)
    for name, value in new.items():
        lut[old[name]] = value
    target = raw_root / spec["name"]
    staging = raw_root / f".{spec['name']}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "imagesTr").mkdir(parents=True)
        (staging / "labelsTr").mkdir()
        for case in spec["cases"]:
            for channel in range(len(dataset["channel_names"])):
                name = f"{case}_{channel:04d}{ending}"
                link_or_copy(source / "imagesTr" / name, staging / "imagesTr" / name)
            image = sitk.ReadImage(str(source / "labelsTr" / f"{case}{ending}"))
            array = sitk.GetArrayFromImage(image).astype(np.int64)
            if array.min() < 0 or array.max() >= lut.size:
                raise SystemExit(f"{source}/labelsTr/{case}{ending}: label values outside dataset.json's labels")
            out = sitk.GetImageFromArray(lut[array])
            out.CopyInformation(image)
            sitk.WriteImage(out, str(staging / "labelsTr" / f"{case}{ending}"), useCompression=True)
        malenia = dict(dataset.get("malenia") or {})
        section = {}
        for key in ("organ_labels", "lesion_labels"):
            if key in malenia:
                names = {n for n, v in old.items() if v in {int(x) for x in malenia[key]}}
                section[key] = sorted(new[n] for n in names if n in new)
        table = malenia.get("knowledge_table")
        if table:   # the same table files in every source: merge-datasets needs one table for all
            for path in source.glob("*.yaml"):
                shutil.copyfile(path, staging / path.name)
            section["knowledge_table"] = table
        attributes_file = source / malenia.get("lesion_attributes", "lesion_attributes.json")
        if attributes_file.is_file():
            attributes = json.loads(attributes_file.read_text())
            by_old = {old[n]: new[n] for n in new}
            attributes["cases"] = {case: {str(by_old[int(label)]): record for label, record in
                                          attributes["cases"].get(case, {}).items() if int(label) in by_old}
                                   for case in spec["cases"] if case in attributes["cases"]}
            attributes["source"] = f"{attributes.get('source', '')} (bench_partial_labels.py: {spec['name']})".strip()
            (staging / "lesion_attributes.json").write_text(json.dumps(attributes, indent=1))
            section["lesion_attributes"] = "lesion_attributes.json"
        out_json = {
            "channel_names": dataset["channel_names"],
            "labels": {"background": 0, **new},
            "numTraining": len(spec["cases"]),
            "file_ending": ending,
            "name": spec["name"].split("_", 1)[1],
            "description": (f"bench_partial_labels.py: {len(spec['cases'])} training cases of {source.name} "
                            f"(scheme {plan['scheme']}, source {spec['letter']}); labels of the organ systems "
                            f"{', '.join(spec['drops_systems'])} ({', '.join(spec['dropped'])}) set to background."),
            **({"licence": dataset["licence"]} if "licence" in dataset else {}),
            **({"malenia": section} if section else {}),
        }
        (staging / "dataset.json").write_text(json.dumps(out_json, indent=1))
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def remove_owned(workdir: Path, plan: dict) -> None:
    """Delete this benchmark's datasets 921-924 (raw, preprocessed, results) before a rebuild;
    refuse when one of their ids is used by a dataset of another name."""
    owned = {s["id"]: s["name"] for s in plan["sources"]} | {plan["merged"]["id"]: plan["merged"]["name"]}
    for root in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = workdir / root
        for dataset_id, name in owned.items():
            for found in (folder.glob(f"Dataset{dataset_id:03d}_*") if folder.is_dir() else ()):
                if found.name != name:
                    raise SystemExit(f"{found}: dataset id {dataset_id} is taken by another dataset; pass --first-id")
                shutil.rmtree(found)
            for leftover in (folder.glob(f".Dataset{dataset_id:03d}_*.partial-*") if folder.is_dir() else ()):
                shutil.rmtree(leftover, ignore_errors=True)


def verify_merge(workdir: Path, plan: dict) -> dict:
    """The merged dataset against the plan: labels by name, annotated_labels.json, label values per case."""
    import SimpleITK as sitk
    import numpy as np

    merged = workdir / "nnUNet_raw" / plan["merged"]["name"]
    dataset = json.loads((merged / "dataset.json").read_text())
    annotated = json.loads((merged / "annotated_labels.json").read_text())
    labels = {n: int(v) for n, v in dataset["labels"].items() if int(v)}
    problems = []
    if set(labels) != set(plan["labels"]):
        problems.append(f"merged labels {sorted(labels)} != source labels {sorted(plan['labels'])}")
    if sorted(labels.values()) != list(range(1, len(labels) + 1)):
        problems.append(f"merged label values not consecutive: {sorted(labels.values())}")
    for spec in plan["sources"]:
        expected = sorted(labels[n] for n in spec["kept"])
        for case in spec["cases"]:
            if annotated["cases"].get(case) != expected:
                problems.append(f"annotated_labels.json: {case}: {annotated['cases'].get(case)} != {expected}")
                continue
            values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(
                str(merged / "labelsTr" / f"{case}{dataset['file_ending']}")))).tolist()) - {0}
            if not values <= set(expected):
                problems.append(f"labelsTr/{case}: values {sorted(values - set(expected))} its source does not annotate")
    if problems:
        raise SystemExit("merged dataset does not match the plan:\n  " + "\n  ".join(problems[:20]))
    n_cases = len(list((merged / "labelsTr").glob(f"*{dataset['file_ending']}")))
    return {"labels": labels, "num_cases": n_cases, "annotated_sources": annotated.get("sources", {}),
            "lesion_attributes": (merged / "lesion_attributes.json").is_file()}


def stage_data(workdir: Path, env: dict, args, output: Path) -> dict:
    raw_root = workdir / "nnUNet_raw"
    source = find_raw(raw_root, args.source_dataset)
    if source is None:
        if args.source_dataset != SOURCE_ID:
            raise SystemExit(f"no raw dataset {args.source_dataset} in {raw_root}")
        for folder in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
        run(["malenia", "synth", "-d", str(SOURCE_ID), "--name", SOURCE_NAME, "--preset", "cpu", "--seed",
             str(args.seed), "--output-root", str(raw_root)], env, workdir / "logs" / f"synth_{SOURCE_ID}.log", workdir)
        source = find_raw(raw_root, SOURCE_ID)
    plan = plan_split(source, args.scheme, args.first_id)
    record = output / "data.json"
    merged = raw_root / plan["merged"]["name"]
    if args.reuse and record.is_file() and json.loads(record.read_text()).get("plan") == plan and \
            (merged / "annotated_labels.json").is_file() and all((raw_root / s["name"]).is_dir() for s in plan["sources"]):
        print(f"reusing {', '.join(s['name'] for s in plan['sources'])} and {merged.name}", flush=True)
        return json.loads(record.read_text())
    remove_owned(workdir, plan)
    for spec in plan["sources"]:
        path = write_source_dataset(source, spec, plan, raw_root)
        print(f"wrote {path}: {len(spec['cases'])} cases, keeps {', '.join(spec['kept'])}; "
              f"drops {', '.join(spec['dropped']) or 'nothing'}", flush=True)
    run(["malenia", "merge-datasets", "-d", *[str(s["id"]) for s in plan["sources"]], "-o", str(plan["merged"]["id"]),
         "--name", MERGED_NAME], env, workdir / "logs" / f"merge_{plan['merged']['id']}.log", workdir)
    data = {"plan": plan, "merged": verify_merge(workdir, plan)}
    output.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(data, indent=1))
    print(data_table(data), flush=True)
    return data


def data_table(data: dict) -> str:
    plan, merged = data["plan"], data["merged"]
    letters = [s["letter"] for s in plan["sources"]]
    lines = [f"Scheme {plan['scheme']}: {plan['source_dataset']}'s training cases dealt round robin into "
             + ", ".join(f"{s['name']} ({len(s['cases'])} cases)" for s in plan["sources"])
             + f"; merged into {plan['merged']['name']} ({merged['num_cases']} cases).", "",
             f"| class | system | value in {plan['source_dataset'].split('_')[0]} | value in "
             f"{plan['merged']['name'].split('_')[0]} | " + " | ".join(f"source {x}" for x in letters) + " |",
             "|---|---|---|---|" + "---|" * len(letters)]
    for name, value in sorted(plan["labels"].items(), key=lambda kv: kv[1]):
        cells = " | ".join("kept" if name in s["kept"] else "**dropped**" for s in plan["sources"])
        lines.append(f"| {name} | {plan['systems'][name]} | {value} | {merged['labels'][name]} | {cells} |")
    return "\n".join(lines) + "\n"


# ----- training ----------------------------------------------------------------------------------
def ensure_preprocessed(workdir: Path, env: dict, dataset_id: int, name: str) -> None:
    pre = workdir / "nnUNet_preprocessed" / name
    if not ((pre / "nnUNetPlans.json").is_file() and (pre / "nnUNetPlans_3d_fullres").is_dir()):
        if pre.exists():
            shutil.rmtree(pre)
        run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "--verify_dataset_integrity",
             "-np", "2", "-npfp", "2"], env, workdir / "logs" / f"plan_and_preprocess_{dataset_id}.log", workdir)
    if CONFIGURATION not in json.loads((pre / "nnUNetPlans.json").read_text())["configurations"]:
        run(["malenia", "cpu-config", "-d", str(dataset_id), "--name", CONFIGURATION], env,
            workdir / "logs" / f"cpu_config_{dataset_id}.log", workdir)


def model_dataset(key: str, data: dict) -> tuple[int, str]:
    """(id, name without the DatasetXXX_ prefix) of the dataset model `key` trains on."""
    folder = data["plan"]["merged"]["name"] if MODELS[key][1] == "merged" else data["plan"]["source_dataset"]
    return int(folder[7:10]), folder.split("_", 1)[1]


def schedule_of(key: str, data: dict, args) -> dict:
    from nnunetv2_malenia.training.cpu_recipe import CpuRecipe

    # (c)'s schedule is bench_zero_shot.py's CPU-tier schedule, so its nnUNetTrainer_cpu is reused
    schedule = {"tier": "cpu", **CpuRecipe.cpu_schedule, "lr": CpuRecipe.cpu_lr, "n_proc_da": args.n_proc_da,
                "seed": args.seed}
    if MODELS[key][1] == "merged":
        schedule["partial_labels"] = {"source": data["plan"]["source_dataset"], "scheme": data["plan"]["scheme"]}
    return schedule


def stage_train(workdir: Path, env: dict, args, data: dict, keys: list[str]) -> None:
    for dataset in sorted({model_dataset(k, data) for k in keys}):
        ensure_preprocessed(workdir, env, dataset[0], f"Dataset{dataset[0]:03d}_{dataset[1]}")
    for key in keys:
        trainer = MODELS[key][2]
        dataset_id, name = model_dataset(key, data)
        result = bt.train(workdir, env, trainer, schedule_of(key, data, args), args.reuse, dataset_id, name,
                          CONFIGURATION)
        print(f"{MODELS[key][0]}: {dataset_id} {trainer}: {result['wall_s']:.0f} s, peak RSS "
              f"{result['peak_rss_mb']:.0f} MB", flush=True)


# ----- evaluation --------------------------------------------------------------------------------
def predict(workdir: Path, env: dict, key: str, data: dict, images: Path, out: Path, reuse: bool) -> dict | None:
    trainer = MODELS[key][2]
    dataset_id, name = model_dataset(key, data)
    fold = bt.fold_dir(workdir, trainer, dataset_id, name, CONFIGURATION)
    checkpoint = fold / "checkpoint_final.pth"
    if not checkpoint.is_file():
        print(f"skipping {MODELS[key][0]}: {checkpoint} missing (run --stage train)", flush=True)
        return None
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))
    record = out.parent / "prediction.json"
    key_now = {"checkpoint": str(checkpoint), "checkpoint_mtime": checkpoint.stat().st_mtime, "cases": cases}
    if reuse and record.is_file():
        saved = json.loads(record.read_text())
        if all(saved.get(k) == v for k, v in key_now.items()):
            print(f"reusing the predictions of {MODELS[key][0]} in {out}", flush=True)
            return saved
    shutil.rmtree(out, ignore_errors=True)
    timing = run(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", str(dataset_id), "-c", CONFIGURATION,
                  "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_tta"],
                 env, workdir / "logs" / f"predict_partial_labels_{key}.log", workdir)
    labels = json.loads((fold.parent / "dataset.json").read_text())["labels"]
    saved = {**key_now, "labels": labels, "wall_s": timing["wall_s"], "peak_rss_mb": timing["peak_rss_mb"]}
    record.write_text(json.dumps(saved, indent=1))
    return saved


def score(prediction: dict, raw_pred: Path, target: Path, gt: Path, test_labels_file: Path, classes: list[str],
          tolerance_mm: float, lesions: list[str] = (), min_lesion_ml: float = 0.0) -> dict:
    """Renumber a model's label maps into the test set's labels by name, then DSC/NSD per class.
    With min_lesion_ml > 0, the zero-shot benchmark's lesion rule first: each connected predicted
    lesion of `lesions` takes its majority label, and one under min_lesion_ml is no finding."""
    from nnunetv2_malenia.evaluation.benchmark import remap_labels
    from nnunetv2_malenia.evaluation.evaluate_folder import evaluate_folders, write_outputs

    test_labels = json.loads(test_labels_file.read_text())
    shutil.rmtree(target, ignore_errors=True)
    remap_labels(raw_pred, target, {n: int(v) for n, v in prediction["labels"].items()},
                 {n: int(v) for n, v in test_labels["labels"].items()}, test_labels.get("file_ending", ".nii.gz"),
                 vote_lesions=lesions if min_lesion_ml > 0 else (), min_lesion_ml=min_lesion_ml)
    result = evaluate_folders(target, gt, labels=classes, label_file=test_labels_file, tolerance_mm=tolerance_mm,
                              both_empty=math.nan, progress=False)
    write_outputs(result, target.parent / "evaluation")
    out = {}
    for name in classes:
        stats = result.summary["labels"][name]
        rows = [r for r in result.rows if r["label"] == name]
        present = [r["dsc"] for r in rows if r.get("gt_voxels") and r["dsc"] is not None]
        false = sorted(r["pred_voxels"] for r in rows if not r.get("gt_voxels") and r.get("pred_voxels"))
        out[name] = {"dsc": stats["dsc"]["mean"], "nsd": stats["nsd"]["mean"], "n": stats["dsc"]["n"],
                     "n_gt": len(present), "dsc_present": mean(present), "false_cases": len(false),
                     "false_median_voxels": false[len(false) // 2] if false else 0}
    return out


def training_checks(workdir: Path, data: dict, keys: list[str]) -> dict:
    """Did (a) train with the marginal loss and (b) without; do 924 and 905 share the fold-0 split?"""
    checks = {}
    for key in keys:
        dataset_id, name = model_dataset(key, data)
        record = bt.fold_dir(workdir, MODELS[key][2], dataset_id, name, CONFIGURATION).parent / "bench_run.json"
        log = json.loads(record.read_text()).get("training_log") if record.is_file() else None
        if log and Path(log).is_file():
            checks[f"marginal_loss_{key}"] = MARGINAL_LOG_LINE in Path(log).read_text()
    splits = {}
    for which in ("merged", "source"):
        folder = data["plan"]["merged"]["name"] if which == "merged" else data["plan"]["source_dataset"]
        path = workdir / "nnUNet_preprocessed" / folder / "splits_final.json"
        if path.is_file():
            splits[which] = sorted(json.loads(path.read_text())[0]["train"])
    if len(splits) == 2:
        checks["same_fold0_training_cases"] = splits["merged"] == splits["source"]
    return checks


def stage_evaluate(workdir: Path, env: dict, args, data: dict, keys: list[str], output: Path) -> int:
    raw = workdir / "nnUNet_raw" / data["plan"]["source_dataset"]
    images, gt = raw / "imagesTs", raw / "labelsTs"
    if not (images.is_dir() and gt.is_dir() and any(gt.iterdir())):
        raise SystemExit(f"{raw}: no imagesTs/labelsTs to score the models on")
    test_labels_file = raw / "dataset_test.json" if (raw / "dataset_test.json").is_file() else raw / "dataset.json"
    classes = [n for n, _ in sorted(data["plan"]["labels"].items(), key=lambda kv: kv[1])]
    lesions = lesion_classes(args.workdir, data)
    scores, costs = {}, {}
    for key in keys:
        folder = output / "predictions" / key
        prediction = predict(workdir, env, key, data, images, folder / "raw", args.reuse)
        if prediction is None:
            continue
        scores[key] = score(prediction, folder / "raw", folder / "labels", gt, test_labels_file, classes,
                            args.tolerance_mm, lesions, args.min_lesion_ml)
        dataset_id, name = model_dataset(key, data)
        record = bt.fold_dir(workdir, MODELS[key][2], dataset_id, name, CONFIGURATION).parent / "bench_run.json"
        # a model trained outside this script has no timing record
        trained = json.loads(record.read_text()) if record.is_file() else \
            {"train_s": math.nan, "wall_s": math.nan, "peak_rss_mb": math.nan}
        epochs = sorted(e["epoch_time_s"] for e in trained.get("epochs", []) if "epoch_time_s" in e)
        costs[key] = {"dataset": f"{dataset_id}", "trainer": MODELS[key][2], "train_s": trained["train_s"],
                      "train_wall_s": trained["wall_s"], "train_peak_mb": trained["peak_rss_mb"],
                      "epoch_median_s": epochs[len(epochs) // 2] if epochs else math.nan,
                      "predict_s": prediction["wall_s"], "predict_peak_mb": prediction["peak_rss_mb"]}
    if not scores:
        print("no trained model to evaluate", flush=True)
        return 1
    checks = training_checks(workdir, data, keys)
    table = report(data, scores, costs, checks, args, test_labels_file, output)
    (output / "bench_partial_labels.md").write_text(table)
    (output / "bench_partial_labels.json").write_text(json.dumps(
        {"command": invocation(), "commands_run": COMMANDS, "pipeline": pipeline(workdir, data, output),
         "tolerance_mm": args.tolerance_mm, "data": data, "scores": scores, "costs": costs, "checks": checks,
         "schedules": {k: schedule_of(k, data, args) for k in scores}}, indent=1, default=str))
    print(table)
    print(f"results: {output / 'bench_partial_labels.md'}, {output / 'bench_partial_labels.json'}")
    return 0


# ----- report ------------------------------------------------------------------------------------
def pct(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def diff(a, b) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{100 * (a - b):+.1f}"


def mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def invocation() -> str:
    return "python3 benchmarks/bench_partial_labels.py " + " ".join(sys.argv[1:])


def pipeline(workdir: Path, data: dict, output: Path) -> list[str]:
    """The measurement as shell commands (step 1's source datasets come from this script)."""
    plan = data["plan"]
    merged_id, source_id = plan["merged"]["id"], int(plan["source_dataset"][7:10])
    images = workdir / "nnUNet_raw" / plan["source_dataset"] / "imagesTs"
    lines = [f"export nnUNet_raw={workdir / 'nnUNet_raw'} nnUNet_preprocessed={workdir / 'nnUNet_preprocessed'} "
             f"nnUNet_results={workdir / 'nnUNet_results'} nnUNet_extTrainer={bt.TRAINER_DIR}:$nnUNet_extTrainer "
             "nnUNet_compile=0 nnUNet_n_proc_DA=2 OMP_NUM_THREADS=2",
             f"python3 benchmarks/bench_partial_labels.py --workdir {workdir} --stage data --scheme {plan['scheme']}"
             + (f" --source-dataset {source_id}" if source_id != SOURCE_ID else "")
             + (f" --first-id {plan['sources'][0]['id']}" if plan["sources"][0]["id"] != FIRST_ID else "")
             + "   # writes sources " + " ".join(str(s["id"]) for s in plan["sources"]) + ", then runs:",
             f"malenia merge-datasets -d {' '.join(str(s['id']) for s in plan['sources'])} -o {merged_id} --name "
             f"{MERGED_NAME}"]
    for dataset_id in (merged_id, source_id):
        lines += [f"nnUNetv2_plan_and_preprocess -d {dataset_id} -c 3d_fullres --verify_dataset_integrity -np 2 -npfp 2",
                  f"malenia cpu-config -d {dataset_id} --name {CONFIGURATION}"]
    for key, (_, which, trainer) in MODELS.items():
        dataset_id = merged_id if which == "merged" else source_id
        lines.append(f"nnUNetv2_train {dataset_id} {CONFIGURATION} 0 -tr {trainer} -device cpu")
    for key, (_, which, trainer) in MODELS.items():
        dataset_id = merged_id if which == "merged" else source_id
        lines.append(f"nnUNetv2_predict -i {images} -o {output / 'predictions' / key / 'raw'} -d {dataset_id} -c {CONFIGURATION} -f 0 -tr {trainer} "
                     "-device cpu -npp 0 -nps 0 --disable_tta")
    return lines


def lesion_classes(workdir: Path, data: dict) -> list[str]:
    """The scored classes that are lesions (the source dataset's `malenia.lesion_labels`)."""
    plan = data["plan"]
    source_json = json.loads((workdir / "nnUNet_raw" / plan["source_dataset"] / "dataset.json").read_text())
    lesion_values = set((source_json.get("malenia") or {}).get("lesion_labels", []))
    return [n for n, v in sorted(plan["labels"].items(), key=lambda kv: kv[1]) if v in lesion_values]


def report(data: dict, scores: dict, costs: dict, checks: dict, args, test_labels_file: Path, output: Path) -> str:
    plan = data["plan"]
    keys = [k for k in MODELS if k in scores]
    classes = [n for n, _ in sorted(plan["labels"].items(), key=lambda kv: kv[1])]
    dropped_by = {n: [s["letter"] for s in plan["sources"] if n in s["dropped"]] for n in classes}
    lesions = set(lesion_classes(args.workdir, data))
    kind = {n: "lesion" if n in lesions else "organ" for n in classes}
    n_test = len(list((test_labels_file.parent / "labelsTs").glob("*.nii.gz")))
    lines = [f"Issue 15, partial labels, CPU tier. Command: `{invocation()}`", "",
             data_table(data),
             f"Test set: the {n_test} fully labelled test cases of {plan['source_dataset']} (imagesTs/labelsTs), "
             f"the same for every model; the merged dataset's models renumbered into its labels by name. "
             f"DSC and NSD@{args.tolerance_mm:g}mm in %, mean over the cases where the class is in the ground truth "
             "or the prediction (n_GT: test cases holding the class). One fold-0 model each, "
             f"{CONFIGURATION}, the CPU recipe and schedule." +
             (f" Lesion rule (--min-lesion-ml {args.min_lesion_ml:g}): each connected predicted lesion takes its "
              f"majority lesion label, and one under {args.min_lesion_ml:g} ml is no finding."
              if args.min_lesion_ml > 0 else ""), ""]
    for metric in ("dsc", "nsd"):
        deltas_of = [k for k in keys if k != "full"] if "full" in scores else []
        header = ["class", "kind", "dropped by", "n_GT", *(MODELS[k][0] for k in keys),
                  *(f"{MODELS[k][0][:3]}-(c)" for k in deltas_of)]
        lines += [f"**{metric.upper()}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name in classes:
            values = {k: scores[k][name][metric] for k in keys}
            cells = [name, kind[name], ", ".join(dropped_by[name]) or "-", str(scores[keys[0]][name]["n_gt"]),
                     *(pct(values[k]) for k in keys), *(diff(values[k], values["full"]) for k in deltas_of)]
            lines.append("| " + " | ".join(cells) + " |")
        groups = [("mean, organs", [n for n in classes if kind[n] == "organ"]),
                  ("mean, lesions", [n for n in classes if kind[n] == "lesion"]),
                  ("mean, classes some source drops", [n for n in classes if dropped_by[n]]),
                  ("mean, classes no source drops", [n for n in classes if not dropped_by[n]])]
        for title, members in groups:
            if not members:
                continue
            values = {k: mean(scores[k][n][metric] for n in members) for k in keys}
            cells = [f"**{title}** ({len(members)})", "", "", "", *(f"**{pct(values[k])}**" for k in keys),
                     *(diff(values[k], values["full"]) for k in deltas_of)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += split_table(scores, keys, [n for n in classes if kind[n] == "lesion"], dropped_by)
    lines += goal_lines(scores, classes, dropped_by)
    lines += ["", "| model | dataset | trainer | training wall (s) | of which to last epoch (s) | median epoch (s) | "
                  "training peak RSS (MB) | test prediction wall (s) | prediction peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        c = costs[k]
        lines.append(f"| {MODELS[k][0]} | {c['dataset']} | {c['trainer']} | {c['train_wall_s']:.0f} | {c['train_s']:.0f} | "
                     f"{c['epoch_median_s']:.1f} | {c['train_peak_mb']:.0f} | {c['predict_s']:.0f} | "
                     f"{c['predict_peak_mb']:.0f} |")
    lines += ["", "Checks: " + ("; ".join(f"{k}: {v}" for k, v in checks.items()) or "none available")
              + f" (marginal_loss_KEY: the training log has PartialLabels' line '{MARGINAL_LOG_LINE}...')", "",
              "Commands (the measurement as shell commands; this run: bench_partial_labels.json 'commands_run'):", "",
              "```", *pipeline(args.workdir, data, output), "```", ""]
    return "\n".join(lines)


def split_table(scores: dict, keys: list[str], lesions: list[str], dropped_by: dict) -> list[str]:
    """The lesion DSC above, taken apart: segmentation on the cases that hold the lesion, and the
    cases without it where the model paints some. Why: a false-positive case scores 0 and the
    tables' mean runs over both kinds, so a few stray voxels move a class by many points
    (measured, control (d): splenic cyst 85 % DSC where present, 35.8 over the 13 cases with it
    and the 18 with a stray prediction, most of 1-46 voxels)."""
    if not lesions or not keys:
        return []
    header = ["lesion", "dropped by", "n_GT", *(f"{MODELS[k][0][:3]} DSC where present" for k in keys),
              *(f"{MODELS[k][0][:3]} false cases (median voxels)" for k in keys)]
    lines = ["**Lesions apart**: DSC on the n_GT test cases holding the class; false cases: test cases "
             "without it where the model predicts some (each scores 0 above), with the median size of "
             "those predictions.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in lesions:
        cells = [name, ", ".join(dropped_by[name]) or "-", str(scores[keys[0]][name]["n_gt"]),
                 *(pct(scores[k][name]["dsc_present"]) for k in keys),
                 *(f"{scores[k][name]['false_cases']} ({scores[k][name]['false_median_voxels']:.0f})" for k in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def goal_lines(scores: dict, classes: list[str], dropped_by: dict) -> list[str]:
    if "full" not in scores:
        return ["Goals: not checked ((c) not evaluated)."]
    out = []
    full = scores["full"]
    if "partial" in scores:
        deltas = {n: 100 * (scores["partial"][n]["dsc"] - full[n]["dsc"]) for n in classes
                  if scores["partial"][n]["dsc"] is not None and full[n]["dsc"] is not None}
        failing = sorted((n for n, d in deltas.items() if d < -GOAL_POINTS), key=lambda n: deltas[n])
        worst = min(deltas, key=deltas.get) if deltas else None
        unscored = [n for n in classes if n not in deltas]
        out.append(f"- Goal 1, (a) within {GOAL_POINTS:g} DSC points of (c) on every class: "
                   f"**{'met' if deltas and not failing else 'not met'}** on the {len(deltas)} scored classes "
                   f"({len(deltas) - len(failing)} within"
                   + (f"; worst {worst} {deltas[worst]:+.1f}" if worst else "")
                   + (f"; more than {GOAL_POINTS:g} points below: " + ", ".join(f"{n} {deltas[n]:+.1f}" for n in failing)
                      if failing else "") + ")"
                   + (f"; not scored (in no test case's ground truth or prediction of both models): "
                      f"{', '.join(unscored)}" if unscored else "") + ".")
    if "naive" in scores:
        dropped = [n for n in classes if dropped_by[n]]
        kept = [n for n in classes if not dropped_by[n]]

        def gap(names, other):
            return mean(scores["naive"][n]["dsc"] - scores[other][n]["dsc"] for n in names
                        if scores["naive"][n]["dsc"] is not None and scores[other][n]["dsc"] is not None)

        worse = [n for n in dropped if scores["naive"][n]["dsc"] is not None and full[n]["dsc"] is not None
                 and 100 * (scores["naive"][n]["dsc"] - full[n]["dsc"]) < -GOAL_POINTS]
        line = (f"- Goal 2, (b) worse on the classes some source drops: (b)-(c) {100 * gap(dropped, 'full'):+.1f} DSC "
                f"points on average over those {len(dropped)} classes, more than {GOAL_POINTS:g} below (c) on "
                f"{len(worse)} of them")
        if "partial" in scores:
            line += f"; (b)-(a) {100 * gap(dropped, 'partial'):+.1f}"
        if kept:
            line += (f"; on the {len(kept)} class{'es' if len(kept) != 1 else ''} no source drops (control): "
                     f"(b)-(c) {100 * gap(kept, 'full'):+.1f}")
        out.append(line + ".")
    if "twothirds" in scores and "partial" in scores:
        b_drops = [n for n in classes if "B" in dropped_by[n]]

        def gap_b(model, other):
            return mean(scores[model][n]["dsc"] - scores[other][n]["dsc"] for n in b_drops
                        if scores[model][n]["dsc"] is not None and scores[other][n]["dsc"] is not None)

        out.append(f"- Control (d), on the {len(b_drops)} classes source B drops (the same labelled cases as in "
                   f"(a)): (a)-(d) {100 * gap_b('partial', 'twothirds'):+.1f} DSC points (the loss), (d)-(c) "
                   f"{100 * gap_b('twothirds', 'full'):+.1f} (a third fewer labelled cases).")
    return out


# ----- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="work folder with nnUNet_raw/_preprocessed/_results (default: a new temporary folder); "
                             "/work/zs_cpu holds 905 and its trained nnUNetTrainer_cpu")
    parser.add_argument("--stage", choices=("all", "data", "train", "evaluate"), default="all",
                        help="data: source datasets + merge; train: preprocessing + the trainings; evaluate: "
                             "predict 905's test set and score (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep data, preprocessing, trainings (same schedule) and predictions already made")
    parser.add_argument("--only", action="append", choices=sorted(MODELS), default=None,
                        help="train / evaluate only this model (repeatable; default: all three)")
    parser.add_argument("--scheme", choices=sorted(SCHEMES), default="two-of-three",
                        help="which organ systems each source drops (default: %(default)s; see above)")
    parser.add_argument("--source-dataset", type=int, default=SOURCE_ID, metavar="ID",
                        help="the fully labelled raw dataset in WORKDIR/nnUNet_raw to split (default: %(default)s, "
                             "made with `malenia synth --preset cpu` when missing)")
    parser.add_argument("--first-id", type=int, default=FIRST_ID, metavar="ID",
                        help="dataset id of source A; B, C and the merged dataset take the next three "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed when 905 is made (default: %(default)s)")
    parser.add_argument("--tolerance-mm", type=float, default=TOLERANCE_MM, help="NSD tolerance (default: %(default)s)")
    parser.add_argument("--n-proc-da", type=int, default=2, help="nnUNet_n_proc_DA (default: %(default)s)")
    parser.add_argument("--min-lesion-ml", type=float, default=0.0, metavar="ML",
                        help="score with the zero-shot benchmark's lesion rule: each connected predicted lesion takes "
                             "its majority lesion label and one under ML millilitres is no finding (bench_zero_shot.py "
                             "uses 0.5); default %(default)s: every predicted voxel counts")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for data.json, predictions and the tables (default: WORKDIR/partial_labels)")
    args = parser.parse_args()

    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="malenia_partial_labels_"))).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = bt.bench_env(args.workdir, types.SimpleNamespace(n_proc_da=args.n_proc_da, epochs=10, iterations=20,
                                                           val_iterations=5))
    output = (args.output or args.workdir / "partial_labels").resolve()
    output.mkdir(parents=True, exist_ok=True)
    keys = [k for k in MODELS if args.only is None or k in args.only]
    print(f"workdir {args.workdir}\nnUNet_extTrainer={env['nnUNet_extTrainer']}", flush=True)

    if args.stage in ("all", "data"):
        data = stage_data(args.workdir, env, args, output)
    else:
        record = output / "data.json"
        if not record.is_file():
            raise SystemExit(f"{record}: missing; run --stage data first")
        data = json.loads(record.read_text())
    if args.stage in ("all", "train"):
        stage_train(args.workdir, env, args, data, keys)
    if args.stage in ("all", "evaluate"):
        return stage_evaluate(args.workdir, env, args, data, keys, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
