"""Measure the open-set threshold and zero-shot attribute recognition on ground-truth lesions.

For every lesion of the synthetic test set (a connected component of a lesion label in
`labelsTs`, i.e. localisation given, so this measures the text side independently of mask
quality) the trained network reads it exactly as `malenia predict` reads a predicted lesion
(`lesion_reports` on nnU-Net's sliding-window pass: the token overlapping it best). Two numbers per
lesion:

- its attribute readout against the lesion's true values (`lesion_attributes.json`): accuracy per
  attribute type, seen and unseen diseases apart (zero-shot attribute recognition);
- its best row match against a table holding only the diseases the model was trained on, so that
  every unseen-disease lesion is, for this table, an unknown lesion: the area under the ROC curve
  of best match for seen vs unseen, and the threshold with the best balanced accuracy.

Writes OUT/open_set.json and OUT/open_set.png (histograms of best match) and prints a summary.

    python3 benchmarks/bench_open_set.py \\
        -m /tmp/malenia_zs/nnUNet_results/Dataset905_MaleniaZS/nnUNetTrainerMalenia_bench__nnUNetPlans__3d_fullres \\
        -r /tmp/malenia_zs/nnUNet_raw/Dataset905_MaleniaZS -o /tmp/malenia_zs/open_set
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_test_reader import load_model, model_arguments, test_cases, test_split  # noqa: E402

from nnunetv2_malenia.inference.open_set import MIN_AUROC_FOR_DEFAULT, store_model_threshold  # noqa: E402


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    if not positive or not negative:
        return float("nan")
    p, n = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def best_threshold(known: list[float], unknown: list[float]) -> tuple[float, float]:
    """(threshold, balanced accuracy) maximising (share of known kept + share of unknown flagged) / 2."""
    best = (0.0, 0.5)
    for t in sorted({0.0, *known, *unknown, 1.0}):
        kept = np.mean([m >= t for m in known]) if known else 0.0
        flagged = np.mean([m < t for m in unknown]) if unknown else 0.0
        if (kept + flagged) / 2 > best[1]:
            best = (float(t), float((kept + flagged) / 2))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_arguments(parser)
    parser.add_argument("--store", action="store_true",
                        help="store the best threshold with the model (MODEL/open_set_threshold.json), for "
                        f"`malenia predict` to use by default, when the AUROC is at least {MIN_AUROC_FOR_DEFAULT}; else store nothing")
    args = parser.parse_args()

    import torch

    from nnunetv2_malenia.inference.lesion_report import lesion_reports
    from nnunetv2_malenia.knowledge import KnowledgeTable

    def seen_rows(full, model):
        seen = set(model.disease_of_label.values())
        return KnowledgeTable(f"{full.name}-seen-only", full.vocabulary,
                              tuple(row for row in full.diseases if row.name in seen), full.source)

    predictor, network = load_model(args.model, args.fold, seen_rows)
    full, seen_only = predictor.model.table, predictor.table
    test, disease_of_label, truth = test_split(args.raw)
    rows = []
    for case, data, seg, properties in test_cases(predictor, args.raw):
        _, windows = predictor.predict_with_windows(torch.from_numpy(data), candidate_mass=0.0)  # every voxel
        reports = lesion_reports(network, windows, seg, disease_of_label, seen_only, properties,
                                 predictor.plans_manager.transpose_forward, tuple(predictor.configuration_manager.spacing))
        for report in reports:
            record = truth[case][str(report.label)]
            correct = {}
            for key, readout in report.attributes.items():
                value = record["attributes"][key]
                correct[key] = readout["value"] in (value if isinstance(value, list) else [value])
            rows.append({"case": case, "disease": record["disease"],
                         "kind": "unseen" if record["disease"] in test["unseen_diseases"] else "seen",
                         "best_match": report.best_match, "closest_seen_row": max(report.row_match, key=report.row_match.get),
                         "voxels": report.voxels, "correct": correct})

    kinds = {k: [r for r in rows if r["kind"] == k] for k in ("seen", "unseen")}
    matches = {k: [r["best_match"] for r in v] for k, v in kinds.items()}
    threshold, balanced = best_threshold(matches["seen"], matches["unseen"])
    accuracy = {k: {key: float(np.mean([r["correct"][key] for r in v])) for key in full.vocabulary.type_keys}
                for k, v in kinds.items() if v}
    result = {"model": str(args.model), "fold": args.fold, "lesions": {k: len(v) for k, v in kinds.items()},
              "attribute_accuracy": accuracy,
              "best_match": {k: {"median": float(np.median(v)), "quartiles": [float(np.percentile(v, q)) for q in (25, 75)]}
                             for k, v in matches.items() if v},
              "auroc_seen_vs_unseen": auroc(matches["seen"], matches["unseen"]),
              "best_threshold": threshold, "balanced_accuracy": balanced,
              "at_threshold": {f"{t:g}": {"seen_kept": float(np.mean([m >= t for m in matches["seen"]])),
                                          "unseen_flagged": float(np.mean([m < t for m in matches["unseen"]]))}
                               for t in (0.3, 0.4, 0.5, 0.6, 0.7, threshold) if matches["seen"] and matches["unseen"]},
              "rows": rows}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "open_set.json").write_text(json.dumps(result, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for kind, values in matches.items():
        if values:
            ax.hist(values, bins=np.linspace(0, 1, 21), alpha=0.55, label=f"{kind} diseases ({len(values)} lesions)")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"best threshold {threshold:.2f}")
    ax.set_xlabel("best row match against the seen-only table")
    ax.set_ylabel("lesions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output / "open_set.png", dpi=110)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.store:
        stored = store_model_threshold(args.model, threshold, result["auroc_seen_vs_unseen"],
                                       f"ground-truth lesions of {args.raw} (test cases), fold {args.fold}")
        print(f"threshold {threshold:.4f} stored in {stored}" if stored else
              f"threshold not stored: AUROC {result['auroc_seen_vs_unseen']:.2f} < {MIN_AUROC_FOR_DEFAULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
