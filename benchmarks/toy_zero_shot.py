"""A toy zero-shot world in which the mechanism can be watched in seconds.

Spherical lesions on a noisy 32^3 patch have two attributes drawn independently: density
(brighter or darker than the background) and wall (none, or a bright one-voxel rim; `--second
checker` draws a voxel-scale texture instead). Three diseases are seen in training: bright plain,
dark walled, bright walled. The fourth, dark plain, is only a knowledge-table row: each of its
values is seen, their combination is not. A model trained on random patches of the three seen
diseases is then asked, with the four-row table, to label patches holding a dark plain lesion.

`python3 benchmarks/toy_zero_shot.py --steps 400` prints, every 50 steps, the Dice of the label
map for each disease on held-out patches (the unseen one included) and the attribute readout
accuracy of the best-overlapping token (and of the per-voxel readout, with `--config
voxel_readout=true`). What it showed (docs/benchmarks.md): with one per-voxel readout for all
types, the unseen dark plain lesion is read as walled (every seen dark lesion had a wall) and gets
Dice 0.00; with one readout per type (`--config voxel_readout_per_type=true`) it is read as plain
and segmented as its own row. tests/test_zero_shot_mechanism.py runs the second with an early exit.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from nnunetv2_malenia.loss import LesionTargets, MaleniaCriterion
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans

SIZE = 32
# types: wall (none, a bright one-voxel rim), density (bright, dark)
VOCAB = (2, 2)
V = sum(VOCAB)
BRIGHT, DARK, PLAIN, WALLED = 0, 1, 2, 3
DISEASES = {"bright plain": (PLAIN, BRIGHT), "dark walled": (WALLED, DARK), "bright walled": (WALLED, BRIGHT),
            "dark plain": (PLAIN, DARK)}
SEEN = ("bright plain", "dark walled", "bright walled")
UNSEEN = ("dark plain",)
# what the second attribute's second value draws: "wall" (a bright one-voxel rim) or "checker" (a
# texture of alternating voxels over the whole lesion, visible at every one of its voxels)
SECOND = "wall"
LABEL = {name: i + 1 for i, name in enumerate(DISEASES)}   # output labels 1..4; the head knows 0..3


def _sphere(center: torch.Tensor, radius: float) -> torch.Tensor:
    g = torch.stack(torch.meshgrid(*[torch.arange(SIZE)] * 3, indexing="ij")).float()
    return ((g - center.view(3, 1, 1, 1)) ** 2).sum(0) <= radius ** 2


def make_patch(diseases: list[str], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(image (1, 1, S, S, S), masks (n, S, S, S), attribute targets (n, V), diseases) with lesions
    placed apart from each other."""
    x = torch.randn(1, 1, SIZE, SIZE, SIZE, generator=gen) * 0.3
    masks, attrs, placed = [], [], []
    for name in diseases:
        wall, density = DISEASES[name]
        for _ in range(50):
            radius = 4.0 + 2.0 * float(torch.rand(1, generator=gen))
            center = 7 + torch.rand(3, generator=gen) * (SIZE - 14)
            mask = _sphere(center, radius)
            if not any((m & mask).any() for m in masks):
                break
        x[0, 0][mask] += 1.5 if density == BRIGHT else -1.5
        if wall == WALLED and SECOND == "checker":  # a voxel-scale pattern: +-1 on alternate voxels
            g = torch.stack(torch.meshgrid(*[torch.arange(SIZE)] * 3, indexing="ij")).sum(0)
            x[0, 0][mask] += torch.where(g % 2 == 0, 1.0, -1.0)[mask]
        elif wall == WALLED:
            rim = mask & ~_sphere(center, radius - 1.2)
            x[0, 0][rim] = 3.5
        a = torch.zeros(V, dtype=torch.bool)
        a[[wall, density]] = True
        masks.append(mask)
        attrs.append(a)
        placed.append(name)
    return x, torch.stack(masks), torch.stack(attrs), placed


