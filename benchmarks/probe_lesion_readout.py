"""Probe a lesion readout in minutes: which attribute values does it read on unseen lesions?

A full Malenia training on the varied tier takes about 50 minutes of the 2 cores, and one training
moves per-type accuracies as much as a change does. The naming half of zero-shot (is an unseen
lesion read with its own row's values?) can be asked of the readout alone: this script crops every
ground-truth lesion of a synthetic dataset (24^3 voxels around it, the image normalised as nnU-Net's
CT normalisation does, with the dataset's foreground percentiles), trains the readout's local CNN
(network/voxel_readout.local_appearance, 15-voxel receptive field) and a per-voxel MLP on the
training cases' lesions, seen diseases only, and reads the test cases' lesions, unseen ones
included, with the mask given (the mean over the lesion's voxels, as bench_zero_shot_diagnosis.py
does). What it leaves out, on purpose: the backbone, the tokens, the text tower (values are
classes here, not text embeddings) and, unless `--anomalies` / `--paste`, the synthetic anomalies
and the lesions the trainers move between organs (training/lesion_paste.py). What it measured first
(docs/benchmarks.md): it reproduces the trained model's failure on the specific features of
splenic metastases and kidney abscesses, read as the seen diseases of their organ.

    python3 benchmarks/probe_lesion_readout.py -r /work/zs_varied/nnUNet_raw/Dataset905_MaleniaZS \\
        --type specific_features --view lesion --seeds 0 1 2

Views (what the CNN reads, as PerTypeLocal's): `image` the crop; `lesion` the image inside the
lesion mask and the mask; `relative` the same with the lesion's CT numbers minus their mean
(voxel_readout.lesion_relative); `ring` the image inside the lesion and a 2-voxel ring around it,
and the mask (a wall is brighter than the organ around it, a partial-volume edge is not);
`ring_relative` the same minus the ring's mean (in a 15-voxel box), so the contrast to the
surroundings stays and the organ's CT number goes; `mask`
the mask alone. `--pool` adds each lesion's mean feature
to every voxel's. Each row also gives the accuracy after logit adjustment (the readout's
log-probabilities minus `--tau` x the log of the values' frequencies among the training lesions:
a balanced decision rule, Menon et al. 2021), which needs no retraining.

`--readout radiomics` replaces the CNN by hand-made statistics of the lesion, each relative to its
surroundings or to itself (contrast to a ring around it, texture, a darker core, bright outliers,
a brighter rim, edge sharpness, sphericity, filled fraction), and a logistic regression per type:
whether the values can be read by their definitions from the seen diseases at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HALF = 12  # crops of (2 * HALF)^3 voxels, centred on the lesion
STEPS_DEFAULT = 1200
LESIONS_PER_STEP = 16
VOXELS_PER_LESION = 64  # as the model's readout (voxel_readout.VOXELS_PER_LESION)


def ct_normalisation(raw: Path, cases: list[str]) -> tuple[float, float, float, float]:
    """(low, high, mean, std) of the training foreground (labelled voxels), as nnU-Net's
    fingerprint and CTNormalization compute them: clip to the 0.5 / 99.5 percentiles, then z-score."""
    import SimpleITK as sitk

    values = []
    for case in cases:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTr" / f"{case}_0000.nii.gz")))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz")))
        values.append(image[labels > 0].astype(np.float32))
    v = np.concatenate(values)
    return float(np.percentile(v, 0.5)), float(np.percentile(v, 99.5)), float(v.mean()), float(v.std())


def lesion_crops(raw: Path, anomalies: int = 0, feature_probability: float = 0.0,
                 seed: int = 0, paste: int = 0, blob_options: dict | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(images (L, S, S, S) float32, masks (L, S, S, S) bool, records) for every connected lesion of at
    least 50 voxels in imagesTr/labelsTr and imagesTs/labelsTs; a record is the lesion's entry of
    lesion_attributes.json plus its split ("Tr"/"Ts") and case. With `anomalies`, that many more
    training records: blobs of the trainers' synthetic anomalies (AnomalyConfig(describe=True,
    feature_probability=..., **blob_options)) pasted into the organs of random training cases, with the values
    their drawing names (disease "anomaly"). With `paste`, that many more: seen training lesions
    moved into another organ as the trainers' lesion_paste moves them (paste_crops, disease "pasted")."""
    import SimpleITK as sitk
    from scipy import ndimage

    truth = json.loads((raw / "lesion_attributes.json").read_text())["cases"]
    train_cases = sorted(p.name[:-len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))
    low, high, mean, std = ct_normalisation(raw, train_cases)
    images, masks, records = [], [], []
    training_maps = []
    for split in ("Tr", "Ts"):
        for path in sorted((raw / f"labels{split}").glob("*.nii.gz")):
            case = path.name[:-len(".nii.gz")]
            labels = np.pad(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), HALF)
            image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / f"images{split}" / f"{case}_0000.nii.gz")))
            image = np.pad((np.clip(image.astype(np.float32), low, high) - mean) / std, HALF,
                           constant_values=(low - mean) / std)
            if split == "Tr" and (anomalies or paste):
                training_maps.append((image, labels, {int(k) for k in truth.get(case, {})}))
            for label, record in truth.get(case, {}).items():
                components, count = ndimage.label(labels == int(label), structure=np.ones((3, 3, 3)))
                for index in range(1, count + 1):
                    mask = components == index
                    if mask.sum() < 50:
                        continue
                    centre = np.round(np.argwhere(mask).mean(0)).astype(int)
                    box = tuple(slice(c - HALF, c + HALF) for c in centre)
                    images.append(image[box])
                    masks.append(mask[box])
                    records.append({"split": split, "case": case, "label": int(label), **record})
    if anomalies:
        blob_images, blob_masks, blob_records = anomaly_crops(training_maps, anomalies, feature_probability,
                                                              (low, high, mean, std), seed, blob_options)
        images, masks, records = images + blob_images, masks + blob_masks, records + blob_records
    if paste:
        pasted = paste_crops(records, dict(zip(train_cases, training_maps)), paste, (low, high, mean, std), seed)
        images, masks, records = images + pasted[0], masks + pasted[1], records + pasted[2]
    return np.stack(images), np.stack(masks), records


