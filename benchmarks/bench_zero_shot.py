"""Zero-shot benchmark on the synthetic CT data: Malenia vs the name-only ablation vs nnU-Net.

One run, everything sequential on the CPU (never two trainings at once):

1. Two datasets from the same generator, seed and tier:
   - 905 MaleniaZS: training cases hold only the seen diseases; the test cases hold all of them
     (the unseen ones given only by their knowledge-table rows);
   - 906 MaleniaZSOracle (`--no-unseen`): training cases hold every disease, labelled: the
     supervised upper bound for the unseen ones.
   Both planned and preprocessed by nnU-Net (3d_fullres; on the CPU tier `malenia cpu-config`
   then adds the small 3d_cpu configuration on the same preprocessed data).
2. `nnUNetv2_train ID CONFIGURATION 0 -tr TRAINER -device cpu`, every model on one schedule:
   - `--tier cpu` (default): `malenia synth --preset cpu` (48^3, 10 diseases, 4 unseen), 3d_cpu,
     the CPU recipe and schedule of nnunetv2_malenia.training.cpu_recipe: on 905 nnUNetTrainer_cpu,
     nnUNetTrainerMalenia_cpu, nnUNetTrainerMalenia_nameonly_cpu; on 906 nnUNetTrainer_cpu and
     nnUNetTrainer_cpu_nnunetrecipe (nnU-Net's own SGD recipe on the same schedule);
   - `--tier cpu_varied`: the same with `--preset cpu_varied` (seen diseases vary within a type,
     docs/synthetic.md); use another --workdir, the dataset ids are the same;
   - `--tier full`: today's full benchmark (`--shape`, 13 diseases, 5 unseen), 3d_fullres, E epochs
     x I iterations (benchmarks/trainers/): on 905 nnUNetTrainer_bench, nnUNetTrainerMalenia_bench,
     nnUNetTrainerMalenia_nameonly_bench, nnUNetTrainerMalenia_benchSGD; on 906 nnUNetTrainer_bench.
3. `malenia benchmark -d 905 -tr ... -tr 906/TRAINER --folds 0 --no-cv` (CPU tier: `--min-lesion-ml 0.5`): predicts the 905 test
   cases with every model (Malenia models with their full knowledge table, unseen rows included;
   label numbers matched by name for the oracle), DSC and NSD per class, seen and unseen apart,
   wall time of training and prediction as ratios to nnUNetTrainer.

    python3 benchmarks/bench_zero_shot.py --workdir /work/zs_cpu --reuse
    python3 benchmarks/bench_zero_shot.py --workdir /work/zs_cpu --reuse --only 906/nnUNetTrainer_cpu  # calibration
    python3 benchmarks/bench_zero_shot.py --tier cpu_varied --workdir /work/zs_varied --reuse
    python3 benchmarks/bench_zero_shot.py --tier full --workdir /tmp/malenia_zs --shape 48 --epochs 30 --iterations 10

`--stage train` stops after step 2, `--stage evaluate` runs only step 3 (on a finished workdir).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_training as bt  # noqa: E402  (the shared synth / train / timing helpers)

ZS = (905, "MaleniaZS")
ORACLE = (906, "MaleniaZSOracle")
TIERS = {
    # min_lesion_ml: predicted lesions under it are not findings (the tier's smallest lesion is ~2.3 ml)
    "cpu": {"configuration": "3d_cpu", "min_lesion_ml": 0.5, "preset": "cpu",
            "trainers": {ZS: ["nnUNetTrainer_cpu", "nnUNetTrainerMalenia_cpu", "nnUNetTrainerMalenia_nameonly_cpu"],
                         ORACLE: ["nnUNetTrainer_cpu", "nnUNetTrainer_cpu_nnunetrecipe"]},
            # method changes measured one at a time (benchmarks/trainers/): only with --only
            "ablations": {ZS: ["nnUNetTrainerMalenia_cpu_centred", "nnUNetTrainerMalenia_cpu_lw01",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_inhead",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_tissue",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_nameonly",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_maskshape",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_relative",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_featureblobs",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_paste",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_paste",
                                   "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs_paste",
                                   # the recipe as the plugin ships it (nnunetv2_malenia/training/zero_shot_recipe.py)
                                   "nnUNetTrainerMalenia_cpu_zeroshot", "nnUNetTrainerMalenia_nameonly_cpu_zeroshot",
                                   # the recipe with one change on top (benchmarks/trainers/)
                                   "nnUNetTrainerMalenia_cpu_zeroshot_predmask",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_ownblobs",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_detached",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_featureblobs",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_detached_ownblobs",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_lobedblobs",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_surfaceblobs",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_paste",
                                   "nnUNetTrainerMalenia_cpu_zeroshot_paste_grown"]}},
    "full": {"configuration": "3d_fullres", "min_lesion_ml": 0.0,
             "trainers": {ZS: ["nnUNetTrainer_bench", "nnUNetTrainerMalenia_bench",
                               "nnUNetTrainerMalenia_nameonly_bench", "nnUNetTrainerMalenia_benchSGD"],
                          ORACLE: ["nnUNetTrainer_bench"]}},
}
# The CPU tier whose seen rows vary within a disease (attribute_tables/synthetic_cpu_varied_knowledge_table.yaml):
# same configuration, recipe and models.
TIERS["cpu_varied"] = {**TIERS["cpu"], "preset": "cpu_varied"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary folder)")
    parser.add_argument("--tier", choices=sorted(TIERS), default="cpu",
                        help="benchmark tier (default: %(default)s: the CPU tier, its 3d_cpu configuration and recipe)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed of both datasets (default: %(default)s)")
    parser.add_argument("--shape", type=int, default=48, help="full tier: voxels per axis of the phantoms (default: %(default)s)")
    parser.add_argument("--test-cases", type=int, default=26, help="full tier: test cases (default: %(default)s, 2 per disease)")
    parser.add_argument("--epochs", type=int, default=30, help="full tier: epochs (the CPU tier's schedule is the recipe's)")
    parser.add_argument("--iterations", type=int, default=10, help="full tier: training iterations per epoch")
    parser.add_argument("--val-iterations", type=int, default=2, help="full tier: validation iterations per epoch")
    parser.add_argument("--n-proc-da", type=int, default=2, help="nnUNet_n_proc_DA")
    parser.add_argument("--stage", choices=("all", "train", "evaluate"), default="all")
    parser.add_argument("--reuse", action="store_true", help="keep datasets, and trainings made with the same schedule and trainer settings")
    parser.add_argument("--only", action="append", default=None, metavar="MODEL",
                        help="train / evaluate only this model (repeatable): a trainer on 905, or 906/TRAINER "
                             "(default: all of them)")
    parser.add_argument("--variant", action="append", default=[], metavar="TRAINER:KEY=VALUE[,KEY=VALUE]",
                        help="also evaluate a trained Malenia model of 905 with MaleniaConfig fields changed at "
                             "inference (same weights), e.g. nnUNetTrainerMalenia_cpu:lesion_presence=nnunet or "
                             "T:lesion_naming=hybrid,seen_row_penalty=1.0; named TRAINER-KEY-VALUE[-KEY-VALUE] in "
                             "the table (repeatable)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the benchmark table and plot (default: WORKDIR/benchmark)")
    args = parser.parse_args()

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="malenia_zero_shot_"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = bt.bench_env(workdir, args)
    tier = TIERS[args.tier]
    configuration, trainers = tier["configuration"], tier["trainers"]
    if "preset" in tier:
        from nnunetv2_malenia.training.cpu_recipe import CpuRecipe
        schedule = {"tier": args.tier, **CpuRecipe.cpu_schedule, "lr": CpuRecipe.cpu_lr, "n_proc_da": args.n_proc_da,
                    "seed": args.seed}
        synth, cases = ("--preset", tier["preset"]), None
    else:
        schedule = {"epochs": args.epochs, "iterations": args.iterations, "val_iterations": args.val_iterations,
                    "n_proc_da": args.n_proc_da, "shape": args.shape, "seed": args.seed}
        synth = ("--shape", *[str(args.shape)] * 3, "--test-cases", str(args.test_cases))
        cases = 40
    print(f"workdir {workdir}", flush=True)
    # (dataset, trainer, spec): spec is how `malenia benchmark -tr` names the model
    entries = [(ZS, t, t) for t in trainers[ZS]] + [(ORACLE, t, f"{ORACLE[0]}/{t}") for t in trainers[ORACLE]]
    entries += [(ZS, t, t) for t in tier.get("ablations", {}).get(ZS, []) if t in (args.only or ())]
    specs = [spec for _, _, spec in entries] + list(tier.get("ablations", {}).get(ZS, []))
    unknown = sorted(set(args.only or ()) - set(specs))
    if unknown:
        parser.error(f"--only {unknown[0]}: not a model of this benchmark; choose from {', '.join(specs)}")
    entries = [entry for entry in entries if args.only is None or entry[2] in args.only]
    if args.stage in ("all", "train"):
        for (dataset_id, name), extra in ((ZS, ()), (ORACLE, ("--no-unseen",))):
            chosen = [trainer for dataset, trainer, _ in entries if dataset == (dataset_id, name)]
            if not chosen and dataset_id != ZS[0]:   # 905 is always made: its test set scores every model
                continue
            bt.prepare_dataset(workdir, env, args.reuse, dataset_id, name, synth + extra, cases, args.seed)
            if configuration != "3d_fullres":
                bt.run(["malenia", "cpu-config", "-d", str(dataset_id), "--name", configuration], env,
                       workdir / "logs" / f"cpu_config_{dataset_id}.log", workdir)
            for trainer in chosen:
                result = bt.train(workdir, env, trainer, schedule, args.reuse, dataset_id, name, configuration)
                print(f"{dataset_id} {trainer}: {result['wall_s']:.0f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
                      flush=True)
    if args.stage in ("all", "evaluate"):
        for variant in args.variant:
            name = eval_variant(workdir, variant, configuration)
            entries.append((ZS, name, name))
        output = (args.output or workdir / "benchmark").resolve()
        base = ["malenia", "benchmark", "-d", str(ZS[0]), "-c", configuration, "--folds", "0", "-o", str(output),
                "--device", "cpu", "--disable-tta", "--min-lesion-ml", str(tier["min_lesion_ml"])]
        costs = []
        for dataset, trainer, spec in entries:  # one process per model: its own wall time and peak memory
            if not (bt.fold_dir(workdir, trainer, *dataset, configuration) / "checkpoint_final.pth").is_file():
                print(f"skipping {spec}: not trained", flush=True)
                continue
            record = output / "predictions" / spec.replace("/", "_") / "fold_0" / "raw" / "prediction.json"
            reused = record.is_file()
            predicted = bt.run(base + ["-tr", spec, "--no-cv"], env, workdir / "logs" / f"predict_{spec.replace('/', '_')}.log",
                               workdir)
            # the prediction step's own time (not the process's start-up and scoring); a reused
            # prediction's is from when it was made, and its peak memory is not this run's
            predicted = {"wall_s": json.loads(record.read_text())["seconds"],
                         "peak_rss_mb": None if reused else predicted["peak_rss_mb"]}
            trained = json.loads((bt.fold_dir(workdir, trainer, *dataset, configuration).parent /
                                  "bench_run.json").read_text())
            epoch_times = sorted(e["epoch_time_s"] for e in trained["epochs"] if "epoch_time_s" in e)
            costs.append({"model": spec, "train_s": trained["train_s"], "train_peak_mb": trained["peak_rss_mb"],
                          # the fastest epoch: least disturbed by other work on a shared machine
                          "epoch_min_s": epoch_times[0], "epoch_median_s": epoch_times[len(epoch_times) // 2],
                          "predict_s": predicted["wall_s"], "predict_peak_mb": predicted["peak_rss_mb"]})
        command = base + [arg for _, _, spec in entries for arg in ("-tr", spec)
                          if any(c["model"] == spec for c in costs)]
        print("$ " + " ".join(command), flush=True)
        status = subprocess.call(command, env=env)  # reuses the predictions: the table of all models
        if status:
            return status
        (output / "schedule.json").write_text(json.dumps(schedule, indent=1))
        (output / "costs.json").write_text(json.dumps(costs, indent=1))
        (output / "costs.md").write_text(cost_table(costs, trainers[ZS][0]))
        print(cost_table(costs, trainers[ZS][0]))
    return 0


def eval_variant(workdir: Path, variant: str, configuration: str) -> str:
    """A model folder that shares a trained Malenia model's weights but not its eval rule.

    nnU-Net's predictor rebuilds the network from the folder's plans.json, so a copy of that file
    with one MaleniaConfig field changed, beside links to the trained folds, is the same network
    with another inference setting: an ablation of an eval rule costs no training.
    """
    from nnunetv2_malenia.network.config import PLANS_KEY, MaleniaConfig

    trainer, _, settings = variant.partition(":")
    pairs = [setting.partition("=")[::2] for setting in settings.split(",")]
    source = bt.fold_dir(workdir, trainer, *ZS, configuration).parent
    if not (source / "plans.json").is_file() or not all(key and value for key, value in pairs):
        raise SystemExit(f"--variant {variant}: give TRAINER:KEY=VALUE[,KEY=VALUE] for a trained Malenia model of {ZS[0]}")
    plans = json.loads((source / "plans.json").read_text())
    # fields added since the model was trained take their defaults
    config = {**MaleniaConfig().to_dict(), **plans[PLANS_KEY]["config"]}
    for key, value in pairs:
        if key not in config:
            raise SystemExit(f"--variant {variant}: {key!r} is not a MaleniaConfig field ({', '.join(config)})")
        config[key] = type(config[key])(value) if not isinstance(config[key], bool) else value.lower() in ("1", "true")
    plans[PLANS_KEY]["config"] = MaleniaConfig.from_dict(config).to_dict()
    name = "-".join([trainer, *(f"{key}-{value}" for key, value in pairs)])
    target = source.parent / source.name.replace(trainer, name, 1)
    for fold in sorted(source.glob("fold_*")):
        (target / fold.name).mkdir(parents=True, exist_ok=True)
        for file in ("checkpoint_final.pth",):
            link = target / fold.name / file
            if (fold / file).is_file() and not link.exists():
                link.symlink_to(fold / file)
    (target / "plans.json").write_text(json.dumps(plans, indent=1))
    for file in ("dataset.json", "dataset_fingerprint.json", "bench_run.json"):
        if (source / file).is_file():
            (target / file).write_text((source / file).read_text())
    return name


def cost_table(costs: list[dict], baseline: str) -> str:
    """Training and prediction wall time and peak RSS, as ratios to nnUNetTrainer (`baseline`) on the same data.
    A prediction reused from an earlier run has its own time (prediction.json) and no peak RSS ("-")."""
    base = next((c for c in costs if c["model"] == baseline), None)
    lines = ["| model | training wall (s) | fastest epoch (s) | median epoch (s) | training peak RSS (MB) | "
             "test prediction (s) | prediction peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    for c in costs:
        cells = []
        for key in ("train_s", "epoch_min_s", "epoch_median_s", "train_peak_mb", "predict_s", "predict_peak_mb"):
            if c[key] is None:
                cells.append("-")
                continue
            ratio = f" ({c[key] / base[key]:.2f}x)" if base and base[key] else ""
            cells.append(f"{c[key]:.1f}{ratio}" if key.startswith("epoch") else f"{c[key]:.0f}{ratio}")
        lines.append(f"| {c['model']} | " + " | ".join(cells) + " |")
    lines.append("\nTest prediction: the prediction step's own time (`malenia benchmark`'s prediction.json); "
                 "peak RSS \"-\" where the predictions were reused from an earlier run and only scored.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
