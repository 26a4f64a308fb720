"""CPU training benchmark: nnUNetTrainerMalenia vs nnU-Net's nnUNetTrainer, same data, same schedule.

One run, everything sequential (never two trainings at once):

1. `malenia synth -d 904 --name MaleniaBench --cases 40 --seed 0` (64^3) into WORKDIR/nnUNet_raw and
   `nnUNetv2_plan_and_preprocess -d 904 -c 3d_fullres --verify_dataset_integrity -np 2 -npfp 2`.
2. `nnUNetv2_train 904 3d_fullres 0 -tr TRAINER -device cpu` for each trainer of
   benchmarks/trainers/nnunetv2_malenia_bench_trainers.py (found by prepending that folder to
   nnUNet_extTrainer), all with E epochs x I iterations and V validation iterations per epoch, then
   nnU-Net's final validation (sliding-window prediction of the 8 fold-0 validation cases and
   evaluation into fold_0/validation/summary.json).
3. Per seen lesion label (dataset.json "malenia" -> "lesion_labels") and their mean: nnU-Net's Dice
   (summary.json "mean": mean over the validation cases where the label is in the reference or
   the prediction) and the pooled Dice 2*sum(TP)/(2*sum(TP)+sum(FP)+sum(FN)) over the 8 cases;
   organ mean Dice; wall time of training and of the final validation; peak RSS of the largest
   single process (/usr/bin/time -v, else getrusage(RUSAGE_CHILDREN)); ratios to nnUNetTrainer.
4. Writes WORKDIR/bench_training.md and .json (and --plot PNG) and prints the table.

    python3 benchmarks/bench_training.py --workdir /tmp/malenia_bench --epochs 10 --iterations 10 --plot docs/bench_training.png

`--reuse` keeps an existing dataset/preprocessing and any trainer whose results in WORKDIR were made
with the same schedule and the same trainer settings (its class attributes: loss weights, head
options, anomalies; e.g. to add `--trainers nnUNetTrainerMalenia_benchSGD` to a finished run). A
trainer whose settings changed under the same name is trained again, and the reason printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import MutableMapping

HERE = Path(__file__).resolve().parent
TRAINER_DIR = HERE / "trainers"
DATASET_ID = 904
DATASET_NAME = "MaleniaBench"
BASELINE = "nnUNetTrainer_bench"
DEFAULT_TRAINERS = ["nnUNetTrainer_bench", "nnUNetTrainerMalenia_bench"]
ALL_TRAINERS = DEFAULT_TRAINERS + ["nnUNetTrainerMalenia_benchSGD"]
SHORT = {"nnUNetTrainer_bench": "nnUNetTrainer", "nnUNetTrainerMalenia_bench": "Malenia (AdamW)",
         "nnUNetTrainerMalenia_benchSGD": "Malenia (SGD)"}
TIME_BIN = "/usr/bin/time"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?):\s?(.*)$")


# ----- environment and subprocesses ----------------------------------------------------------------
def nnunet_env(workdir: Path, n_proc_da: int = 2) -> dict:
    """This process's environment with nnU-Net's folders in `workdir`, the CPU settings, and the
    benchmark trainers findable by nnU-Net (for training and for prediction)."""
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(workdir / "nnUNet_raw"),
        "nnUNet_preprocessed": str(workdir / "nnUNet_preprocessed"),
        "nnUNet_results": str(workdir / "nnUNet_results"),
        "nnUNet_compile": "0",
        "nnUNet_def_n_proc": "2",
        "nnUNet_n_proc_DA": str(n_proc_da),
        "OMP_NUM_THREADS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    return with_bench_trainers(env)


def with_bench_trainers(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """`env` (changed in place, and returned) with benchmarks/trainers first in nnUNet_extTrainer, so
    nnU-Net finds the benchmark trainers by name, in training, prediction and a trained model's
    folder. The installed plugin's .pth has already appended its own trainer folder in this process
    (and will again in the children); that one is kept. nnU-Net reads the variable at lookup time,
    so `with_bench_trainers(os.environ)` works in-process too."""
    existing = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p and p != str(TRAINER_DIR)]
    env["nnUNet_extTrainer"] = os.pathsep.join([str(TRAINER_DIR), *existing])
    return env


def bench_env(workdir: Path, args) -> dict:
    """nnunet_env plus the schedule the benchmark trainers read."""
    env = nnunet_env(workdir, args.n_proc_da)
    env.update({
        "MALENIA_BENCH_EPOCHS": str(args.epochs),
        "MALENIA_BENCH_ITERATIONS": str(args.iterations),
        "MALENIA_BENCH_VAL_ITERATIONS": str(args.val_iterations),
    })
    return env


def run(cmd: list[str], env: dict, log: Path, cwd: Path) -> dict:
    """Run cmd (stdout+stderr to log); wall time and peak RSS (MB) of its largest process."""
    log.parent.mkdir(parents=True, exist_ok=True)
    timefile = log.with_suffix(".time")
    use_time = os.access(TIME_BIN, os.X_OK)
    full = [TIME_BIN, "-v", "-o", str(timefile), *cmd] if use_time else cmd
    print(f"$ {' '.join(cmd)}   (log: {log})", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.time()
    with open(log, "w") as f:
        status = subprocess.call(full, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=cwd)
    end = time.time()
    if status != 0:
        sys.exit(f"bench_training: command failed with exit status {status}: {' '.join(cmd)}; see {log}")
    peak_kb = None
    if use_time:
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timefile.read_text())
        peak_kb = int(match.group(1)) if match else None
    if peak_kb is None:  # high-water mark over all children so far: exact only if it grew
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak_kb = after if after > before else float("nan")
    return {"start": start, "end": end, "wall_s": end - start, "peak_rss_mb": peak_kb / 1024}


# ----- data --------------------------------------------------------------------------------------
def prepare_dataset(workdir: Path, env: dict, reuse: bool, dataset_id: int = DATASET_ID, name: str = DATASET_NAME,
                    synth_args: tuple[str, ...] = (), cases: int | None = 40, seed: int = 0) -> dict:
    """`malenia synth` (extra options: synth_args; cases None: the preset's default) and nnU-Net's
    plan-and-preprocess, unless reusable."""
    raw = workdir / "nnUNet_raw" / f"Dataset{dataset_id:03d}_{name}"
    pre = workdir / "nnUNet_preprocessed" / f"Dataset{dataset_id:03d}_{name}"
    timings = {}
    if reuse and (pre / "nnUNetPlans.json").is_file() and (pre / "nnUNetPlans_3d_fullres").is_dir():
        print(f"reusing {raw} and {pre}")
    else:
        for folder in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
        count = ["--cases", str(cases)] if cases is not None else []
        timings["synth"] = run(["malenia", "synth", "-d", str(dataset_id), "--name", name, *count,
                                "--seed", str(seed), "--force", "--output-root", str(workdir / "nnUNet_raw"), *synth_args],
                               env, workdir / "logs" / f"synth_{dataset_id}.log", workdir)
        if pre.exists():
            shutil.rmtree(pre)
        timings["plan_and_preprocess"] = run(
            ["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres",
             "--verify_dataset_integrity", "-np", "2", "-npfp", "2"],
            env, workdir / "logs" / f"plan_and_preprocess_{dataset_id}.log", workdir)
    dataset = json.loads((raw / "dataset.json").read_text())
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    return {"raw": raw, "dataset": dataset, "plans": plans, "timings": timings}


# ----- training and its logs ---------------------------------------------------------------------
def fold_dir(workdir: Path, trainer: str, dataset_id: int = DATASET_ID, name: str = DATASET_NAME,
             configuration: str = "3d_fullres") -> Path:
    return (workdir / "nnUNet_results" / f"Dataset{dataset_id:03d}_{name}" /
            f"{trainer}__nnUNetPlans__{configuration}" / "fold_0")


def parse_training_log(fold: Path) -> dict:
    """Timestamps and notable lines of nnU-Net's training_log_*.txt (the newest one)."""
    logs = sorted(fold.glob("training_log_*.txt"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return {}
    first_epoch = first_predict = last = None
    epochs, odd = [], []
    current: dict = {}
    for line in logs[-1].read_text().splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        when = datetime.fromisoformat(match.group(1)).timestamp()
        text = match.group(2).strip()
        last = when
        if text.startswith("Epoch ") and text[6:].strip().isdigit():
            first_epoch = first_epoch or when
            current = {"epoch": int(text[6:])}
            epochs.append(current)
        elif text.startswith("train_loss"):
            current["train_loss"] = float(text.split()[-1])
        elif text.startswith("val_loss"):
            current["val_loss"] = float(text.split()[-1])
        elif text.startswith("Pseudo dice"):
            current["pseudo_dice"] = [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?|nan", text[11:])]
        elif text.startswith("Epoch time"):
            current["epoch_time_s"] = float(re.findall(r"[\d.]+", text)[0])
        elif text.startswith("attribute accuracy"):
            current["attribute_accuracy"] = text.split(":", 1)[1].strip()
        elif text.startswith("predicting ") and first_predict is None:
            first_predict = when
        elif re.search(r"non-finite|skipped|warn|error|nan", text, re.IGNORECASE):
            odd.append(text)
    return {"log": str(logs[-1]), "first_epoch": first_epoch, "first_predict": first_predict, "last": last,
            "epochs": epochs, "odd_lines": odd}


def train(workdir: Path, env: dict, trainer: str, schedule: dict, reuse: bool, dataset_id: int = DATASET_ID,
          name: str = DATASET_NAME, configuration: str = "3d_fullres") -> dict:
    fold = fold_dir(workdir, trainer, dataset_id, name, configuration)
    record = fold.parent / "bench_run.json"
    settings = trainer_settings(trainer)
    if reuse and record.is_file() and (fold / "validation" / "summary.json").is_file():
        saved = json.loads(record.read_text())
        changed = settings_changed(saved, settings, fold.parent, trainer)
        if saved.get("schedule") == schedule and not changed:
            print(f"reusing {trainer} (same schedule and settings) from {fold}")
            return saved
        print(f"not reusing {trainer} from {fold}: " + (changed or "another schedule"))
    if fold.parent.exists():
        shutil.rmtree(fold.parent)
    timing = run(["nnUNetv2_train", str(dataset_id), configuration, "0", "-tr", trainer, "-device", "cpu"],
                 env, workdir / "logs" / f"{dataset_id}_{trainer}.log", workdir)
    parsed = parse_training_log(fold)
    val_start = parsed.get("first_predict") or timing["end"]
    result = {
        "trainer": trainer, "schedule": schedule, "trainer_settings": settings, **timing,
        "train_s": val_start - timing["start"],  # process start (imports, embedding, data loaders) to the end of the last epoch
        "loop_s": val_start - (parsed.get("first_epoch") or timing["start"]),  # epochs only
        "final_val_s": timing["end"] - val_start,  # prediction of the validation cases + evaluation
        "epochs": parsed.get("epochs", []), "odd_lines": parsed.get("odd_lines", []),
        "training_log": parsed.get("log"), "components": final_components(fold),
    }
    record.write_text(json.dumps(result, indent=1))
    return result


def _canonical(value):
    """A JSON-comparable form of a trainer class attribute (dicts sorted, dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _trainer_attributes(trainer: str) -> dict:
    """The public data attributes of a trainer class and its bases, the subclass's last; {} when
    nnU-Net cannot find the class in this process."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with_bench_trainers(os.environ)
    try:
        cls = recursive_find_trainer_class_by_name(trainer)
    except RuntimeError:
        return {}
    attributes: dict = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("_") or callable(value) or isinstance(value, (property, classmethod, staticmethod)):
                continue
            attributes[name] = value
    return attributes


def trainer_settings(trainer: str) -> dict:
    """The public data attributes of a trainer class and its bases (loss weights, `malenia_config`,
    `anomalies`, ...): what `--reuse` compares besides the schedule. Why: a trainer whose recipe
    changed under the same name (the zero-shot recipe's head options) would otherwise be reused as
    the new one. {} when nnU-Net cannot find the class in this process."""
    return {name: _canonical(value) for name, value in _trainer_attributes(trainer).items()}


def dataclass_defaults(trainer: str) -> dict:
    """{attribute: {field: default}} for the trainer's dataclass attributes (`anomalies`), in
    `trainer_settings`' form; {} when nnU-Net cannot find the class in this process."""
    return {name: {f.name: _canonical(f.default if f.default is not dataclasses.MISSING else f.default_factory())
                   for f in dataclasses.fields(value)
                   if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
            for name, value in _trainer_attributes(trainer).items()
            if dataclasses.is_dataclass(value) and not isinstance(value, type)}


def settings_changed(saved: dict, settings: dict, model_folder: Path, trainer: str) -> str | None:
    """Why a finished training no longer is what `trainer` trains now, or None. A field of a
    dataclass setting (`anomalies`) that the record lacks did not exist when it was written: it
    counts as its default, which by this project's convention draws what the code drew before the
    field (a new option's default changes nothing), so adding an option retrains nothing that does
    not set it. A record without settings (written before they were recorded) is compared on the
    head options its model folder stored (plans.json's malenia config, unset fields at
    MaleniaConfig's defaults)."""
    if "trainer_settings" in saved:
        recorded = dict(saved["trainer_settings"])
        for name, defaults in dataclass_defaults(trainer).items():
            if isinstance(recorded.get(name), dict):
                recorded[name] = {**defaults, **recorded[name]}
        if recorded == settings:
            return None
        keys = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        return f"the trainer's settings changed ({', '.join(keys)})"
    head = settings.get("malenia_config")
    plans = model_folder / "plans.json"
    if not head or not plans.is_file():
        return None
    from nnunetv2_malenia.network.config import MaleniaConfig

    stored = json.loads(plans.read_text()).get("malenia", {}).get("config")
    if stored is None:
        return None
    stored = _canonical(MaleniaConfig.from_dict(stored).to_dict())
    for key, value in head.items():
        if key in stored and stored[key] != value:
            return f"head option {key} is {value!r} in {trainer} and {stored[key]!r} in {plans}"
    return None


def final_components(fold: Path) -> dict:
    """Last-epoch value of every logged curve (nnU-Net's and Malenia's) from checkpoint_final.pth."""
    ckpt = fold / "checkpoint_final.pth"
    if not ckpt.is_file():
        return {}
    import torch

    logging = torch.load(ckpt, map_location="cpu", weights_only=False).get("logging", {})
    out = {}
    for key, values in logging.items():
        if values and isinstance(values[-1], (int, float)) and key != "epoch_start_timestamps" \
                and key != "epoch_end_timestamps":
            out[key] = {"first": float(values[0]), "last": float(values[-1])}
    return out


# ----- metrics -----------------------------------------------------------------------------------
def dice_table(fold: Path, labels: list[int]) -> dict:
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    out = {}
    for label in labels:
        key = str(label)
        mean = summary["mean"].get(key, {}).get("Dice", float("nan"))
        tp = fp = fn = 0.0
        n_ref = 0
        for case in summary["metric_per_case"]:
            m = case["metrics"].get(key)
            if m is None:
                continue
            tp, fp, fn = tp + m["TP"], fp + m["FP"], fn + m["FN"]
            n_ref += int(m["n_ref"] > 0) if "n_ref" in m else int(m["TP"] + m["FN"] > 0)
        pooled = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else float("nan")
        out[label] = {"dice": float(mean) if mean is not None else float("nan"), "pooled": pooled, "n_ref": n_ref}
    return out


def nanmean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def report(results: dict, dataset: dict, schedule: dict, command: str) -> tuple[str, dict]:
    info = dataset.get("malenia", {})
    label_names = {int(v): k for k, v in dataset["labels"].items() if not isinstance(v, list)}
    lesions = [int(v) for v in info.get("lesion_labels", [])]
    organs = [int(v) for v in info.get("organ_labels", [])] or \
        [label for label in label_names if label and label not in lesions]
    trainers = list(results)
    metrics = {t: dice_table(Path(results[t]["fold"]), lesions + organs) for t in trainers}
    # Lesion means over the seen-lesion labels present in the validation reference: for a label absent
    # from all 8 reference maps nnU-Net's Dice is 0 if any voxel is predicted and NaN otherwise, which
    # would average different label sets for different trainers.
    present = [label for label in lesions if metrics[trainers[0]][label]["n_ref"] > 0]
    summary = {t: {"lesion_mean": nanmean(metrics[t][label]["dice"] for label in present),
                   "lesion_pooled_mean": nanmean(metrics[t][label]["pooled"] for label in present),
                   "organ_mean": nanmean(metrics[t][label]["dice"] for label in organs),
                   "organ_pooled_mean": nanmean(metrics[t][label]["pooled"] for label in organs)} for t in trainers}
    head = " | ".join(SHORT.get(t, t) for t in trainers)
    lines = [f"Schedule: {schedule['epochs']} epochs x {schedule['iterations']} iterations "
             f"(= {schedule['epochs'] * schedule['iterations']} training steps, batch from the plans), "
             f"{schedule['val_iterations']} validation iterations per epoch, nnUNet_n_proc_DA={schedule['n_proc_da']}, "
             f"fold 0 (32 training / 8 validation cases). Command: `{command}`", "",
             "Dice on the 8 fold-0 validation cases (nnU-Net's final validation, `fold_0/validation/summary.json`). "
             "Each cell: nnU-Net's mean Dice / pooled Dice (2 sum TP / (2 sum TP + sum FP + sum FN) over the 8 "
             "cases); n = validation cases containing the label.", "",
             f"| label | n | {head} |", "|---|---|" + "---|" * len(trainers)]
    for label in lesions:
        cells = " | ".join(f"{fmt(metrics[t][label]['dice'])} / {fmt(metrics[t][label]['pooled'])}" for t in trainers)
        n_ref = metrics[trainers[0]][label]["n_ref"]
        lines.append(f"| {label} {label_names.get(label, '')} | {n_ref} | {cells} |")
    absent = [label for label in lesions if label not in present]
    lines.append(f"| **seen-lesion mean** ({len(present)} labels present{', without ' + ', '.join(map(str, absent)) if absent else ''}) | | " + " | ".join(
        f"**{fmt(summary[t]['lesion_mean'])} / {fmt(summary[t]['lesion_pooled_mean'])}**" for t in trainers) + " |")
    lines.append(f"| organ mean (labels {organs[0]}-{organs[-1]}) | | " + " | ".join(
        f"{fmt(summary[t]['organ_mean'])} / {fmt(summary[t]['organ_pooled_mean'])}" for t in trainers) + " |")
    base = results.get(BASELINE)
    lines += ["", f"| cost | {head} |", "|---|" + "---|" * len(trainers)]

    def row(name: str, key: str, unit: str, digits: int = 0):
        cells = []
        for t in trainers:
            v = results[t][key]
            ratio = f" ({v / base[key]:.2f}x)" if base and base[key] else ""
            cells.append(f"{v:.{digits}f} {unit}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("training wall time (start to last epoch)", "train_s", "s")
    row("of which epochs", "loop_s", "s")
    row("final validation (8 cases + evaluation)", "final_val_s", "s")
    row("peak RSS (largest process)", "peak_rss_mb", "MB")
    for t in trainers:
        results[t]["mean_epoch_s"] = nanmean(e.get("epoch_time_s", float("nan")) for e in results[t]["epochs"])
    row("mean epoch time (nnU-Net's log)", "mean_epoch_s", "s", 1)
    lines += ["", "Last epoch (nnU-Net's log): " + "; ".join(
        f"{SHORT.get(t, t)}: train_loss {fmt(results[t]['epochs'][-1].get('train_loss', float('nan')), 4)}, "
        f"val_loss {fmt(results[t]['epochs'][-1].get('val_loss', float('nan')), 4)}"
        for t in trainers if results[t]["epochs"])]
    for t in trainers:
        last = results[t]["epochs"][-1] if results[t]["epochs"] else {}
        if last.get("attribute_accuracy"):
            lines.append(f"{SHORT.get(t, t)} attribute accuracy (val patches, last epoch): {last['attribute_accuracy']}")
    data = {"schedule": schedule, "command": command, "lesion_labels": lesions, "organ_labels": organs,
            "lesion_labels_in_validation": present,
            "metrics": {t: {str(k): v for k, v in m.items()} for t, m in metrics.items()}, "summary": summary,
            "runs": results}
    return "\n".join(lines) + "\n", data


def plot(data: dict, dataset: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {int(v): k for k, v in dataset["labels"].items() if not isinstance(v, list)}
    lesions = data["lesion_labels"]
    trainers = list(data["metrics"])
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / len(trainers)
    xs = list(range(len(lesions) + 2))
    for i, t in enumerate(trainers):
        m = data["metrics"][t]
        values = [m[str(label)]["dice"] for label in lesions] + [data["summary"][t]["lesion_mean"],
                                                                  data["summary"][t]["organ_mean"]]
        ax.bar([x + (i - (len(trainers) - 1) / 2) * width for x in xs], [0 if math.isnan(v) else v for v in values],
               width, label=SHORT.get(t, t))
    ax.set_xticks(xs, [f"{label}\n{names.get(label, '')}" for label in lesions] + ["seen-lesion\nmean", "organ\nmean"],
                  fontsize=8)
    ax.set_ylabel("Dice (nnU-Net, 8 val cases)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    s = data["schedule"]
    ax.set_title(f"Dataset{DATASET_ID} 64^3, fold 0, {s['epochs']} x {s['iterations']} iterations on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def provenance() -> dict:
    """Which plugin code the subprocesses ran: the installed trainer module's hash vs this checkout's."""
    import hashlib
    import importlib.util

    def digest(path: Path) -> str | None:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None

    spec = importlib.util.find_spec("nnunetv2_malenia")
    rel = Path("training") / "nnUNetTrainerMalenia.py"
    installed = Path(spec.origin).parent / rel if spec and spec.origin else None
    return {"installed_trainer": str(installed), "installed_sha256": digest(installed) if installed else None,
            "checkout_sha256": digest(HERE.parent / "nnunetv2_malenia" / rel)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary folder, kept)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=10, help="training iterations per epoch")
    parser.add_argument("--val-iterations", type=int, default=3, help="validation iterations per epoch")
    parser.add_argument("--n-proc-da", type=int, default=2, help="nnUNet_n_proc_DA (0 = in the main process)")
    parser.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS, choices=ALL_TRAINERS)
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing dataset and trainer results made with the same schedule")
    parser.add_argument("--plot", type=Path, default=None, help="also write a bar plot of per-label Dice")
    args = parser.parse_args()

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="malenia_bench_training_"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = bench_env(workdir, args)
    schedule = {"epochs": args.epochs, "iterations": args.iterations, "val_iterations": args.val_iterations,
                "n_proc_da": args.n_proc_da}
    command = "python3 benchmarks/bench_training.py " + " ".join(sys.argv[1:])
    print(f"workdir {workdir}\nnUNet_extTrainer={env['nnUNet_extTrainer']}", flush=True)

    data = prepare_dataset(workdir, env, args.reuse)
    trainers = ([BASELINE] if BASELINE not in args.trainers else []) + list(args.trainers)
    results = {}
    for trainer in trainers:
        results[trainer] = train(workdir, env, trainer, schedule, args.reuse or trainer not in args.trainers)
        results[trainer]["fold"] = str(fold_dir(workdir, trainer))
        print(f"{trainer}: {results[trainer]['wall_s']:.0f} s, peak RSS {results[trainer]['peak_rss_mb']:.0f} MB",
              flush=True)
    table, out = report(results, data["dataset"], schedule, command)
    out["dataset_timings"] = data["timings"]
    out["provenance"] = provenance()
    (workdir / "bench_training.md").write_text(table)
    (workdir / "bench_training.json").write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(out, data["dataset"], args.plot)
    print(table)
    for t in trainers:
        if results[t]["odd_lines"]:
            print(f"{t}: notable log lines:\n  " + "\n  ".join(results[t]["odd_lines"][:20]))
    print(f"results: {workdir / 'bench_training.md'}, {workdir / 'bench_training.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