def paste_crops(records: list[dict], maps: dict[str, tuple], count: int, norm: tuple[float, float, float, float],
                seed: int) -> tuple[list, list, list[dict]]:
    """`count` crops of a seen training lesion moved into another organ of a random training case
    (`maps`: case -> (image, labels, its lesion labels), padded as the crops), as the trainers move them (training.lesion_paste, LesionPasteConfig()), each with its source's
    record (disease "pasted", `pasted_from` its own)."""
    from nnunetv2_malenia.training.lesion_paste import LesionPasteConfig, build_lesion_bank, paste_lesion

    low, high, mean, std = norm
    cfg = LesionPasteConfig(probability=1.0)
    by_key = {(r["case"], r["label"]): r for r in records if r["split"] == "Tr"}
    lesion_labels = sorted({label for _, _, labels in maps.values() for label in labels})
    bank = build_lesion_bank(((case, image[None], labels) for case, (image, labels, _) in maps.items()),
                             lesion_labels, lambda case, label: np.zeros(1, dtype=bool), np.zeros(1, dtype=bool), cfg)
    rng = np.random.default_rng(seed + 1000)
    cases = sorted(maps)
    images, masks, out = [], [], []
    while len(out) < count:
        image, labels, _ = maps[cases[rng.integers(len(cases))]]
        pasted_image = image[None].copy()
        hit = paste_lesion(pasted_image, labels, set(lesion_labels), bank, cfg, 1.0 / std,
                           ((low - mean) / std, (high - mean) / std), rng)
        if hit is None:
            continue
        lesion, placed = hit
        centre = np.clip(np.round(np.argwhere(placed).mean(0)).astype(int), HALF, np.array(placed.shape) - HALF)
        box = tuple(slice(c - HALF, c + HALF) for c in centre)
        source = by_key[(lesion.case, lesion.label)]
        images.append(pasted_image[0][box])
        masks.append(placed[box])
        out.append({**source, "case": f"pasted:{lesion.case}", "disease": "pasted", "pasted_from": source["disease"]})
    return images, masks, out


