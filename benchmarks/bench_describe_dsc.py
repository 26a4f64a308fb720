"""Unseen lesions segmented from plain-English descriptions against their true table rows.

The second measurement of free-text queries (docs/free_text.md): how much segmentation a
description loses against the curated row. For each of the three paraphrase sets of
benchmarks/data/free_text_descriptions.yaml (description k of every disease), every unseen
disease's row of the test table is replaced by the row parsed from its description, with the
parser of `malenia predict --describe` and `malenia tables from-text` and the model's text tower;
the seen rows stay. `malenia benchmark` then scores the test set exactly as bench_zero_shot.py
does (one disease per lesion, `--min-lesion-ml`), and once more with the true table. The parsed
rows keep the disease's name, so the benchmark maps their labels to the ground truth by name (with
`--describe` the row would get a new name and label of its own: same parse, same scoring rule).

    python3 benchmarks/bench_describe_dsc.py --workdir /work/zs_varied \\
        -tr nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly

Needs a trained model in WORKDIR/nnUNet_results (bench_zero_shot.py); about a minute of prediction
per table on 2 CPU cores. Writes OUTPUT/describe_dsc.md (and the tables and benchmark folders).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_training import nnunet_env  # noqa: E402
from nnunetv2_malenia.knowledge import load_knowledge_table  # noqa: E402
from nnunetv2_malenia.knowledge.free_text import parse_description, tower_embedder  # noqa: E402

DATA = REPO / "benchmarks" / "data" / "free_text_descriptions.yaml"
DATASET = "Dataset905_MaleniaZS"


def unseen_diseases(raw: Path) -> list[str]:
    """Test labels the training dataset does not have, in test-label order."""
    train = json.loads((raw / "dataset.json").read_text())["labels"]
    test = json.loads((raw / "dataset_test.json").read_text())["labels"]
    return [name for name, _ in sorted(test.items(), key=lambda kv: kv[1]) if name not in train]


def described_table(raw: Path, unseen: list[str], descriptions: dict, k: int, vocabulary, embed,
                    target: Path) -> dict:
    """Write the test table with each unseen row parsed from description k; returns {disease: parsed values}."""
    doc = yaml.safe_load((raw / "knowledge_table.yaml").read_text())
    parsed = {}
    for i, row in enumerate(doc["diseases"]):
        if row["name"] in unseen:
            text = descriptions[row["name"]][k]["text"]
            result = parse_description(row["name"], text, vocabulary, embed)
            doc["diseases"][i] = result.yaml_row()
            parsed[row["name"]] = {"text": text, "values": {t: list(v) for t, v in result.values.items()}}
    doc["name"] = f"{doc['name']} (unseen rows from descriptions, set {k})"
    vocab = Path(doc["vocabulary"])
    doc["vocabulary"] = str(vocab if vocab.is_absolute() else (raw / vocab).resolve())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200))
    load_knowledge_table(target)  # the benchmark must not be the first to find a bad table
    return parsed


def benchmark(env: dict, trainer: str, configuration: str, table: Path, output: Path, min_lesion_ml: float,
              reuse: bool) -> dict[str, float]:
    """Test-set DSC per label (fraction) of one model with one table: `malenia benchmark`."""
    result = output / "benchmark.csv"
    if not (reuse and result.is_file()):
        cmd = ["malenia", "benchmark", "-d", DATASET, "-tr", trainer, "-c", configuration, "--table", str(table),
               "--folds", "0", "--no-cv", "--device", "cpu", "--min-lesion-ml", str(min_lesion_ml), "-o", str(output)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, env=env, check=True)
    with result.open() as f:
        return {row["label"]: float(row["dsc"]) for row in csv.DictReader(f) if row["source"] == "test"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="bench_zero_shot.py's workdir (nnUNet_raw, ...)")
    parser.add_argument("-tr", "--trainer", required=True, help="a Malenia model trained on 905 in the workdir")
    parser.add_argument("-c", "--configuration", default="3d_cpu", help="default: %(default)s")
    parser.add_argument("--tower", default="default", help="the model's text tower (default: %(default)s)")
    parser.add_argument("--min-lesion-ml", type=float, default=0.5, help="as the CPU tiers (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None, help="default: WORKDIR/describe_dsc/TRAINER")
    parser.add_argument("--reuse", action="store_true", help="keep benchmark results that exist")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    output = (args.output or workdir / "describe_dsc" / args.trainer).resolve()
    raw = workdir / "nnUNet_raw" / DATASET
    env = nnunet_env(workdir)
    unseen = unseen_diseases(raw)
    descriptions = yaml.safe_load(DATA.read_text())["diseases"]
    missing = [d for d in unseen if d not in descriptions]
    if missing:
        parser.error(f"{DATA}: no descriptions of unseen disease {missing[0]!r}")
    sets = min(len(descriptions[d]) for d in unseen)
    true_table = load_knowledge_table(raw / "knowledge_table.yaml")
    embed = tower_embedder(args.tower)

    scores = {"true rows": benchmark(env, args.trainer, args.configuration, raw / "knowledge_table.yaml",
                                     output / "true_rows", args.min_lesion_ml, args.reuse)}
    parsed = {}
    for k in range(sets):
        table = output / "tables" / f"described_{k}.yaml"
        parsed[k] = described_table(raw, unseen, descriptions, k, true_table.vocabulary, embed, table)
        scores[f"description {k + 1}"] = benchmark(env, args.trainer, args.configuration, table,
                                                   output / f"described_{k}", args.min_lesion_ml, args.reuse)

    def mean(values):
        return sum(values) / len(values)

    columns = list(scores)
    lines = [f"Test DSC (%) of `{args.trainer}` on {workdir.name}, fold 0: unseen rows from the table, or parsed "
             f"from description k of benchmarks/data/free_text_descriptions.yaml (seen rows unchanged).", "",
             "| class | " + " | ".join(columns) + " | mean of descriptions |",
             "|---|" + "---|" * (len(columns) + 1)]
    for label in unseen + ["mean unseen"]:
        if label == "mean unseen":
            row = [mean([scores[c][d] for d in unseen]) for c in columns]
        else:
            row = [scores[c][label] for c in columns]
        lines.append(f"| {label} | " + " | ".join(f"{100 * v:.1f}" for v in row) +
                     f" | {100 * mean(row[1:]):.1f} |")
    seen_lesions = [name for name in json.loads((raw / "dataset.json").read_text())["labels"]
                    if name in true_table.disease_names]
    row = [mean([scores[c][d] for d in seen_lesions]) for c in columns]
    lines.append("| mean seen | " + " | ".join(f"{100 * v:.1f}" for v in row) + f" | {100 * mean(row[1:]):.1f} |")
    lines += ["", "Parsed rows (types left empty are scored as chance):", ""]
    for k, rows in parsed.items():
        for disease, p in rows.items():
            values = "; ".join(f"{t}: {', '.join(v) if v else '(empty)'}" for t, v in p["values"].items())
            lines.append(f"- description {k + 1}, {disease}: \"{p['text']}\" -> {values}")
    (output / "describe_dsc.md").write_text("\n".join(lines) + "\n")
    (output / "describe_dsc.json").write_text(json.dumps({"scores": scores, "parsed": parsed}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
