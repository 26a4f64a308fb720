"""CPU benchmark: Malenia network vs the plain nnU-Net network built from the same plans.

Timing: both models in one subprocess per (mode, patch), steps interleaved, median after one
warm-up round (the machine is shared; interleaving exposes both models to the same load).
Memory: a fresh subprocess per (model, mode, patch); peak resident memory (getrusage maxrss)
minus the resident size after building the model and the batch (what the step itself needs).
Training step = forward + loss + backward (plain: CE on nnU-Net's deep-supervision outputs;
Malenia: the same CE + matcher + MaleniaCriterion); eval = forward under inference_mode.

    python3 benchmarks/bench_network.py --patches 64 96 --batch 1 --iters 2
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# nnU-Net 3d_fullres-like plans for 64^3..96^3 patches: 5 stages, 2 convs per stage.
FEATURES = [32, 64, 128, 256, 320]
NUM_CLASSES = 3
VOCAB = (19, 2, 4, 2, 4, 3, 3, 6)  # 43 values in 8 types, the size of the project vocabulary


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def build(model: str, mode: str, patch: int, batch: int, lesions: int):
    """Return a zero-argument callable running one step of (model, mode) on a fixed batch."""
    import torch
    import torch.nn.functional as F

    from nnunetv2_malenia.loss import LesionTargets, MaleniaCriterion
    from nnunetv2_malenia.network import MaleniaConfig, MaleniaNetwork
    from nnunetv2_malenia.network.backbone_adapter import build_nnunet_backbone
    from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans

    torch.manual_seed(0)
    p = unet_plans(FEATURES)
    net = build_nnunet_backbone(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1,
                                NUM_CLASSES, deep_supervision=(mode == "train"))
    cfg = MaleniaConfig(lesion_labels=(2,))
    if model == "malenia":
        emb, vt = random_vocabulary(VOCAB, cfg.text_dim)
        net = MaleniaNetwork(net, cfg, len(vt))
        net.set_vocabulary(emb, vt)
        net.set_knowledge_table(torch.rand(4, len(vt)), [2, 3, 4, 5])
    shape = (patch,) * 3
    x = torch.randn(batch, 1, *shape)
    seg_target = torch.randint(0, NUM_CLASSES, (batch, *shape))
    targets = []
    for b in range(batch):
        m = torch.zeros(lesions, *shape, dtype=torch.bool)
        a = torch.zeros(lesions, sum(VOCAB), dtype=torch.bool)
        for i in range(lesions):
            c = patch // 4 + i * patch // 3
            m[i, c:c + patch // 6, c:c + patch // 8, c:c + patch // 6] = True
            a[i, [i, 19 + i % 2, 21, 25, 27, 31, 34, 37 + i]] = True
        targets.append(LesionTargets(m, a))
    criterion = MaleniaCriterion()

    def ds_ce(seg):
        segs = seg if isinstance(seg, (list, tuple)) else [seg]
        loss = 0.0
        for s in segs:
            t = F.interpolate(seg_target[:, None].float(), size=s.shape[2:], mode="nearest")[:, 0].long()
            loss = loss + F.cross_entropy(s, t)
        return loss

    def step():
        if mode == "eval":
            net.eval()
            with torch.inference_mode():
                net(x)
            return
        net.train()
        net.zero_grad(set_to_none=True)
        if model == "malenia":
            out = net(x, targets=targets, matcher=criterion.matcher)
            loss = criterion(out, targets)["loss"] + ds_ce(out["seg"])
        else:
            loss = ds_ce(net(x))
        loss.backward()

    return step


def memory_worker(model: str, mode: str, patch: int, batch: int, lesions: int) -> dict:
    """Peak RSS of two steps minus the RSS after building; run in a fresh process per configuration."""
    step = build(model, mode, patch, batch, lesions)
    base = _current_rss_mb()
    for _ in range(2):
        step()
    return {"model": model, "mode": mode, "patch": patch, "peak_mb": _rss_mb() - base}


def time_worker(mode: str, patch: int, batch: int, iters: int, lesions: int) -> dict:
    """Median step time of both models, interleaved step by step so that load from other
    processes on a shared machine affects both alike."""
    steps = {m: build(m, mode, patch, batch, lesions) for m in ("plain", "malenia")}
    times: dict[str, list[float]] = {m: [] for m in steps}
    for i in range(iters + 1):  # first round is warm-up
        for m, step in steps.items():
            t0 = time.perf_counter()
            step()
            if i:
                times[m].append(time.perf_counter() - t0)
    return {m: statistics.median(t) for m, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, nargs="+", default=[64, 96])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--lesions", type=int, default=2, help="lesions per sample")
    ap.add_argument("--memory-worker", nargs=3, metavar=("MODEL", "MODE", "PATCH"))
    ap.add_argument("--time-worker", nargs=2, metavar=("MODE", "PATCH"))
    args = ap.parse_args()
    if args.memory_worker:
        model, mode, patch = args.memory_worker
        print(json.dumps(memory_worker(model, mode, int(patch), args.batch, args.lesions)))
        return
    if args.time_worker:
        mode, patch = args.time_worker
        print(json.dumps(time_worker(mode, int(patch), args.batch, args.iters, args.lesions)))
        return

    def run(*extra: str) -> dict:
        cmd = [sys.executable, __file__, *extra, "--batch", str(args.batch), "--iters", str(args.iters),
               "--lesions", str(args.lesions)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"# {extra}: {res}", file=sys.stderr, flush=True)
        return res

    rows = {}
    for patch in args.patches:
        for mode in ("train", "eval"):
            t = run("--time-worker", mode, str(patch))
            for model in ("plain", "malenia"):
                rows[(patch, mode, model)] = {"time_s": t[model],
                                              **run("--memory-worker", model, mode, str(patch))}
    print(f"| patch | step | plain time (s) | Malenia time (s) | time ratio | plain peak (MB) | Malenia peak (MB) "
          f"| memory ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for patch in args.patches:
        for mode in ("train", "eval"):
            p, m = rows[(patch, mode, "plain")], rows[(patch, mode, "malenia")]
            label = "train (fwd+loss+bwd)" if mode == "train" else "eval forward"
            print(f"| {patch}^3 | {label} | {p['time_s']:.2f} | {m['time_s']:.2f} | {m['time_s'] / p['time_s']:.2f} "
                  f"| {p['peak_mb']:.0f} | {m['peak_mb']:.0f} | {m['peak_mb'] / max(p['peak_mb'], 1):.2f} |")


if __name__ == "__main__":
    main()
