"""Why a found lesion is misnamed at test time, when the same readout names it right with its mask
given: the mask its lesion-only types read, or how voxels are turned into one name per lesion?

`lesion_confusion.py` splits a model's test DSC into finding and naming: the zero-shot recipe
would score 58-60 on the unseen classes (and 70 on the seen ones) if every lesion it finds were
named right, against 23-25 (and 29-37) as it names them. Yet `bench_zero_shot_diagnosis.py`, which
gives the readout each ground-truth lesion's own mask and sums its disease probabilities over the
lesion, names 0.9 of seen lesions right. Two things differ at test time, and this script changes
each alone, on the same weights, per test case (the CPU tier's cases are one window):

- mask: what the lesion-only types (shape, density variation, features) read as "the lesion".
  `predicted`: what inference uses, nnU-Net's lesion mass >= 0.5 (MaleniaNetwork.predict_details);
  `true`: the ground-truth lesions' union, as in training (voxel_readout.lesion_union); `true TYPE`:
  that one type's CNN reads the true mask, the others the predicted one (which type it matters for);
  `eroded` / `dilated`: the predicted mask shrunk / grown by one voxel (6-connectivity);
  `mass >= T`: the predicted mask at another threshold of nnU-Net's lesion mass (inference: 0.5);
- naming: `vote`: every voxel takes its most likely label and each connected lesion the label most
  of its voxels carry (what `malenia benchmark` scores, lesion_vote.py); `summed`: each connected
  lesion takes the disease whose probability, summed over its voxels, is largest (what the
  diagnosis's "named by voxels" does with the mask given).

Writes OUT/probe_naming.md: DSC per class on the cases that hold it (as lesion_confusion.py's "on
its cases"), for every mask with the vote and for the predicted and true masks also summed, after
the benchmark's 0.5 ml rule.

    python3 benchmarks/probe_naming.py \\
        -m /work/zs_varied_s1/nnUNet_results/Dataset905_MaleniaZS/nnUNetTrainerMalenia_cpu_zeroshot__nnUNetPlans__3d_cpu \\
        -r /work/zs_varied_s1/nnUNet_raw/Dataset905_MaleniaZS -o /work/runs/probe_naming_seed1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zero_shot_diagnosis import _padded  # noqa: E402
from synthetic_test_reader import load_model, model_arguments, test_cases, test_split  # noqa: E402

NAMINGS = ("vote", "summed")
THRESHOLDS = (0.3, 0.8)


def mask_variants(lesion_only: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """variant name -> the types whose CNN reads the true mask (the others read the predicted one)."""
    from nnunetv2_malenia.knowledge.vocabulary import ATTRIBUTE_TYPE_KEYS

    variants = {"predicted": (), "true": tuple(lesion_only)}
    if len(lesion_only) > 1:
        variants.update({f"true {ATTRIBUTE_TYPE_KEYS[t]}": (t,) for t in lesion_only})
    variants.update({"eroded": (), "dilated": ()})
    variants.update({f"mass >= {t}": () for t in THRESHOLDS})
    return variants


def reshaped(mask, variant: str):
    """The predicted lesion mask (B, X, Y, Z) as the variant changes it (eroded, dilated or as is)."""
    import torch

    if variant not in ("eroded", "dilated"):
        return mask
    step = ndimage.binary_erosion if variant == "eroded" else ndimage.binary_dilation
    return torch.from_numpy(np.stack([step(m) for m in mask.cpu().numpy()])).to(mask.device)


def spliced_features(readout, x, pixel, predicted, true, true_types: tuple[int, ...]):
    """The per-type readout's features with the CNNs of `true_types` fed the true mask and the
    others the predicted one (PerTypeLocal stacks PER_TYPE_CHANNELS channels per type, in order)."""
    from nnunetv2_malenia.network.voxel_readout import PER_TYPE_CHANNELS

    features = readout(x, pixel, predicted)
    if true_types:
        given = readout(x, pixel, true)
        for t in true_types:
            channels = slice(t * PER_TYPE_CHANNELS, (t + 1) * PER_TYPE_CHANNELS)
            features[:, channels] = given[:, channels]
    return features


def summed_naming(labels: np.ndarray, probs: np.ndarray, lesion_values: np.ndarray) -> np.ndarray:
    """labels (X, Y, Z) with every connected lesion (26-connectivity over lesion_values) given the
    lesion label whose probability, summed over the lesion's voxels, is largest; probs (L, X, Y, Z)
    in the same numbering as labels."""
    is_lesion = np.isin(labels, lesion_values)
    components, count = ndimage.label(is_lesion, structure=np.ones((3, 3, 3), dtype=bool))
    out = labels.copy()
    if count == 0:
        return out
    mass = np.stack([ndimage.sum_labels(probs[v], components, index=np.arange(1, count + 1)) for v in lesion_values])
    winner = lesion_values[np.argmax(mass, axis=0)]  # (count,)
    out[is_lesion] = winner[components[is_lesion] - 1]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_arguments(parser)
    parser.add_argument("--min-lesion-ml", type=float, default=0.5,
                        help="predicted lesions under this are no finding, as in the benchmark (default: 0.5)")
    args = parser.parse_args()

    import torch

    from nnunetv2_malenia.evaluation.lesion_vote import one_disease_per_lesion
    from nnunetv2_malenia.network import malenia_network

    default_threshold = malenia_network.LESION_MASK_MIN_MASS

    test, disease_of_label, _ = test_split(args.raw)
    predictor, network = load_model(args.model, args.fold)
    output = predictor.dataset_json["labels"]  # name -> the model's output label, after install_table
    gt_labels = {name: value for name, value in test["labels"].items()}
    unseen = set(test["unseen_diseases"])
    lesion_values = np.asarray(sorted(disease_of_label))
    # the model's output labels renumbered as the ground truth, by name (a label it does not name: 0)
    lut = np.zeros(max(output.values()) + 1, dtype=np.int16)
    for name, value in output.items():
        lut[value] = gt_labels.get(name, 0)
    spacing_ml = None
    readout_features = network.voxel_readout.features
    variants = mask_variants(network.config.voxel_readout_lesion_only_types)
    keys = [(m, n) for m in variants for n in NAMINGS if n == "vote" or m in ("predicted", "true")]
    dice: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in keys}
    for case, data, seg, properties in test_cases(predictor, args.raw):
        if spacing_ml is None:
            spacing_ml = float(np.prod(properties["spacing"])) / 1000.0
        patch = tuple(predictor.configuration_manager.patch_size)
        image, keep = _padded(torch.from_numpy(data).float(), patch)
        truth = seg
        true_mask = _padded(torch.from_numpy(np.isin(seg, lesion_values))[None].float(), patch)[0] > 0
        for mask, true_types in variants.items():
            network.voxel_readout.features = (
                lambda x, pixel, lesions, types=true_types, variant=mask: spliced_features(
                    readout_features, x, pixel, reshaped(lesions, variant) if lesions is not None else None,
                    true_mask, types))
            malenia_network.LESION_MASK_MIN_MASS = float(mask.split(">= ")[1]) if ">=" in mask else default_threshold
            with torch.no_grad():
                log_probs = network.predict_details(image[None])["log_probs"][0]
            network.voxel_readout.features = readout_features
            malenia_network.LESION_MASK_MIN_MASS = default_threshold
            probs_out = log_probs[(slice(None), *keep)].exp().numpy()
            # probabilities per ground-truth label (labels the model adds beyond them are dropped)
            probs = np.zeros((max(gt_labels.values()) + 1, *probs_out.shape[1:]), dtype=np.float32)
            for value in range(probs_out.shape[0]):
                probs[lut[value]] += probs_out[value]
            voted_input = lut[probs_out.argmax(0)]
            min_voxels = int(round(args.min_lesion_ml / spacing_ml))
            for naming in [n for m, n in keys if m == mask]:
                labels = voted_input if naming == "vote" else summed_naming(voted_input, probs, lesion_values)
                labels = one_disease_per_lesion(labels, lesion_values, min_voxels)
                for value, disease in disease_of_label.items():
                    gt, pred = truth == value, labels == value
                    if gt.any():
                        dice[(mask, naming)].setdefault(disease, []).append(
                            float(2 * (gt & pred).sum() / (gt.sum() + pred.sum())))

    diseases = sorted(disease_of_label.values(), key=lambda d: (d in unseen, d))
    header = ["class", *[f"{m} mask, {n}" for m, n in keys]]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for disease in diseases:
        cells = [f"{100 * np.mean(dice[key][disease]):.1f}" if disease in dice[key] else "n/a" for key in dice]
        lines.append(f"| {disease}{' (unseen)' if disease in unseen else ''} | " + " | ".join(cells) + " |")
    for kind, members in (("seen", [d for d in diseases if d not in unseen]), ("unseen", [d for d in diseases if d in unseen])):
        cells = [f"{100 * np.mean([np.mean(dice[key][d]) for d in members if d in dice[key]]):.1f}" for key in dice]
        lines.append(f"| *mean {kind}* | " + " | ".join(cells) + " |")
    text = ("DSC in % on the cases that hold each class (after the benchmark's lesion vote and "
            f"{args.min_lesion_ml} ml rule); model {args.model}\n\n" + "\n".join(lines) + "\n")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "probe_naming.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
