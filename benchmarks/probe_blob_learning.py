"""Does nnU-Net's head learn the synthetic anomalies it is given as lesion targets? On training patches.

probe_finding.py pastes blobs into test images; this probe looks at the trainer's own patches:
nnU-Net's data loader and augmentation, then the trainer's lesion targets and `_add_anomalies`
(blobs labelled lesion in nnU-Net's target when the trainer says label_in_head="lesion"). With a
trained model's weights it reports nnU-Net's lesion mass (the summed softmax of the head's lesion
channels, what lesion_presence="nnunet" reads) averaged over each blob, brighter and darker blobs
apart, and over the patch's real lesions.

`--overfit STEPS` then replays one patch that holds a brighter blob through the trainer's own
train_step STEPS times and prints the blob's mass every 10 steps: whether the trainer's loss can
teach that blob at all, separately from how often blobs come.

    nnUNet_n_proc_DA=0 python3 benchmarks/probe_blob_learning.py -d 905 -c 3d_cpu -tr TRAINER \\
        -m RESULTS/Dataset905_MaleniaZS/TRAINER__nnUNetPlans__3d_cpu [--patches 10] [--overfit 30]

(nnUNet_n_proc_DA=0: one process, no augmentation workers to leave behind. nnUNet_preprocessed must
hold the dataset, as for nnUNetv2_train; benchmarks/trainers is put on nnUNet_extTrainer here.)
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import with_bench_trainers  # noqa: E402


def _pasted(trainer, batch):
    """(real lesion masks, blob masks with their brightness sign) after the trainer's `_add_anomalies`."""
    targets, _ = trainer._lesion_targets(batch)
    before = batch["data"].clone()
    first = [t.num_lesions for t in targets]
    targets = trainer._add_anomalies(batch, targets)
    change = (batch["data"] - before)[:, 0]
    real, blobs = [], []
    for b, t in enumerate(targets):
        for k in range(t.num_lesions):
            mask = t.masks[k].bool()
            if k < first[b]:
                real.append((b, mask))
            else:
                blobs.append((b, mask, float(change[b][mask].mean()) > 0))
    return real, blobs


def _mass(network, data):
    import torch

    lesion_channels = network.disease_head.head_label_map < 0
    with torch.no_grad():
        details = network.predict_details(data.float())
    return torch.softmax(details["nnunet_logits"].float(), 1)[:, lesion_channels].sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("-c", "--configuration", default="3d_cpu")
    parser.add_argument("-tr", "--trainer", required=True, help="the trainer whose patches and loss to use")
    parser.add_argument("-m", "--model", type=Path, required=True, help="trained model folder (fold_0/checkpoint_final.pth)")
    parser.add_argument("-f", "--fold", type=int, default=0)
    parser.add_argument("--patches", type=int, default=10, help="training batches to measure (default 10)")
    parser.add_argument("--overfit", type=int, default=0, help="train_step replays of one patch with a brighter blob")
    args = parser.parse_args()

    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    with_bench_trainers(os.environ)   # -tr may name a benchmark trainer (benchmarks/trainers)

    trainer = get_trainer_from_args(args.dataset, args.configuration, args.fold, args.trainer, "nnUNetPlans",
                                    device=torch.device("cpu"))
    trainer.initialize()
    checkpoint = torch.load(args.model / f"fold_{args.fold}" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    trainer.network.load_state_dict(checkpoint["network_weights"])
    network = trainer.network.eval()
    loader, _ = trainer.get_dataloaders()
    masses: dict[str, list[float]] = {"brighter blobs": [], "darker blobs": [], "real lesions": []}
    for _ in range(args.patches):
        batch = next(loader)
        real, blobs = _pasted(trainer, batch)
        mass = _mass(network, batch["data"])
        masses["real lesions"] += [float(mass[b][m].mean()) for b, m in real]
        for b, m, brighter in blobs:
            masses["brighter blobs" if brighter else "darker blobs"].append(float(mass[b][m].mean()))
    print("| on training patches | count | nnU-Net lesion mass | share >= 0.5 |\n|---|---|---|---|")
    for name, values in masses.items():
        v = np.array(values)
        print(f"| {name} | {len(v)} | {v.mean():.2f} | {(v >= 0.5).mean():.2f} |" if len(v) else f"| {name} | 0 | - | - |")
    if args.overfit:
        while True:   # a patch with a brighter blob, replayed as it is (no new blobs)
            batch = next(loader)
            _, blobs = _pasted(trainer, batch)
            bright = [(b, m) for b, m, brighter in blobs if brighter]
            if bright:
                break
        trainer.anomalies = None
        frozen = copy.deepcopy(batch)
        network.train()
        for step in range(1, args.overfit + 1):
            trainer.train_step(copy.deepcopy(frozen))
            if step % 10 == 0 or step == args.overfit:
                network.eval()
                mass = _mass(network, frozen["data"])
                network.train()
                print(f"overfit step {step}: brighter blob mass " + ", ".join(f"{float(mass[b][m].mean()):.2f}"
                                                                              for b, m in bright), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
