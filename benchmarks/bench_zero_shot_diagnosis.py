"""Which half of zero-shot fails: finding the lesion, or naming it? Measured per ground-truth lesion.

For a trained Malenia model and the synthetic test set (`imagesTs`, `labelsTs`,
`lesion_attributes.json`, `dataset_test.json` of dataset 905), the network reads every test case
with the full knowledge table (seen and unseen rows), one pass per window as `malenia predict`'s
reports do, and for every ground-truth lesion (a connected component of a lesion label) records:

finding
- `token_dice`: the best Dice of any token's mask with the lesion (recall by any token), and that
  token's objectness;
- `oracle_dice`: the same token's mask Dice when CMKI is given the lesion's true attributes
  instead of the predicted ones (the ground-truth-attribute oracle);
- `token_mass`: the tokens' lesion mass sum_q sigmoid(obj_q) m_q(x), averaged over the lesion (the
  eval rule "tokens" calls a voxel lesion when it wins against the organs, see docs/network.md);
- `nnunet_mass`: the mass of nnU-Net's own lesion channels, averaged over the lesion (eval rule
  "nnunet");
naming
- `named_by_mass`: whether the disease with the most mask-weighted score inside the lesion
  (sum_x sum_q score(q, d) m_q(x)) is the lesion's disease (naming with the mask given);
- `named_by_token`: whether the best token's argmax p(d | q) is the lesion's disease;
- `attribute_correct`: per attribute type, whether the best token's argmax value is one of the
  lesion's true values.

Prints and writes OUT/diagnosis.json and OUT/diagnosis.md (means per disease, seen and unseen).

    python3 benchmarks/bench_zero_shot_diagnosis.py \\
        -m /work/zs_cpu/nnUNet_results/Dataset905_MaleniaZS/nnUNetTrainerMalenia_cpu__nnUNetPlans__3d_cpu \\
        -r /work/zs_cpu/nnUNet_raw/Dataset905_MaleniaZS -o /work/zs_cpu/diagnosis_malenia
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_test_reader import load_model, model_arguments, test_cases, test_split  # noqa: E402

FINDING = ("token_dice", "oracle_dice", "objectness", "token_mass", "nnunet_mass")
NAMING = ("named_by_mass", "named_by_token")


def _window(center: np.ndarray, patch: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A patch-sized window centred on `center`, shifted to stay inside the image."""
    starts = [int(np.clip(round(c - p / 2), 0, max(s - p, 0))) for c, p, s in zip(center, patch, shape)]
    return tuple(slice(st, min(st + p, s)) for st, p, s in zip(starts, patch, shape))