def build(seed: int = 0, **config):
    torch.manual_seed(seed)
    cfg = MaleniaConfig(**{**dict(hidden_dim=32, num_tokens=6, num_heads=4, ffn_dim=64, fusion_layers=1, text_dim=16,
                                  num_attribute_types=len(VOCAB), lesion_labels=(1, 2, 3)), **config})
    plans = unet_plans([8, 16, 16, 32], convs_per_stage=1)
    net = build_malenia_network(plans["network_class_name"], plans["arch_kwargs"], plans["_kw_requires_import"],
                                1, 1 + len(SEEN), cfg, V, deep_supervision=False)
    net.set_vocabulary(*random_vocabulary(VOCAB, cfg.text_dim, seed=seed + 2))
    return net


def install_table(net, diseases) -> None:
    table = torch.zeros(len(diseases), V)
    for i, name in enumerate(diseases):
        table[i, list(DISEASES[name])] = 1.0
    net.set_knowledge_table(table, [LABEL[d] for d in diseases], num_labels=1 + len(DISEASES),
                            head_label_map=[0] + [-1] * len(SEEN))


def train_steps(net, steps: int, gen: torch.Generator, lr: float = 3e-3):
    """A generator: trains one step at a time, yielding the step number."""
    criterion = MaleniaCriterion()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    install_table(net, SEEN)
    net.train()
    for step in range(1, steps + 1):
        picks = torch.randint(len(SEEN), (2,), generator=gen).tolist()
        x, masks, attrs, _ = make_patch([SEEN[i] for i in picks], gen)
        targets = [LesionTargets(masks, attrs)]
        out = net(x, targets=targets, matcher=criterion.matcher)
        loss = criterion(out, targets)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield step


@torch.no_grad()
def evaluate(net, gen: torch.Generator, patches: int = 4) -> dict[str, float]:
    """Per disease, the Dice of its label in the label map (four-row table) on held-out patches,
    and per attribute type the readout accuracy of the token overlapping each lesion best."""
    install_table(net, tuple(DISEASES))
    net.eval()
    dice: dict[str, list[float]] = {d: [] for d in DISEASES}
    correct = torch.zeros(len(VOCAB))
    voxel_correct = torch.zeros(len(VOCAB))
    total = 0
    for i in range(patches):
        x, masks, attrs, names = make_patch([UNSEEN[0], SEEN[i % len(SEEN)]], gen)
        d = net.predict_details(x)
        labels = d["log_probs"].argmax(1)[0]
        for mask, a, name in zip(masks, attrs, names):
            predicted = labels == LABEL[name]
            dice[name].append(float(2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())))
            q = ((d["token_probs"][0] * mask).sum((1, 2, 3)) / (d["token_probs"][0].sum((1, 2, 3)) + mask.sum())).argmax()
            readout = d["attribute_probs"][0, q].argmax(-1)
            correct += torch.tensor([float(a[v]) for v in readout.tolist()])
            if net.voxel_readout is not None:  # the voxels' own readout, averaged over the lesion
                read = net.voxel_readout.features(x, net.backbone(x).pixel_features, mask[None])
                feats = read[0].permute(1, 2, 3, 0)[mask]
                probs = net.attributes.type_probs(net.voxel_readout.attribute_logits(feats, net.attributes)).mean(0)
                voxel_correct += torch.tensor([float(a[v]) for v in probs.argmax(-1).tolist()])
            total += 1
    net.train()
    install_table(net, SEEN)
    result = {f"dice {d}": sum(v) / len(v) for d, v in dice.items() if v}
    result.update({f"readout type {t}": float(correct[t] / total) for t in range(len(VOCAB))})
    if net.voxel_readout is not None:
        result.update({f"voxel readout type {t}": float(voxel_correct[t] / total) for t in range(len(VOCAB))})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--second", choices=("wall", "checker"), default="wall",
                        help="how the second attribute's second value is drawn (default: %(default)s)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a MaleniaConfig field (repeatable), e.g. mask_pooled_readout=true")
    args = parser.parse_args()
    config = {}
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(config[key], str):
            try:
                config[key] = float(value) if "." in value else int(value)
            except ValueError:
                pass  # a word: e.g. lesion_naming=voxel
    global SECOND
    SECOND = args.second
    net = build(args.seed, **config)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for step in train_steps(net, args.steps, gen):
        if step % args.every == 0:
            scores = evaluate(net, torch.Generator().manual_seed(1000 + args.seed))
            print(f"step {step} ({time.time() - start:.0f} s): " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
