"""How a synthetic dataset draws each attribute value: a lesion's CT numbers against its organ's.

A value can be read zero-shot only if the seen lesions that carry it look like the unseen ones
that do. This prints, per disease, value of one attribute type and phase, the median over lesions
of (lesion median HU - median HU of its organ in a ring around it) and the lesion's 90th
percentile, from the raw images (before nnU-Net's clipping), training and test cases together.

    python3 benchmarks/lesion_contrast.py /work/zs_varied/nnUNet_raw/Dataset905_MaleniaZS --type density
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

RING_VOXELS = 4


def lesion_contrasts(raw: Path, type_key: str) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """(disease, value, phase) -> [(lesion median - host ring median, lesion 90th percentile)] in HU."""
    import SimpleITK as sitk
    from scipy import ndimage

    dataset = json.loads((raw / "dataset.json").read_text())
    truth = json.loads((raw / "lesion_attributes.json").read_text())["cases"]
    lesion_labels = {int(label) for case in truth.values() for label in case}
    organ_labels = [v for k, v in dataset["labels"].items() if v > 0 and v not in lesion_labels]
    out: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for split in ("Tr", "Ts"):
        for path in sorted((raw / f"labels{split}").glob("*.nii.gz")):
            case = path.name[:-len(".nii.gz")]
            if case not in truth:
                continue
            labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / f"images{split}" / f"{case}_0000.nii.gz")))
            for label, record in truth[case].items():
                mask = labels == int(label)
                if mask.sum() < 50:
                    continue
                ring = (ndimage.binary_dilation(mask, iterations=RING_VOXELS) & ~ndimage.binary_dilation(mask)
                        & np.isin(labels, organ_labels))
                if ring.sum() < 10:
                    continue
                value = record["attributes"][type_key]
                for v in value if isinstance(value, list) else [value]:
                    key = (record["disease"], v, record["attributes"].get("enhancement_status", "-"))
                    out[key].append((float(np.median(image[mask]) - np.median(image[ring])),
                                     float(np.percentile(image[mask], 90))))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, help="raw folder of a `malenia synth` dataset (with lesion_attributes.json)")
    parser.add_argument("--type", default="density", help="attribute type key (default: density)")
    args = parser.parse_args()
    if not (args.raw / "lesion_attributes.json").is_file():
        parser.error(f"{args.raw}: no lesion_attributes.json; pass the raw folder of a `malenia synth` dataset")
    unseen = set(json.loads((args.raw / "dataset_test.json").read_text()).get("unseen_diseases", []))
    print(f"| disease | {args.type} | phase | lesions | contrast to the organ (HU, median) | lesion 90th percentile (HU, median) |")
    print("|---|---|---|---|---|---|")
    for (disease, value, phase), rows in sorted(lesion_contrasts(args.raw, args.type).items()):
        contrast, p90 = np.median(np.array(rows), axis=0)
        name = f"{disease} (unseen)" if disease in unseen else disease
        print(f"| {name} | {value} | {phase} | {len(rows)} | {contrast:+.0f} | {p90:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
