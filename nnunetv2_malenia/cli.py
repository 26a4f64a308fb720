"""The `malenia` command: one entry point, one module per subcommand under `commands/`.

Each command module exposes `register(subparsers)`; heavy imports happen inside the command's
`run`, so `malenia --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from nnunetv2_malenia import __version__
from nnunetv2_malenia.errors import MaleniaError

COMMAND_MODULES = (
    "tables",
    "import_annotations",
    "merge_datasets",
    "embed",
    "synth",
    "cpu_config",
    "verify_dataset",
    "predict",
    "evaluate",
    "benchmark",
    "demo",
    "env",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="malenia",
        description="Malenia zero-shot 3D lesion segmentation on top of nnU-Net v2. "
        "Training and seen-class prediction use nnU-Net's own commands "
        "(nnUNetv2_train ... -tr nnUNetTrainerMalenia); these subcommands cover the rest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"nnunetv2_malenia.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MaleniaError as e:
        print(f"malenia {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
