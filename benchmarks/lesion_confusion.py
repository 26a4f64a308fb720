"""Where each lesion class's voxels go, and where a model paints a class a case does not hold.

Reads a folder of label maps numbered as the ground truth (`malenia benchmark` writes them to
OUT/predictions/MODEL/fold_F/labels) and the synthetic test set's labelsTs, and prints per lesion
class: the mean DSC over the cases whose ground truth holds it ("on its cases"), the number of
cases without it in which the prediction paints some of it (each scores DSC 0) with their median
size, and the share of its ground-truth voxels given to each predicted label.

    python3 benchmarks/lesion_confusion.py \\
        /work/zs_cpu/bench_ub/predictions/906_nnUNetTrainer_cpu/fold_0/labels \\
        /work/zs_cpu/nnUNet_raw/Dataset905_MaleniaZS
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, help="label maps numbered as dataset_test.json")
    parser.add_argument("raw", type=Path, help="raw synthetic dataset with labelsTs and dataset_test.json")
    args = parser.parse_args()
    test = json.loads((args.raw / "dataset_test.json").read_text())
    names = {**test["seen_diseases"], **test["unseen_diseases"]}
    label_name = {v: k for k, v in test["labels"].items()}
    stats = {n: {"on": [], "false": [], "voxels": {}} for n in names}
    for truth_file in sorted((args.raw / "labelsTs").glob("*.nii.gz")):
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file)))
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(args.predictions / truth_file.name)))
        for name, label in names.items():
            gt, pred = truth == label, predicted == label
            if gt.any():
                stats[name]["on"].append(2 * (gt & pred).sum() / (gt.sum() + pred.sum()))
                for value, count in zip(*np.unique(predicted[gt], return_counts=True)):
                    stats[name]["voxels"][int(value)] = stats[name]["voxels"].get(int(value), 0) + int(count)
            elif pred.any():
                stats[name]["false"].append(int(pred.sum()))
    print("| class | on its cases (cases) | false-positive cases (median voxels) | its voxels predicted as |")
    print("|---|---|---|---|")
    for name, s in stats.items():
        total = sum(s["voxels"].values()) or 1
        top = sorted(s["voxels"].items(), key=lambda kv: -kv[1])[:4]
        shares = ", ".join(f"{label_name.get(v, v)} {100 * c / total:.0f} %" for v, c in top)
        median = f"{np.median(s['false']):.0f}" if s["false"] else "-"
        on = f"{100 * np.mean(s['on']):.1f}" if s["on"] else "n/a"
        print(f"| {name} | {on} ({len(s['on'])}) | {len(s['false'])} ({median}) | {shares} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