def _padded(x, patch: tuple[int, ...]):
    """Pad the last dims of x up to the patch size, half before (as nnU-Net pads small images)."""
    import torch

    pads, keep = [], []
    for size, target in zip(x.shape[-len(patch):], patch):
        extra = max(target - size, 0)
        keep.append(slice(extra // 2, extra // 2 + size))
        pads.append((extra // 2, extra - extra // 2))
    return torch.nn.functional.pad(x, [p for pair in reversed(pads) for p in pair]), tuple(keep)


def lesion_rows(network, data, seg, truth: dict, disease_of_label: dict[int, str], table, patch) -> list[dict]:
    """One row per ground-truth lesion of one case (data (C, X, Y, Z) and seg in working space)."""
    import torch

    from nnunetv2_malenia.training.lesion_targets import connected_lesions

    rows = []
    for label, mask in connected_lesions(seg, sorted(disease_of_label), 50):
        voxels = np.argwhere(mask)
        window = _window(voxels.mean(0), patch, mask.shape)
        image, keep = _padded(data[(slice(None), *window)], patch)
        x = image[None].float()
        details = network.predict_details(x)
        crop = (slice(None), *keep)
        token_probs = details["token_probs"][0][crop].flatten(1).float()  # (N, voxels)
        lesion = torch.from_numpy(mask[window]).flatten().float()
        dice = 2 * token_probs @ lesion / (token_probs.sum(1) + lesion.sum() + 1e-6)
        token = int(dice.argmax())
        objectness = details["objectness"][0].float()
        scores = details["disease_scores"][0].float()  # (N, D)
        head = torch.softmax(details["nnunet_logits"][0].float(), 0)[crop].flatten(1)
        lesion_channels = network.disease_head.head_label_map < 0
        inside = lesion.bool()
        record = truth[str(label)]
        attributes = record["attributes"]
        vocabulary = table.vocabulary
        true = torch.zeros(len(vocabulary.phrases), dtype=torch.bool)
        for key, value in attributes.items():
            for phrase in (value if isinstance(value, list) else [value]):
                true[vocabulary.value_index(key, phrase)] = True
        # oracle: the best token gets the lesion's true attributes in CMKI
        oracle_probs = oracle_token_probs(network, x, token, SimpleNamespace(attribute_targets=true[None]))
        oracle = oracle_probs[0, token][crop[1:]].flatten().float()
        disease = disease_of_label[label]
        names = table.disease_names
        per_disease = scores.T @ token_probs[:, inside]  # (D, lesion voxels)
        attr = details["attribute_probs"][0, token].float()  # (T, V)
        predicted = attr.argmax(-1)
        rows.append({
            "disease": disease, "voxels": int(inside.sum()),
            "token_dice": float(dice[token]),
            "oracle_dice": float(2 * (oracle * lesion).sum() / (oracle.sum() + lesion.sum() + 1e-6)),
            "objectness": float(objectness[token]),
            "token_mass": float((objectness[:, None] * token_probs[:, inside]).sum(0).clamp(max=1).mean()),
            "nnunet_mass": float(head[lesion_channels][:, inside].sum(0).mean()),
            "named_by_mass": names[int(per_disease.sum(1).argmax())] == disease,
            "named_by_token": names[int(details["disease_given_token"][0, token].argmax())] == disease,
            "attribute_correct": {t.key: bool(true[int(predicted[i])]) for i, t in enumerate(vocabulary.types)},
        })
        if network.voxel_readout is not None:  # the voxels' own readout, averaged over the lesion (mask given)
            given = _padded(torch.from_numpy(mask[window])[None].float(), patch)[0] > 0  # (1, X, Y, Z): this lesion
            read = network.voxel_readout.features(x, network.backbone(x).pixel_features, given)
            feats = read[0][crop].flatten(1)[:, inside].t()
            voxel_attr = network.attributes.type_probs(network.voxel_readout.attribute_logits(feats, network.attributes)).mean(0)
            voxel_disease = network.voxel_disease(read, torch.ones(
                1, *x.shape[2:], dtype=torch.bool))[0][crop].flatten(1)[:, inside]  # (D, lesion voxels)
            rows[-1]["named_by_voxels"] = names[int(voxel_disease.sum(1).argmax())] == disease
            rows[-1]["voxel_attribute_correct"] = {t.key: bool(true[int(voxel_attr[i].argmax())])
                                                   for i, t in enumerate(vocabulary.types)}
            # what was read, not only whether it was right: which seen disease an unseen lesion reads like
            rows[-1]["voxel_attribute_read"] = {t.key: vocabulary.phrases[int(voxel_attr[i].argmax())]
                                                for i, t in enumerate(vocabulary.types)}
    return rows


def oracle_token_probs(network, x, token: int, target):
    """Token masks (B, N, X, Y, Z) with `token` given the target's attributes in CMKI."""
    import torch

    from nnunetv2_malenia.network.cmki import ensemble_probs

    _, pixel, dec = network._run_decoder(x)
    attr_logits = network.attributes.logits(dec.layers[-1].attr_embed)
    indices = [(torch.tensor([token]), torch.tensor([0]))]
    injected = network._injected_attributes(attr_logits, [target], indices)
    return ensemble_probs(network.cmki(dec.tokens, injected), pixel)


def summarise(rows: list[dict], unseen: set[str], type_keys) -> tuple[dict, str]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["disease"], []).append(row)
    order = sorted(groups, key=lambda d: (d in unseen, d))
    for kind, members in (("seen", [d for d in order if d not in unseen]), ("unseen", [d for d in order if d in unseen])):
        groups[f"mean {kind}"] = [r for d in members for r in groups[d]]
        order.append(f"mean {kind}")

    def means(members: list[dict]) -> dict:
        out = {k: float(np.mean([r[k] for r in members])) for k in FINDING + NAMING}
        out["found (token Dice >= 0.5)"] = float(np.mean([r["token_dice"] >= 0.5 for r in members]))
        out.update({f"attr {k}": float(np.mean([r["attribute_correct"][k] for r in members])) for k in type_keys})
        if all("named_by_voxels" in r for r in members):  # models with the per-voxel readout
            out["named_by_voxels"] = float(np.mean([r["named_by_voxels"] for r in members]))
            out.update({f"voxel attr {k}": float(np.mean([r["voxel_attribute_correct"][k] for r in members]))
                        for k in type_keys})
        out["lesions"] = len(members)
        return out

    table = {name: means(groups[name]) for name in order if groups[name]}
    columns = ["lesions", "found (token Dice >= 0.5)", *FINDING, *NAMING, *[f"attr {k}" for k in type_keys]]
    if all("named_by_voxels" in values for values in table.values()):
        columns += ["named_by_voxels", *[f"voxel attr {k}" for k in type_keys]]
    lines = ["| disease | split | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, values in table.items():
        split = "unseen" if name in unseen or name == "mean unseen" else "seen"
        cells = [str(values[c]) if c == "lesions" else f"{values[c]:.2f}" for c in columns]
        lines.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
    return table, "\n".join(lines) + "\n" + _read_values(groups, order, type_keys)


def _read_values(groups: dict[str, list[dict]], order: list[str], type_keys) -> str:
    """Per disease and type, the values the voxel readout reads (argmax over each lesion, mask
    given), most common first with their counts: which seen disease a lesion reads like."""
    diseases = [d for d in order if not d.startswith("mean ") and groups[d]
                and all("voxel_attribute_read" in r for r in groups[d])]
    if not diseases:
        return ""
    lines = ["", "Values read by the voxel readout (lesions per value, mask given):", "",
             "| disease | " + " | ".join(k.replace("_", " ") for k in type_keys) + " |",
             "|---|" + "---|" * len(type_keys)]
    for disease in diseases:
        cells = []
        for key in type_keys:
            counts = Counter(row["voxel_attribute_read"][key] for row in groups[disease])
            cells.append(", ".join(f"{v} {n}" for v, n in counts.most_common()))
        lines.append(f"| {disease} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_arguments(parser)
    args = parser.parse_args()

    import torch

    predictor, network = load_model(args.model, args.fold)
    test, disease_of_label, truth = test_split(args.raw)
    patch = tuple(predictor.configuration_manager.patch_size)
    rows = []
    for case, data, seg, _ in test_cases(predictor, args.raw):
        with torch.no_grad():
            for row in lesion_rows(network, torch.from_numpy(data), seg, truth[case], disease_of_label,
                                   predictor.table, patch):
                rows.append({"case": case, **row})
    summary, markdown = summarise(rows, set(test["unseen_diseases"]), predictor.table.vocabulary.type_keys)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "diagnosis.json").write_text(json.dumps({"model": str(args.model), "summary": summary,
                                                            "rows": rows}, indent=1))
    (args.output / "diagnosis.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
