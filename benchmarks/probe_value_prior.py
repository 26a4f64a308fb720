"""Does dividing the readout by its own value prior name lesions better? Naming with the mask given.

Why: the recipe's per-voxel readout reads a few values on nearly every lesion (the detached seed-0
model, true masks: "ill-defined margin" on 116 of 125 test lesions, "thin cystic wall" on 66,
"round-like" on 87, "no specific features" on 2 while 26 have it). The table scoring multiplies
p(value | voxel) over the attribute types, and a posterior carries the prior of the lesions the
readout was trained on: a value common among the seen lesions wins every type it is close in, and
with it the seen rows that have it. Attribute-based zero-shot classification divides each
attribute's posterior by its training prior before multiplying (Lampert et al., "Attribute-based
classification for zero-shot visual object categorization", TPAMI 2014: direct attribute
prediction); the prior is then the one of the rows, not of the training set.

For every ground-truth lesion of the test set (seen and unseen) the readout is run with the
lesion's true mask, exactly as `bench_zero_shot_diagnosis.py` does for "named by voxels", and each
voxel's p(value | type) kept. The prior pi(v) is estimated on the lesions of the fold's
validation cases (seen diseases only, never the test set): the mean over lesions of the readout
averaged over each lesion's voxels ("readout"), or, as in Lampert et al., the seen rows' values
averaged over the seen rows ("table"). A lesion is then named by the mean over its voxels of
softmax_d( sum_t log sum_v table[d, v] p(v | x) / pi(v)^alpha - G [d seen] ), for each alpha and
calibrated-stacking penalty G asked for; alpha 0 with the model's G is the model's own rule.

    python3 benchmarks/probe_value_prior.py \\
        -m /work/zs_s18/nnUNet_results/Dataset905_MaleniaZS/nnUNetTrainerMalenia_cpu_zeroshot_detached__nnUNetPlans__3d_cpu \\
        -r /work/zs_s18/nnUNet_raw/Dataset905_MaleniaZS -o /work/runs/s20/prior_detached

Prints a table (named right per disease, seen and unseen means) and writes OUT/value_prior.json.
Needs a model with the per-type local readout (the zero-shot recipe): it reads the image alone,
so no backbone pass is made and the run takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_test_reader import load_model, model_arguments, test_cases, test_split  # noqa: E402

PRIOR_FLOOR = 1e-3  # no value's prior below this: a value no seen lesion is read with is not divided by ~0


def lesion_readouts(network, data: np.ndarray, seg: np.ndarray, labels: list[int], patch) -> list[tuple[int, np.ndarray]]:
    """(label, p(value | voxel) (M, V)) per ground-truth lesion of one case, its true mask given."""
    import torch

    from bench_zero_shot_diagnosis import _padded, _window
    from nnunetv2_malenia.training.lesion_targets import connected_lesions

    out = []
    data = torch.from_numpy(data)
    for label, mask in connected_lesions(seg, labels, 50):
        window = _window(np.argwhere(mask).mean(0), patch, mask.shape)
        image, keep = _padded(data[(slice(None), *window)], patch)
        given, _ = _padded(torch.from_numpy(mask[window])[None].float(), patch)
        read = network.voxel_readout.features(image[None].float(), None, given > 0)
        inside = torch.from_numpy(mask[window]).flatten()
        feats = read[0][(slice(None), *keep)].flatten(1)[:, inside].t()
        probs = network.attributes.type_probs(network.voxel_readout.attribute_logits(feats, network.attributes))
        out.append((label, probs.sum(1).numpy().astype(np.float32)))  # each value belongs to one type
    return out


def row_log_likelihood(q: np.ndarray, table: np.ndarray, member: np.ndarray) -> np.ndarray:
    """q (M, V) per-voxel value scores -> log L (M, D): sum over types of log sum_v table[d, v] q(v),
    as DiseaseHead.disease_given_token scores (a type a row leaves empty: 1 / values of the type)."""
    mass = np.einsum("mv,dv,vt->mdt", q, table, member)
    has = (np.einsum("dv,vt->dt", table, member) > 0)[None]
    chance = np.log(1.0 / member.sum(0).clip(min=1))[None, None]
    return np.where(has, np.log(np.clip(mass, 1e-6, None)), chance).sum(-1)


def named(voxels: np.ndarray, table: np.ndarray, member: np.ndarray, seen: np.ndarray, prior: np.ndarray,
          alpha: float, penalty: float) -> int:
    """The row a lesion is named by: argmax of the mean over its voxels of p(d | voxel)."""
    log_l = row_log_likelihood(voxels / prior[None] ** alpha, table, member) - penalty * seen[None]
    p = np.exp(log_l - log_l.max(1, keepdims=True))
    return int((p / p.sum(1, keepdims=True)).mean(0).argmax())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_arguments(parser)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--penalties", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--splits", type=Path, default=None,
                        help="splits_final.json (default: nnUNet_preprocessed/DATASET/ next to the model's nnUNet_results)")
    args = parser.parse_args()

    import torch

    predictor, network = load_model(args.model, args.fold)
    if network.voxel_readout is None or not network.voxel_readout.per_type:
        raise SystemExit(f"{args.model}: no per-type voxel readout; this probe reads the zero-shot recipe's models")
    test, disease_of_label, truth = test_split(args.raw)
    seen_labels = sorted(int(v) for v in test["seen_diseases"].values())
    splits = args.splits or (args.model.parents[1].parent / "nnUNet_preprocessed" / args.model.parent.name / "splits_final.json")
    val_keys = set(json.loads(splits.read_text())[args.fold]["val"])
    patch = tuple(predictor.configuration_manager.patch_size)

    head = network.disease_head
    table = head.table_weights.float().numpy()
    seen = head.seen_disease_channels().numpy().astype(np.float64)
    value_type = network.attributes.value_type.numpy()
    member = np.eye(int(value_type.max()) + 1)[value_type]  # (V, T)
    names = predictor.table.disease_names
    with torch.no_grad():
        val = [r for _, d, s, _ in test_cases(predictor, args.raw, "Tr", val_keys)
               for r in lesion_readouts(network, d, s, seen_labels, patch)]
        tests = [(case, disease_of_label[label], r) for case, d, s, _ in test_cases(predictor, args.raw)
                 for label, r in lesion_readouts(network, d, s, sorted(disease_of_label), patch)]

    readout_prior = np.mean([r.mean(0) for _, r in val], 0)
    rows = table / np.clip(table @ member @ member.T, 1e-12, None)  # each row's weights per type sum to 1
    table_prior = rows[seen > 0].mean(0)
    priors = {"readout": np.clip(readout_prior, PRIOR_FLOOR, None), "table": np.clip(table_prior, PRIOR_FLOOR, None)}

    unseen = set(test["unseen_diseases"])
    diseases = sorted({d for _, d, _ in tests}, key=lambda d: (d in unseen, d))
    results = []
    for source, prior in priors.items():
        for alpha in args.alphas:
            if alpha == 0 and source != "readout":
                continue  # alpha 0: no prior, the same for both sources
            for penalty in args.penalties:
                right = {d: [] for d in diseases}
                for _, disease, voxels in tests:
                    right[disease].append(names[named(voxels, table, member, seen, prior, alpha, penalty)] == disease)
                per = {d: float(np.mean(v)) for d, v in right.items()}
                results.append({"prior": source if alpha else "none", "alpha": alpha, "penalty": penalty, "per_disease": per,
                                "seen": float(np.mean([per[d] for d in diseases if d not in unseen])),
                                "unseen": float(np.mean([per[d] for d in diseases if d in unseen]))})
    vocabulary = predictor.table.vocabulary
    prior_json = {source: {vocabulary.phrases[v]: round(float(p[v]), 4) for v in range(len(p))} for source, p in priors.items()}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "value_prior.json").write_text(json.dumps({"model": str(args.model), "validation_lesions": len(val),
                                                              "priors": prior_json, "results": results}, indent=1))
    short = [d[:14] for d in diseases]
    print(f"named right with the true mask ({len(tests)} test lesions; prior from {len(val)} validation lesions)")
    print("| prior | alpha | G | " + " | ".join(short) + " | seen | unseen |")
    print("|---" * (len(diseases) + 5) + "|")
    for r in results:
        print(f"| {r['prior']} | {r['alpha']:g} | {r['penalty']:g} | "
              + " | ".join(f"{r['per_disease'][d]:.2f}" for d in diseases) + f" | {r['seen']:.2f} | **{r['unseen']:.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
