"""`malenia demo`: the whole main job on the synthetic benchmark, on a CPU, with progress throughout."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DESCRIPTION = """\
Runs Malenia's main job end to end on the embedded synthetic CT benchmark, with nnU-Net's own
commands where nnU-Net has one:

  1. malenia synth --preset TIER    CT phantoms; some diseases kept out of training
  2. nnUNetv2_plan_and_preprocess   nnU-Net's planning and preprocessing (+ malenia cpu-config)
  3. nnUNetv2_train ... -tr T       a CPU-sized Malenia (progress bar over epochs)
  4. zero-shot prediction           every test case, every knowledge-table row (unseen included),
                                    label maps, lesion reports and overlay pictures
  5. DSC and NSD                    per class, seen and unseen apart, printed as a table

Everything goes to WORKDIR (nnUNet_raw, nnUNet_preprocessed, nnUNet_results inside it; your own
nnU-Net folders are not touched); each step's full output is in WORKDIR/logs. A step whose
result is already there is skipped, so an interrupted demo continues where it stopped (--force
starts over).

  default      the CPU tier whose seen rows vary (malenia synth --preset cpu_varied: 48^3, 10
               diseases, 4 unseen), 120 training and 40 test cases, the small 3d_cpu network,
               nnUNetTrainerMalenia_cpu_zeroshot_demo (the zero-shot recipe, 28 x 30 iterations),
               no mirroring (the CPU recipe); predicted lesions under 0.5 ml are not findings, as in
               benchmarks/bench_zero_shot.py: 26 min measured on 2 cores (docs/benchmarks.md).
  --tier full  the full benchmark (13 diseases, 5 unseen) at 48^3, 40 training and 13 test cases,
               3d_fullres, nnUNetTrainerMalenia_demo (40 epochs x 10 iterations), mirroring: 21 min.
  --quick      16 training cases, nnUNetTrainerMalenia_smoke (2 x 5 iterations), no mirroring:
               a few minutes; shows every step working, not what Malenia learns."""


@dataclass(frozen=True)
class DemoPlan:
    preset: str
    cases: int
    test_cases: int
    shape: int
    configuration: str
    trainer: str
    epochs: int
    tta: bool
    min_lesion_ml: float = 0.0   # predicted lesions smaller than this are not findings (the tier's rule)


PLANS = {
    ("cpu", False): DemoPlan("cpu_varied", 120, 40, 48, "3d_cpu", "nnUNetTrainerMalenia_cpu_zeroshot_demo", 28,
                             tta=False, min_lesion_ml=0.5),
    ("cpu", True): DemoPlan("cpu_varied", 16, 10, 48, "3d_cpu", "nnUNetTrainerMalenia_smoke", 2, tta=False),
    ("full", False): DemoPlan("full", 40, 13, 48, "3d_fullres", "nnUNetTrainerMalenia_demo", 40, tta=True),
    ("full", True): DemoPlan("full", 16, 13, 48, "3d_fullres", "nnUNetTrainerMalenia_smoke", 2, tta=False),
}
EPOCH_LINE = re.compile(r"^\S+ \S+: Epoch (\d+)\s*$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the main job end to end on synthetic CT: train, zero-shot predict, score",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a first look in a few minutes (smoke schedule)")
    parser.add_argument("--tier", choices=("cpu", "full"), default="cpu",
                        help="benchmark tier: cpu (sized for 2 CPU cores) or full (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path("malenia_demo"), help="default: ./%(default)s")
    parser.add_argument("-d", "--dataset-id", type=int, default=990, help="dataset id to use (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="generator seed of the phantoms (default: %(default)s); another seed, another draw")
    parser.add_argument("--force", action="store_true", help="start over: regenerate, retrain, repredict")
    parser.set_defaults(func=run)


def _env(workdir: Path) -> dict:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(workdir / "nnUNet_raw"), nnUNet_preprocessed=str(workdir / "nnUNet_preprocessed"),
               nnUNet_results=str(workdir / "nnUNet_results"))
    for key, value in (("nnUNet_compile", "0"), ("nnUNet_def_n_proc", "2"), ("nnUNet_n_proc_DA", "2")):
        env.setdefault(key, value)
    return env


def _run_logged(command: list[str], env: dict, log: Path, on_line=None) -> None:
    """Run a command with its output in `log`; `on_line` sees each line (for progress)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1)
        for line in process.stdout:
            f.write(line)
            if on_line:
                on_line(line.rstrip("\n"))
        status = process.wait()
    if status != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-3:]).strip().replace("\n", " | ")
        raise MaleniaError(f"`{' '.join(command)}` failed with exit status {status}; see {log} ({tail[-300:]})")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    plan = PLANS[(args.tier, args.quick)]
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = _env(workdir)
    os.environ.update({k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
    name = f"Dataset{args.dataset_id:03d}_MaleniaDemo"
    raw = workdir / "nnUNet_raw" / name
    pre = workdir / "nnUNet_preprocessed" / name
    model = workdir / "nnUNet_results" / name / f"{plan.trainer}__nnUNetPlans__{plan.configuration}"
    logs = workdir / "logs"
    start = time.perf_counter()
    steps = tqdm(total=5, desc="malenia demo", unit="step", position=0, leave=True,
                 bar_format="{desc}: step {n_fmt}/{total_fmt} |{bar}| {elapsed}")

    def step(text: str) -> None:
        steps.set_description_str(f"malenia demo: {text}")

    step("generating CT phantoms")
    synth_config = raw / "synthetic_config.json"
    if args.force or not synth_config.is_file() or _config_changed(synth_config, plan, args.seed):
        _run_logged([sys.executable, "-m", "nnunetv2_malenia.cli", "synth", "-d", str(args.dataset_id), "--name",
                     "MaleniaDemo", "--preset", plan.preset, "--cases", str(plan.cases), "--test-cases", str(plan.test_cases), "--seed", str(args.seed),
                     "--shape", *[str(plan.shape)] * 3, "--force", "--preview", str(workdir / "synth_preview.png")],
                    env, logs / "synth.log")
        args.force = True  # everything after depends on the data
    steps.update(1)

    step("nnU-Net planning and preprocessing")
    if args.force or not (pre / "nnUNetPlans.json").is_file() or not (pre / "nnUNetPlans_3d_fullres").is_dir():
        _run_logged(["nnUNetv2_plan_and_preprocess", "-d", str(args.dataset_id), "-c", "3d_fullres",
                     "--verify_dataset_integrity", "-np", "2", "-npfp", "2"],
                    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 would fail there
                    {**env, "nnUNet_n_proc_DA": env["nnUNet_n_proc_DA"] if env["nnUNet_n_proc_DA"] != "0" else "2"},
                    logs / "plan_and_preprocess.log")
    if plan.configuration == "3d_cpu":
        _run_logged([sys.executable, "-m", "nnunetv2_malenia.cli", "cpu-config", "-d", str(args.dataset_id)], env,
                    logs / "cpu_config.log")
    steps.update(1)

    step(f"training {plan.trainer}")
    if args.force or not (model / "fold_0" / "checkpoint_final.pth").is_file():
        epochs = tqdm(total=plan.epochs, desc="  epochs", unit="epoch", position=1, leave=False)

        def on_line(line: str) -> None:
            match = EPOCH_LINE.match(line)
            if match:
                epochs.n = int(match.group(1))
                epochs.refresh()
            elif "predicting" in line and epochs.n:
                epochs.set_description_str("  final validation")

        _run_logged(["nnUNetv2_train", str(args.dataset_id), plan.configuration, "0", "-tr", plan.trainer,
                     "-device", "cpu"], env, logs / "train.log", on_line)
        epochs.close()
    steps.update(1)

    step("zero-shot prediction and scoring")
    from nnunetv2_malenia.evaluation.benchmark import markdown, run_benchmark

    output = workdir / "results"
    if args.force and output.exists():
        shutil.rmtree(output)
    result = run_benchmark(args.dataset_id, [plan.trainer], [0], output, configuration=plan.configuration,
                           device="cpu", tta=plan.tta, overlays=True, cross_validation=False,
                           min_lesion_ml=plan.min_lesion_ml, log=lambda _: None)
    steps.update(2)
    steps.close()
    predictions = output / "predictions" / plan.trainer / "fold_0" / "raw"
    minutes = (time.perf_counter() - start) / 60
    print()
    print(markdown(result), end="")
    print(f"\nDone in {minutes:.1f} min. Label maps, lesion reports (CASE.lesions.json) and overlays (CASE.png): "
          f"{predictions}\nTable: {output / 'benchmark.md'}; bar plot: {output / 'benchmark.png'}; "
          f"training curves: {model / 'fold_0' / 'progress_malenia.png'}; phantoms: {workdir / 'synth_preview.png'}")
    if args.quick:
        print("(--quick trains for 10 iterations: the numbers show the pipeline, not Malenia; run without --quick)")
    return 0


def _config_changed(config_file: Path, plan: DemoPlan, seed: int) -> bool:
    import json

    config = json.loads(config_file.read_text())
    preset = config.get("preset", {}).get("name", "full")
    return (preset, config.get("cases"), config.get("test_cases"), list(config.get("shape_xyz", [])),
            config.get("seed")) != (plan.preset, plan.cases, plan.test_cases, [plan.shape] * 3, seed)
