"""Where each lesion class's voxels go, and where a model paints a class a case does not hold.

Reads a folder of label maps numbered as the ground truth (`malenia benchmark` writes them to
OUT/predictions/MODEL/fold_F/labels) and the synthetic test set's labelsTs, and prints per lesion
class: the mean DSC over the cases whose ground truth holds it ("on its cases"), the number of
cases without it in which the prediction paints some of it (each scores DSC 0) with their median
size, and the share of its ground-truth voxels given to each predicted label.

Two more columns split a class's DSC into its two halves: "found" is the share of its voxels
given some lesion label (any disease), and "if named right" the DSC on its cases after every
predicted lesion (a connected component of the lesion labels) that overlaps ground-truth lesions
takes the disease most of those voxels carry: what the model would score if naming were perfect
and finding stayed as it is. The distance from there to the upper bound is finding; from the DSC
up to there, naming.

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
from scipy import ndimage


def named_right(predicted: np.ndarray, truth: np.ndarray, lesion_values: np.ndarray) -> np.ndarray:
    """`predicted` with every connected predicted lesion that overlaps ground-truth lesions renamed
    to the disease most of the overlapping voxels carry (the naming oracle); lesions overlapping no
    ground-truth lesion keep their label (false positives stay false positives)."""
    is_lesion = np.isin(predicted, lesion_values)
    components, count = ndimage.label(is_lesion, structure=np.ones((3, 3, 3), dtype=bool))
    out = predicted.copy()
    both = is_lesion & np.isin(truth, lesion_values)
    if count == 0 or not both.any():
        return out
    votes = np.zeros((count + 1, lesion_values.size), dtype=np.int64)
    np.add.at(votes, (components[both], np.searchsorted(lesion_values, truth[both])), 1)
    overlapping = votes.sum(1) > 0
    rename = is_lesion & overlapping[components]
    out[rename] = lesion_values[np.argmax(votes, axis=1)][components[rename]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, help="label maps numbered as dataset_test.json")
    parser.add_argument("raw", type=Path, help="raw synthetic dataset with labelsTs and dataset_test.json")
    args = parser.parse_args()
    test = json.loads((args.raw / "dataset_test.json").read_text())
    names = {**test["seen_diseases"], **test["unseen_diseases"]}
    label_name = {v: k for k, v in test["labels"].items()}
    lesion_values = np.asarray(sorted(names.values()))
    stats = {n: {"on": [], "oracle": [], "false": [], "voxels": {}} for n in names}
    for truth_file in sorted((args.raw / "labelsTs").glob("*.nii.gz")):
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file)))
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(args.predictions / truth_file.name)))
        oracle = named_right(predicted, truth, lesion_values)
        for name, label in names.items():
            gt, pred = truth == label, predicted == label
            if gt.any():
                stats[name]["on"].append(2 * (gt & pred).sum() / (gt.sum() + pred.sum()))
                stats[name]["oracle"].append(2 * (gt & (oracle == label)).sum() / (gt.sum() + (oracle == label).sum()))
                for value, count in zip(*np.unique(predicted[gt], return_counts=True)):
                    stats[name]["voxels"][int(value)] = stats[name]["voxels"].get(int(value), 0) + int(count)
            elif pred.any():
                stats[name]["false"].append(int(pred.sum()))
    print("| class | on its cases (cases) | if named right | found | false-positive cases (median voxels) | "
          "its voxels predicted as |")
    print("|---|---|---|---|---|---|")
    for name, s in stats.items():
        total = sum(s["voxels"].values()) or 1
        top = sorted(s["voxels"].items(), key=lambda kv: -kv[1])[:4]
        shares = ", ".join(f"{label_name.get(v, v)} {100 * c / total:.0f} %" for v, c in top)
        median = f"{np.median(s['false']):.0f}" if s["false"] else "-"
        on = f"{100 * np.mean(s['on']):.1f}" if s["on"] else "n/a"
        oracle = f"{100 * np.mean(s['oracle']):.1f}" if s["oracle"] else "n/a"
        found = sum(c for v, c in s["voxels"].items() if v in set(lesion_values.tolist()))
        print(f"| {name} | {on} ({len(s['on'])}) | {oracle} | {100 * found / total:.0f} % | {len(s['false'])} ({median}) "
              f"| {shares} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
