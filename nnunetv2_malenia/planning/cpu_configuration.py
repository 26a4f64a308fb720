"""A small network configuration inside nnU-Net's plans: `3d_cpu`, for the CPU tier.

nnU-Net reads every configuration from `nnUNetPlans.json`, and a configuration may inherit from
another (`"inherits_from"`, documentation/explanation_plans_files.md). `3d_cpu` inherits from
`3d_fullres` and replaces three things: the `architecture` entry (given whole, because the merge
is shallow: fewer and narrower stages), the batch size and, when needed, the patch size (a
multiple of the network's total downsampling). It keeps the parent's `data_identifier`, so it
trains on the parent's preprocessed data: never run `nnUNetv2_preprocess -c 3d_cpu`, which would
delete and rewrite that folder. Then `nnUNetv2_train ID 3d_cpu FOLD -tr TRAINER` and
`nnUNetv2_predict ... -c 3d_cpu` work unchanged for nnUNetTrainer and every Malenia trainer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.errors import MaleniaError

CPU_CONFIGURATION = "3d_cpu"
CPU_FEATURES = (16, 32, 64, 128)
CPU_BATCH_SIZE = 2
# Dice over the batch, not per image: a CPU-tier image holds 2-4 of the 10 lesion classes, and
# per-image Dice of an absent class is all or nothing (docs/benchmarks.md, calibration).
CPU_BATCH_DICE = True


def cpu_configuration(parent: dict, features: Sequence[int] = CPU_FEATURES, batch_size: int = CPU_BATCH_SIZE,
                      parent_name: str = "3d_fullres", batch_dice: bool = CPU_BATCH_DICE) -> dict:
    """The child configuration of `parent` (a configuration dict of nnU-Net's plans)."""
    if "architecture" not in parent:
        raise MaleniaError(f"configuration {parent_name!r} has no 'architecture' entry; re-plan with nnU-Net 2.5 or newer")
    if not features or any(int(f) < 1 for f in features):
        raise MaleniaError(f"--features {' '.join(map(str, features))}: give one positive width per stage")
    if batch_size < 1:
        raise MaleniaError(f"--batch-size {batch_size}: must be at least 1")
    architecture = copy.deepcopy(parent["architecture"])
    kwargs = architecture["arch_kwargs"]
    n_parent = int(kwargs["n_stages"])
    n = len(features)
    if n > n_parent:
        raise MaleniaError(f"--features has {n} stages but {parent_name} has only {n_parent}; the patch cannot be "
                           f"downsampled further: give at most {n_parent} widths")
    kwargs["n_stages"] = n
    kwargs["features_per_stage"] = [int(f) for f in features]
    for key in ("kernel_sizes", "strides", "n_conv_per_stage", "n_blocks_per_stage"):
        if key in kwargs:
            kwargs[key] = kwargs[key][:n]
    kwargs["n_conv_per_stage_decoder"] = kwargs["n_conv_per_stage_decoder"][:n - 1]
    patch = [int(p) for p in parent["patch_size"]]
    divisor = [1] * len(patch)
    for stride in kwargs["strides"]:
        divisor = [d * int(s) for d, s in zip(divisor, stride)]
    patch = [max(d, (p // d) * d) for p, d in zip(patch, divisor)]
    return {"inherits_from": parent_name, "data_identifier": parent["data_identifier"],
            "batch_size": int(batch_size), "patch_size": patch, "batch_dice": bool(batch_dice),
            "architecture": architecture}


def add_cpu_configuration(plans_file: str | Path, name: str = CPU_CONFIGURATION, parent_name: str = "3d_fullres",
                          features: Sequence[int] = CPU_FEATURES, batch_size: int = CPU_BATCH_SIZE,
                          batch_dice: bool = CPU_BATCH_DICE) -> dict:
    """Add (or replace) configuration `name` in a plans file, written atomically; returns it."""
    plans_file = Path(plans_file)
    if not plans_file.is_file():
        raise MaleniaError(f"{plans_file} does not exist; run nnUNetv2_plan_and_preprocess -d ID -c {parent_name} first")
    plans = json.loads(plans_file.read_text(encoding="utf-8"))
    configurations = plans.get("configurations", {})
    if parent_name not in configurations:
        raise MaleniaError(f"{plans_file} has no configuration {parent_name!r}; it has: {', '.join(configurations)}")
    if name == parent_name:
        raise MaleniaError(f"the new configuration cannot replace its parent {parent_name!r}; choose another --name")
    parent = _resolved(configurations, parent_name)
    configurations[name] = cpu_configuration(parent, features, batch_size, parent_name, batch_dice)
    write_json_atomic(plans_file, plans)
    return configurations[name]


def _resolved(configurations: dict, name: str) -> dict:
    """A configuration with its `inherits_from` chain merged in (nnU-Net's shallow merge)."""
    config = configurations[name]
    if "inherits_from" in config:
        return {**_resolved(configurations, config["inherits_from"]), **config}
    return config