def anomaly_crops(maps: list, count: int, feature_probability: float, norm: tuple[float, float, float, float],
                  seed: int, blob_options: dict | None = None) -> tuple[list, list, list[dict]]:
    """`count` blob crops pasted as the trainers paste them (training.synthetic_anomalies), with the
    attribute values their drawing names per type (types it leaves undrawn have none)."""
    from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig, paste_anomalies

    low, high, mean, std = norm
    cfg = AnomalyConfig(probability=1.0, max_per_patch=1, describe=True, feature_probability=feature_probability,
                        **(blob_options or {}))
    phrase = {prop: (key, value) for prop, key, value in cfg.phrases}
    rng = np.random.default_rng(seed)
    images, masks, records = [], [], []
    while len(records) < count:
        image, labels, lesion_labels = maps[rng.integers(len(maps))]
        pasted_image = image[None].copy()
        pasted = paste_anomalies(pasted_image, labels, lesion_labels, 1, cfg, 1.0 / std,
                                 ((low - mean) / std, (high - mean) / std), rng)
        if not pasted:
            continue
        blob = pasted[0].mask
        centre = np.clip(np.round(np.argwhere(blob).mean(0)).astype(int), HALF, np.array(blob.shape) - HALF)
        box = tuple(slice(c - HALF, c + HALF) for c in centre)
        attributes: dict[str, list[str]] = {}
        for prop in pasted[0].properties:
            key, value = phrase[prop]
            attributes.setdefault(key, []).append(value)
        images.append(pasted_image[0][box])
        masks.append(blob[box])
        records.append({"split": "Tr", "case": "anomaly", "disease": "anomaly", "attributes": attributes})
    return images, masks, records


def values_of(record: dict, type_key: str) -> list[str]:
    """A lesion's values of one type, as a list (a blob's undrawn type: none, so no target)."""
    value = record["attributes"].get(type_key, [])
    return value if isinstance(value, list) else [value]


def row_key(record: dict, by: str | None) -> str:
    """The table row a test lesion is counted in: its disease, or with `by` its disease and its
    value of that type (e.g. the contrast phase)."""
    if by is None or record["disease"] in ("anomaly", "pasted"):
        return record["disease"]
    return f"{record['disease']} ({', '.join(values_of(record, by))})"


def split_indices(records: list[dict], type_key: str) -> tuple[list[int], list[int]]:
    """(training records with a value of the type, test records)."""
    return ([i for i, r in enumerate(records) if r["split"] == "Tr" and values_of(r, type_key)],
            [i for i, r in enumerate(records) if r["split"] == "Ts"])


ORGAN_OF_LOCATION = (("hepatic", "liver"), ("spleen", "spleen"), ("kidney", "kidney"), ("lung", "lung"))


def organ_of(record: dict) -> str | None:
    """The lesion's organ, from its location value (None for a blob or an unknown location)."""
    for location in values_of(record, "location"):
        for word, organ in ORGAN_OF_LOCATION:
            if word in location:
                return organ
    return None


