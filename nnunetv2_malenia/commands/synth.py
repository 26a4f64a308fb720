"""`malenia synth`: generate the attribute-controlled synthetic CT lesion benchmark."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DESCRIPTION = """\
Generate an nnU-Net v2 raw dataset of synthetic CT phantoms (HU, with noise) whose lesions are drawn
from a knowledge table: every lesion's location, shape, density, texture, margin, relationship with
neighbouring organs, contrast phase and specific features follow its disease's attribute values.
Training cases (imagesTr/labelsTr) contain only seen diseases; test cases (imagesTs/labelsTs) contain
the diseases chosen by --split, each lesion labelled with its true disease, and dataset_test.json lists
those labels. lesion_attributes.json holds every lesion's attributes and a report sentence.
Output: $nnUNet_raw/DatasetID_NAME (or --output-root). Same seed = same bytes, whatever --workers."""

EPILOG = """\
presets (--preset; a preset is a JSON file of generator settings, see docs/synthetic.md):
  full  64^3, 13 diseases (5 unseen), lesion sizes that need GPU-length training (default)
  cpu   48^3, 10 diseases (4 unseen), large high-contrast lesions, 2-3 diseases a case: the tier
        plain nnUNetTrainer learns in about 20 minutes on 2 CPU cores (120 + 40 cases by default)
  cpu_varied  cpu with seen rows that show a second value in two or three types: the tier of the
        zero-shot benchmark (benchmarks/bench_zero_shot.py --tier cpu_varied)

examples:
  malenia synth -d 905 --name MaleniaCPU --preset cpu
  malenia synth -d 901 --name MaleniaSynth --cases 40 --seed 0
  malenia synth -d 902 --name Tiny --cases 4 --test-cases 2 --shape 32 32 32 --output-root /tmp/raw
  malenia synth -d 901 --name MaleniaSynth --cases 40 --force --preview docs/synthetic_preview.png
then: nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres --verify_dataset_integrity
see docs/synthetic.md for the phantoms, the HU values, the disease table and the split."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate the synthetic CT lesion benchmark as an nnU-Net raw dataset",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset-id", type=int, required=True, metavar="ID",
                        help="nnU-Net dataset id (1-999); the folder is DatasetID_NAME")
    parser.add_argument("--name", default="MaleniaSynth", help="dataset name (default: %(default)s)")
    parser.add_argument("--preset", default="full", metavar="NAME|JSON",
                        help="generator preset: full, cpu, cpu_varied (see below), or a preset .json file "
                             "(default: %(default)s)")
    parser.add_argument("--cases", type=int, default=None, metavar="N",
                        help="number of training cases (default: the preset's; the full preset needs it)")
    parser.add_argument("--test-cases", type=int, default=None, metavar="M",
                        help="number of test cases (default: the preset's, else one per test disease, at least N/4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--shape", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="volume size in voxels, 32-256 per axis (default: the preset's, 64^3 full, 48^3 cpu)")
    parser.add_argument("--spacing", type=float, nargs="+", default=None, metavar="MM",
                        help="voxel spacing in mm: one value (isotropic) or X Y Z (default: the preset's, 2.5)")
    parser.add_argument("--split", choices=("seen", "unseen", "all"), default="all",
                        help="which diseases the test cases contain (default: %(default)s)")
    parser.add_argument("--table", default=None,
                        help="knowledge table (path or shipped name) the diseases come from (default: the preset's)")
    parser.add_argument("--unseen", action="append", default=None, metavar="DISEASE",
                        help="a disease to keep out of training (repeatable; default: the table's built-in split)")
    parser.add_argument("--no-unseen", action="store_true",
                        help="train on every disease of the table (a supervised upper bound for zero-shot benchmarks)")
    parser.add_argument("--output-root", type=Path, default=None, metavar="DIR",
                        help="where to create DatasetID_NAME (default: $nnUNet_raw)")
    parser.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes, 1 or 2 (default: %(default)s); output does not depend on it")
    parser.add_argument("--preview", type=Path, default=None, metavar="PNG",
                        help="also write a PNG with one example lesion per disease and its attributes")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the result line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.synthetic.benchmark import load_benchmark, split_problems
    from nnunetv2_malenia.synthetic.dataset_writer import SynthConfig, generate_dataset
    from nnunetv2_malenia.synthetic.presets import load_preset

    root = args.output_root or os.environ.get("nnUNet_raw")
    if not root:
        raise MaleniaError("$nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass --output-root DIR")
    preset = load_preset(args.preset)
    if args.spacing is not None and len(args.spacing) not in (1, 3):
        raise MaleniaError(f"--spacing takes 1 or 3 values, got {len(args.spacing)}")
    spacing = None if args.spacing is None else tuple(args.spacing * 3 if len(args.spacing) == 1 else args.spacing)
    cases = args.cases if args.cases is not None else preset.default_cases
    if cases is None:
        raise MaleniaError(f"--cases is required with the {preset.name!r} preset (it has no default case count)")
    test_cases = args.test_cases if args.test_cases is not None else (
        preset.default_test_cases if args.cases is None else None)
    if args.no_unseen and args.unseen:
        raise MaleniaError("--no-unseen and --unseen exclude each other; pass one of them")
    unseen = () if args.no_unseen else (tuple(args.unseen) if args.unseen else None)
    cfg = SynthConfig(
        dataset_id=args.dataset_id, name=args.name, cases=cases, output_root=str(root), seed=args.seed,
        test_cases=test_cases, shape_xyz=None if args.shape is None else tuple(args.shape), spacing_xyz=spacing,
        split=args.split, table=None if args.table is None else str(args.table), unseen=unseen, force=args.force,
        workers=args.workers, preset=args.preset)
    if unseen:
        for problem in split_problems(load_benchmark(cfg.table, unseen, cfg.preset)):
            print(f"malenia synth: warning: {problem}", file=sys.stderr)

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 10 == 0):
            print(f"  {done}/{total} cases", file=sys.stderr)

    target = generate_dataset(cfg, progress)
    elapsed = time.perf_counter() - start
    print(f"wrote {target} ({cfg.cases} training cases, test cases in imagesTs; preset {preset.name}) "
          f"in {elapsed:.1f} s")
    if args.preview is not None:
        from nnunetv2_malenia.synthetic.preview import write_preview
        print(f"wrote {write_preview(target, args.preview)}")
    return 0
