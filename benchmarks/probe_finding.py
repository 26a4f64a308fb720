"""Does a trained model find a lesion of a given appearance? Controlled blobs in the test images.

The zero-shot diagnosis (bench_zero_shot_diagnosis.py) measures that nnU-Net's lesion channels
barely fire on some unseen diseases (hemangiomas: lesion mass 0.04 against 0.64 on seen lesions),
although the trainer pastes blobs brighter and darker than their organ as class-agnostic lesions
(AnomalyConfig, label_in_head="lesion"). Which property of the unseen lesion keeps the head
silent? This probe pastes one blob per organ into each test case, drawn with one controlled
property set at a time (the same location and outline for every variant of a case and organ),
runs the network on a window around it, and records over the blob's voxels:

- `nnunet_mass`: the summed softmax of nnU-Net's lesion channels (eval rule "nnunet");
- `token_mass`: sum_q sigmoid(obj_q) m_q(x), clamped at 1 (eval rule "tokens").

Variant "none" pastes nothing and gives the same voxels' mass in the untouched organ (the false
positive floor). Intensities are HU offsets from the organ, converted with the plans' CT
normalisation as the trainer converts its blobs. Minutes on a CPU; writes OUT/finding.json and
OUT/finding.md.

    python3 benchmarks/probe_finding.py -m RESULTS/Dataset905_MaleniaZS/TRAINER__nnUNetPlans__3d_cpu \\
        -r RAW/Dataset905_MaleniaZS -o OUT --cases 12
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zero_shot_diagnosis import _padded, _window  # noqa: E402
from synthetic_test_reader import load_model, model_arguments, test_cases, test_split  # noqa: E402


@dataclass(frozen=True)
class Look:
    """One controlled drawing: HU offset from the organ, texture std as a fraction of it, edge blur
    (voxels), outline perturbation (fraction of the radius), and an optional specific feature."""

    offset_hu: float
    heterogeneity: float = 0.0
    blur: float = 0.0
    irregularity: float = 0.0
    feature: str | None = None


LOOKS = {
    "none": None,
    "darker -50, flat, sharp": Look(-50.0),
    "brighter +85, flat, sharp": Look(85.0),
    "brighter +85, textured": Look(85.0, heterogeneity=0.4),
    "brighter +85, calcium dots": Look(85.0, feature="calcified"),
    "hemangioma-like (+85, textured, calcium, lobulated)": Look(85.0, heterogeneity=0.4, irregularity=0.2,
                                                               feature="calcified"),
    "abscess-like (-45, textured, blurred, darker area)": Look(-45.0, heterogeneity=0.4, blur=1.6,
                                                              feature="darker areas"),
}
ORGANS = ("liver", "spleen", "right kidney", "left kidney")


def draw(image: np.ndarray, mask: np.ndarray, look: Look, unit: float, clip: tuple[float, float],
         rng: np.random.Generator) -> np.ndarray:
    """`image` (C, X, Y, Z) with the blob drawn in; the drawing is that of paste_anomalies with fixed values."""
    from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig, _feature_field, _smooth_noise

    out = image.copy()
    texture = look.heterogeneity * abs(look.offset_hu) * _smooth_noise(mask.shape, 1.0, rng)
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), look.blur) if look.blur else mask.astype(np.float32)
    out += (alpha * (look.offset_hu + texture) * unit)[None]
    if look.feature:
        field = _feature_field(look.feature, mask, AnomalyConfig(calcium_hu=(450.0, 450.0), darker_area_hu=(90.0, 90.0)),
                               rng)
        if field is not None:
            out += (field * unit)[None]
    return np.clip(out, clip[0], clip[1])


def blob_mask(host: np.ndarray, irregularity: float, seed: int) -> np.ndarray | None:
    """A blob of radius 4.5 voxels inside `host`; the same seed gives the same centre and radii."""
    from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig, _blob

    return _blob(host, AnomalyConfig(radius_voxels=(4.5, 4.5)), irregularity, np.random.default_rng(seed))


def masses(network, image: np.ndarray, mask: np.ndarray, patch: tuple[int, ...]) -> tuple[float, float, int]:
    """(nnU-Net lesion mass, token mass, nnU-Net's most frequent argmax label) over `mask`'s voxels,
    the network run on a window around it."""
    import torch

    window = _window(np.argwhere(mask).mean(0), patch, mask.shape)
    x, keep = _padded(torch.from_numpy(image[(slice(None), *window)]), patch)
    details = network.predict_details(x[None].float())
    crop = (slice(None), *keep)
    inside = torch.from_numpy(mask[window]).flatten()
    head = torch.softmax(details["nnunet_logits"][0].float(), 0)[crop].flatten(1)
    lesion_channels = network.disease_head.head_label_map < 0
    token_probs = details["token_probs"][0][crop].flatten(1).float()
    objectness = details["objectness"][0].float()
    token = (objectness[:, None] * token_probs[:, inside]).sum(0).clamp(max=1).mean()
    called = int(np.bincount(head[:, inside].argmax(0).numpy()).argmax())
    return float(head[lesion_channels][:, inside].sum(0).mean()), float(token), called


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_arguments(parser)
    parser.add_argument("--cases", type=int, default=12, help="test cases to use (the first N; default 12)")
    args = parser.parse_args()

    import torch

    predictor, network = load_model(args.model, args.fold)
    labels = predictor.dataset_json["labels"]
    names = {v: k for k, v in labels.items()}
    props = predictor.plans_manager.foreground_intensity_properties_per_channel["0"]
    unit = 1.0 / float(props["std"])
    clip = ((float(props["percentile_00_5"]) - float(props["mean"])) * unit,
            (float(props["percentile_99_5"]) - float(props["mean"])) * unit)
    patch = tuple(predictor.configuration_manager.patch_size)
    lesion_labels = sorted(test_split(args.raw)[1])
    rows = []
    for index, (case, data, seg, _) in enumerate(test_cases(predictor, args.raw)):
        if index >= args.cases:
            break
        lesion = ndimage.binary_dilation(np.isin(seg, lesion_labels), iterations=2)
        for organ in ORGANS:
            host = (seg == labels[organ]) & ~lesion
            for name, look in LOOKS.items():
                seed = zlib.crc32(f"{case}/{organ}".encode())
                mask = blob_mask(host, look.irregularity if look else 0.0, seed)
                if mask is None:
                    continue
                image = data if look is None else draw(data, mask, look, unit, clip, np.random.default_rng(seed + 1))
                with torch.no_grad():
                    head, token, called = masses(network, image, mask, patch)
                rows.append({"case": case, "organ": organ, "look": name, "voxels": int(mask.sum()),
                             "nnunet_mass": head, "token_mass": token, "called": names.get(called, str(called))})
    lines = ["| look | organ | blobs | nnU-Net lesion mass | share >= 0.5 | token mass | nnU-Net calls it |",
             "|---|---|---|---|---|---|---|"]
    for name in LOOKS:
        for organ in ("liver", "spleen", "kidneys"):
            sel = [r for r in rows if r["look"] == name and (r["organ"] == organ or
                                                             (organ == "kidneys" and "kidney" in r["organ"]))]
            if sel:
                head = np.array([r["nnunet_mass"] for r in sel])
                lines.append(f"| {name} | {organ} | {len(sel)} | {head.mean():.2f} | {(head >= 0.5).mean():.2f} | "
                             f"{np.mean([r['token_mass'] for r in sel]):.2f} | "
                             f"{', '.join(f'{k} {v}' for k, v in Counter(r['called'] for r in sel).most_common(2))} |")
    markdown = "\n".join(lines) + "\n"
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "finding.json").write_text(json.dumps({"model": str(args.model), "rows": rows}, indent=1))
    (args.output / "finding.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