def run(images: np.ndarray, masks: np.ndarray, records: list[dict], type_key: str, view: str, channels: int,
        pool: bool, steps: int, seed: int, tau: float,
        organ_adversary: float = 0.0,
        scale: tuple[float, float] | None = None, by: str | None = None) -> dict[str, list[tuple[bool, bool, str]]]:
    """Train one readout, read every test lesion: disease -> [(right, right after adjustment, value read)].
    With `organ_adversary` > 0, a linear organ classifier reads the sampled voxels' CNN features
    through a gradient reversal of that weight: the CNN is trained to make its features useless
    for telling the organ (domain-adversarial training, organs as domains). With `scale` (low, high),
    every training crop is zoomed by a factor drawn between them: a lesion's size no longer
    comes with its disease."""
    import torch
    from torch import nn

    from nnunetv2_malenia.network.malenia_network import scale_gradient
    from nnunetv2_malenia.network.voxel_readout import LOCAL_FIELD, lesion_relative, local_appearance

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    values = sorted({v for r in records for v in values_of(r, type_key)})
    positive = torch.zeros(len(records), len(values), dtype=torch.bool)
    for i, record in enumerate(records):
        for v in values_of(record, type_key):
            positive[i, values.index(v)] = True
    train, test = split_indices(records, type_key)
    log_prior = positive[[i for i in train if records[i]["disease"] not in ("anomaly", "pasted")]].float().mean(0).clamp_min(1e-3)
    log_prior = (log_prior / log_prior.sum()).log()
    image_t, mask_t = torch.from_numpy(images), torch.from_numpy(masks).float()

    def rescaled(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each crop zoomed by its own factor in `scale` (log-uniform), about its centre, back to its size."""
        size = x.shape[-1]
        xs, ms = [], []
        for b in range(len(x)):
            factor = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
            n = max(4, int(round(size * factor)))
            xb = nn.functional.interpolate(x[b:b + 1], size=(n,) * 3, mode="trilinear", align_corners=False)
            mb = nn.functional.interpolate(m[b:b + 1], size=(n,) * 3, mode="nearest")
            if n >= size:
                lo = (n - size) // 2
                crop = (slice(None), slice(None), *(slice(lo, lo + size),) * 3)
                xb, mb = xb[crop], mb[crop]
            else:
                lo, hi = (size - n) // 2, size - n - (size - n) // 2
                xb = nn.functional.pad(xb, (lo, hi) * 3, mode="replicate")
                mb = nn.functional.pad(mb, (lo, hi) * 3)
            xs.append(xb)
            ms.append(mb)
        return torch.cat(xs), torch.cat(ms)

    def inputs(index: torch.Tensor, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = image_t[index, None], mask_t[index, None]
        if augment and scale is not None:
            x, m = rescaled(x, m)
        if view == "image":
            return x, m
        if view == "mask":
            return m, m
        if view == "ring":  # the lesion and a 2-voxel ring of what surrounds it
            around = nn.functional.max_pool3d(m, 5, stride=1, padding=2)
            return torch.cat([x * around, m], 1), m
        if view == "ring_relative":  # the same, CT numbers minus the ring's mean: contrast to the surroundings only
            around = nn.functional.max_pool3d(m, 5, stride=1, padding=2)
            shell = around - m
            box = dict(kernel_size=LOCAL_FIELD, stride=1, padding=LOCAL_FIELD // 2)
            shell_mean = nn.functional.avg_pool3d(x * shell, **box) / nn.functional.avg_pool3d(shell, **box).clamp_min(1e-6)
            return torch.cat([(x - shell_mean) * around, m], 1), m
        content = lesion_relative(x, m) if view == "relative" else x * m
        return torch.cat([content, m], 1), m

    cnn = local_appearance(1 if view in ("image", "mask") else 2, channels)
    mlp = nn.Sequential(nn.Linear(channels * (2 if pool else 1), 32), nn.GELU(), nn.Linear(32, len(values)))
    organs = sorted({o for r in records if (o := organ_of(r)) is not None})
    organ_index = [organs.index(o) if (o := organ_of(r)) is not None else -1 for r in records]
    organ_head = nn.Linear(channels * (2 if pool else 1), len(organs))
    optimiser = torch.optim.AdamW([*cnn.parameters(), *mlp.parameters(), *organ_head.parameters()], 1e-3)

    def features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        f = cnn(x)
        if pool:
            mean = (f * m).sum((2, 3, 4), keepdim=True) / m.sum((2, 3, 4), keepdim=True).clamp_min(1)
            f = torch.cat([f, mean.expand_as(f)], 1)
        return f.permute(0, 2, 3, 4, 1)

    for _ in range(steps):
        index = torch.from_numpy(rng.choice(train, LESIONS_PER_STEP))
        x, m = inputs(index, augment=True)
        for axis in (2, 3, 4):  # mirroring, as nnU-Net's augmentation does
            if rng.random() < 0.5:
                x, m = x.flip(axis), m.flip(axis)
        f = features(x, m)
        loss = x.new_zeros(())
        for b in range(len(index)):
            where = m[b, 0].nonzero()
            where = where[torch.randperm(len(where))[:VOXELS_PER_LESION]]
            voxels = f[b, where[:, 0], where[:, 1], where[:, 2]]
            log_p = mlp(voxels).log_softmax(-1)
            loss = loss - torch.logsumexp(log_p[:, positive[index[b]]], -1).mean()  # any true value
            organ = organ_index[int(index[b])]
            if organ_adversary > 0 and organ >= 0:
                # gradient reversal (Ganin & Lempitsky 2015): x forward, -organ_adversary x gradient backward
                logits = organ_head(scale_gradient(voxels, -organ_adversary))
                loss = loss + nn.functional.cross_entropy(logits, torch.full((len(voxels),), organ))
        optimiser.zero_grad()
        (loss / len(index)).backward()
        optimiser.step()

    out: dict[str, list[tuple[bool, bool, str]]] = {}
    with torch.no_grad():
        for i in test:
            x, m = inputs(torch.tensor([i]))
            probs = mlp(features(x, m)[0][m[0, 0] > 0]).softmax(-1).mean(0)
            read, adjusted = int(probs.argmax()), int((probs.log() - tau * log_prior).argmax())
            out.setdefault(row_key(records[i], by), []).append(
                (bool(positive[i, read]), bool(positive[i, adjusted]), values[read]))
    return out


def radiomic_features(image: np.ndarray, mask: np.ndarray) -> list[float]:
    """Statistics of one lesion crop (normalised image, bool mask) that describe it relative to its
    surroundings or to itself, none its absolute CT number (which names the organ)."""
    from scipy import ndimage

    from nnunetv2_malenia.synthetic.shapes import sphericity

    ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask, iterations=1)
    depth = ndimage.distance_transform_edt(mask)
    core, interior, edge = depth / max(depth.max(), 1.0) > 0.45, depth > 1.5, mask & (depth <= 1)
    inside, around = image[mask], float(np.median(image[ring]))
    interior_values = image[interior] if interior.any() else inside
    gradient = np.sqrt(sum(g ** 2 for g in np.gradient(ndimage.gaussian_filter(image, 0.5))))
    contrast = float(inside.mean()) - around
    filled = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2)).sum()
    return [contrast, float(interior_values.std()),
            float(image[core].mean() - image[mask & ~core].mean()) if core.any() else 0.0,
            float(np.percentile(inside, 99) - np.median(inside)), float(np.percentile(inside, 1) - np.median(inside)),
            float(image[edge].mean() - interior_values.mean()), float(gradient[edge].mean() / (abs(contrast) + 0.05)),
            sphericity(mask), float(mask.sum() / max(filled, 1)),
            float((inside > around + 0.1).mean()), float((inside < around - 0.1).mean())]


def run_radiomics(images: np.ndarray, masks: np.ndarray, records: list[dict], type_key: str,
                  tau: float, by: str | None = None) -> dict[str, list[tuple[bool, bool, str]]]:
    """`run` with radiomic_features and a logistic regression (one value per training lesion: its first)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = split_indices(records, type_key)
    features = np.array([radiomic_features(images[i], masks[i]) for i in train + test])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(features[:len(train)], [values_of(records[i], type_key)[0] for i in train])
    classes = list(model.classes_)
    prior = np.array([np.mean([values_of(records[i], type_key)[0] == c for i in train]) for c in classes])
    probs = model.predict_proba(features[len(train):])
    out: dict[str, list[tuple[bool, bool, str]]] = {}
    for i, p in zip(test, probs):
        read, adjusted = classes[int(p.argmax())], classes[int((np.log(p + 1e-9) - tau * np.log(prior)).argmax())]
        out.setdefault(row_key(records[i], by), []).append(
            (read in values_of(records[i], type_key), adjusted in values_of(records[i], type_key), read))
    return out


def main() -> int:
    from nnunetv2_malenia.training.synthetic_anomalies import FEATURES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--raw", type=Path, required=True,
                        help="raw dataset folder of a `malenia synth` dataset (imagesTr/Ts, labelsTr/Ts, "
                             "lesion_attributes.json, dataset_test.json)")
    parser.add_argument("--type", default="specific_features", help="attribute type key (default: specific_features)")
    parser.add_argument("--readout", choices=("cnn", "radiomics"), default="cnn",
                        help="cnn: the readout's local CNN and a per-voxel MLP (default); radiomics: hand-made "
                             "statistics of the lesion and a logistic regression (seconds, no --view/--seeds)")
    parser.add_argument("--view", choices=("image", "lesion", "relative", "ring", "ring_relative", "mask"), default="lesion",
                        help="what the CNN reads (default: lesion, as the lesion-only types)")
    parser.add_argument("--channels", type=int, default=4, help="CNN channels (default 4: PER_TYPE_CHANNELS)")
    parser.add_argument("--pool", action="store_true", help="add the lesion's mean feature to each voxel's")
    parser.add_argument("--organ-adversary", type=float, default=0.0, metavar="W",
                        help="train the CNN against a linear organ classifier on its features, through a "
                             "gradient reversal of weight W (default 0: off)")
    parser.add_argument("--scale", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="zoom every training crop by a log-uniform factor in [LOW, HIGH] (default: none)")
    parser.add_argument("--by", default=None, metavar="TYPE",
                        help="count each disease's test lesions apart by their value of this attribute type "
                             "(e.g. enhancement_status: each contrast phase its own row)")
    parser.add_argument("--steps", type=int, default=STEPS_DEFAULT,
                        help=f"training steps of {LESIONS_PER_STEP} lesions (default {STEPS_DEFAULT}: about 2 min "
                             "on one core at 4 channels)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one training per seed (default: 0)")
    parser.add_argument("--tau", type=float, default=1.0, help="logit adjustment strength (default 1)")
    parser.add_argument("--anomalies", type=int, default=0,
                        help="also train on this many synthetic-anomaly blobs (the trainers' "
                             "AnomalyConfig(describe=True))")
    parser.add_argument("--paste", type=int, default=0,
                        help="also train on this many seen training lesions moved into another organ, as "
                             "the trainers' lesion_paste moves them")
    parser.add_argument("--feature-probability", type=float, default=0.0,
                        help="AnomalyConfig.feature_probability of those blobs (default 0)")
    parser.add_argument("--features", nargs="+", choices=FEATURES, metavar="FEATURE",
                        help=f"AnomalyConfig.features: which of {', '.join(FEATURES)} those blobs draw (default: all)")
    parser.add_argument("--surface-probability", type=float, default=0.0,
                        help="AnomalyConfig.surface_probability: share of those blobs drawn on an organ's surface (default 0)")
    args = parser.parse_args()
    if not (args.raw / "lesion_attributes.json").is_file():
        parser.error(f"{args.raw}: no lesion_attributes.json; pass the raw folder of a `malenia synth` dataset")

    import torch

    torch.set_num_threads(1)
    unseen = set(json.loads((args.raw / "dataset_test.json").read_text())["unseen_diseases"])
    blob_options = {"surface_probability": args.surface_probability,
                    **({"features": tuple(args.features)} if args.features else {})}
    images, masks, records = lesion_crops(args.raw, args.anomalies, args.feature_probability, paste=args.paste,
                                          blob_options=blob_options)
    results: dict[str, list[tuple[bool, bool, str]]] = {}
    if args.readout == "radiomics":
        results = run_radiomics(images, masks, records, args.type, args.tau, args.by)
        args.seeds = []
    for seed in args.seeds:
        for disease, rows in run(images, masks, records, args.type, args.view, args.channels, args.pool,
                                 args.steps, seed, args.tau, args.organ_adversary,
                                 tuple(args.scale) if args.scale else None, args.by).items():
            results.setdefault(disease, []).extend(rows)
    readout = ("radiomic statistics, logistic regression" if args.readout == "radiomics" else
               f"view {args.view}, {args.channels} channels{', pooled' if args.pool else ''}"
               f"{f', organ adversary {args.organ_adversary}' if args.organ_adversary else ''}"
               f"{f', zoom {args.scale[0]}-{args.scale[1]}' if args.scale else ''}, {args.steps} steps, "
               f"seeds {args.seeds}")
    print(f"type {args.type}, {readout}, tau {args.tau}, {args.anomalies} anomalies (feature probability "
          f"{args.feature_probability}{', ' + '/'.join(args.features) if args.features else ''}; "
          f"surface probability {args.surface_probability}), {args.paste} pasted; accuracy of the value read (mask given)")
    print("| disease | split | reads | right | right, adjusted | values read |")
    print("|---|---|---|---|---|---|")
    results.pop("anomaly", None)
    results.pop("pasted", None)
    def is_unseen(key: str) -> bool:  # a row key is the disease, maybe followed by " (value)"
        return key.split(" (")[0] in unseen

    for disease in sorted(results, key=lambda d: (is_unseen(d), d)):
        rows = results[disease]
        counts = Counter(value for _, _, value in rows).most_common()
        print(f"| {disease} | {'unseen' if is_unseen(disease) else 'seen'} | {len(rows)} | "
              f"{np.mean([r[0] for r in rows]):.2f} | {np.mean([r[1] for r in rows]):.2f} | "
              + ", ".join(f"{v} {n}" for v, n in counts) + " |")
    for split in ("seen", "unseen"):
        rows = [r for d, rs in results.items() if is_unseen(d) == (split == "unseen") for r in rs]
        print(f"| **all {split} lesions** | | {len(rows)} | {np.mean([r[0] for r in rows]):.2f} | "
              f"{np.mean([r[1] for r in rows]):.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
