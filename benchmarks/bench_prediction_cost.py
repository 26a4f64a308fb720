"""Prediction cost: `malenia predict` and `nnUNetv2_predict` of a Malenia model against
`nnUNetv2_predict` of nnUNetTrainer, same data, same plans configuration, one run.

Three commands, each a whole process (model loading, preprocessing, sliding window, export),
interleaved A B C A B C ... so that a drift of the machine's speed hits all three alike; per
command the median wall time and peak memory (/usr/bin/time -v), and the ratios to A run by run:

    A  nnUNetv2_predict -d ID -c CONF -f 0 -tr nnUNetTrainer_cpu          (the reference)
    B  nnUNetv2_predict -d ID -c CONF -f 0 -tr MALENIA_TRAINER            (label maps only)
    C  malenia predict -m MALENIA_MODEL -f 0                              (label maps + lesion reports)

on two image folders: the CPU tier's test set (48^3, one window per case) and, with `--large`,
cases of the same generator at 64^3 (8 windows of 48^3 per case). nnU-Net's preprocessing and
export run in the main process (-npp 0 -nps 0) for every command alike. Run it on an idle
machine: two cores shared with a training make every figure wrong.

    python3 benchmarks/bench_prediction_cost.py --workdir /work/zs_cpu \\
        --malenia nnUNetTrainerMalenia_cpu_lw01 --runs 3 --large 10
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_training as bt  # noqa: E402

DATASET = (905, "MaleniaZS")


def large_cases(workdir: Path, env: dict, cases: int) -> Path:
    """`cases` test cases of the CPU tier's generator at 64^3 (made once)."""
    root = workdir / "cost_64"
    folder = root / f"Dataset{DATASET[0] + 50}_MaleniaCost64" / "imagesTs"
    if not folder.is_dir():
        bt.run(["malenia", "synth", "-d", str(DATASET[0] + 50), "--name", "MaleniaCost64", "--preset", "cpu",
                "--shape", "64", "64", "64", "--cases", "4", "--test-cases", str(cases), "--seed", "1",
                "--output-root", str(root)], env, workdir / "logs" / "cost_64_synth.log", workdir)
    return folder


def commands(workdir: Path, malenia: str, configuration: str, images: Path, out: Path) -> dict[str, list[str]]:
    model = bt.fold_dir(workdir, malenia, *DATASET, configuration).parent
    stock = ["-d", str(DATASET[0]), "-c", configuration, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"]
    return {
        "A nnUNetv2_predict nnUNetTrainer_cpu": ["nnUNetv2_predict", "-i", str(images), "-o", str(out / "A"),
                                                 "-tr", "nnUNetTrainer_cpu", *stock],
        f"B nnUNetv2_predict {malenia}": ["nnUNetv2_predict", "-i", str(images), "-o", str(out / "B"),
                                          "-tr", malenia, *stock],
        f"C malenia predict {malenia}": ["malenia", "predict", "-i", str(images), "-o", str(out / "C"), "-m", str(model),
                                         "-f", "0", "--device", "cpu", "--overwrite"],
    }


def measure(named: dict[str, list[str]], env: dict, runs: int, logs: Path, cwd: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in named}
    for r in range(runs):
        for name, cmd in named.items():
            results[name].append(bt.run(cmd, env, logs / f"{name.split()[0]}_{r}.log", cwd))
    return results


def table(title: str, results: dict[str, list[dict]]) -> str:
    names = list(results)
    reference = results[names[0]]
    lines = [f"**{title}**", "", "| command | wall s (median) | x A (median of run-by-run ratios) | peak RSS MB | x A |",
             "|---|---|---|---|---|"]
    for name in names:
        walls = [r["wall_s"] for r in results[name]]
        ratios = [r["wall_s"] / a["wall_s"] for r, a in zip(results[name], reference)]
        peaks = [r["peak_rss_mb"] for r in results[name]]
        peak_ratio = statistics.median(peaks) / statistics.median(r["peak_rss_mb"] for r in reference)
        lines.append(f"| {name} | {statistics.median(walls):.1f} | {statistics.median(ratios):.2f} "
                     f"(min {min(ratios):.2f}, max {max(ratios):.2f}) | {statistics.median(peaks):.0f} | {peak_ratio:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True,
                        help="a bench_zero_shot.py work folder with nnUNetTrainer_cpu and the Malenia model trained")
    parser.add_argument("--malenia", default="nnUNetTrainerMalenia_cpu", help="Malenia trainer of the model (default: %(default)s)")
    parser.add_argument("--configuration", default="3d_cpu")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (default: %(default)s)")
    parser.add_argument("--large", type=int, default=0, metavar="N",
                        help="also time N cases at 64^3 (several windows each; default: 0, off)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    env = {**os.environ, "nnUNet_raw": str(workdir / "nnUNet_raw"),
           "nnUNet_preprocessed": str(workdir / "nnUNet_preprocessed"),
           "nnUNet_results": str(workdir / "nnUNet_results"), "nnUNet_compile": "0",
           "nnUNet_n_proc_DA": "2", "nnUNet_def_n_proc": "2", "OMP_NUM_THREADS": "2"}
    bt.with_bench_trainers(env)   # nnUNetv2_predict must find the benchmark's trainer classes by name
    for trainer in ("nnUNetTrainer_cpu", args.malenia):
        if not (bt.fold_dir(workdir, trainer, *DATASET, args.configuration) / "checkpoint_final.pth").is_file():
            parser.error(f"{trainer} is not trained in {workdir} (fold 0, {args.configuration})")
    folders = {"CPU tier test set (40 cases, 48^3)": workdir / "nnUNet_raw" / f"Dataset{DATASET[0]}_{DATASET[1]}" / "imagesTs"}
    if args.large:
        folders[f"{args.large} cases at 64^3"] = large_cases(workdir, env, args.large)
    out = workdir / "prediction_cost"
    sections, raw = [], {}
    for title, images in folders.items():
        key = "large" if "64" in title else "tier"
        results = measure(commands(workdir, args.malenia, args.configuration, images, out / key), env, args.runs,
                          out / "logs" / key, workdir)
        raw[title] = results
        sections.append(table(title, results))
        print(sections[-1], flush=True)
    (out / "cost.md").write_text("\n\n".join(sections) + "\n")
    (out / "cost.json").write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
