"""`malenia benchmark`: fold-wise DSC/NSD tables of several trainers, seen and unseen classes apart."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DESCRIPTION = """\
Score trained nnU-Net models fold by fold, as the Malenia paper reports them: per class DSC and
NSD, mean ± std over folds, seen and unseen lesion classes apart, several trainers side by side.

For every -tr and fold:
  cross-validation  nnU-Net's final-validation predictions (fold_K/validation, written by
                    nnUNetv2_train) against $nnUNet_preprocessed/DATASET/gt_segmentations;
  test set          DATASET's imagesTs predicted by that fold alone (models of nnUNetTrainerMalenia
                    answer with their knowledge table, or --table: unseen rows are predicted;
                    other trainers through nnU-Net's predictor) against labelsTs, with the label
                    list of dataset_test.json (else dataset.json). Predictions are kept in
                    OUT/predictions and reused when complete.
Labels are matched by name: -tr 906/nnUNetTrainer scores a model trained on dataset 906 (e.g. a
supervised upper bound trained with the unseen diseases labelled) on DATASET's test cases.
A case where a class is absent from both ground truth and prediction is left out of that class.

OUT gets benchmark.md (the table), benchmark.csv (one row per source, model, fold and class),
benchmark.json (means and stds per class and per seen/unseen group) and benchmark.png (test DSC
per lesion class, bars per model, error bars = std over folds)."""

EPILOG = """\
examples:
  malenia benchmark -d 901 -tr nnUNetTrainerMalenia -tr nnUNetTrainer --folds 0 1 2 3 4
  malenia benchmark -d 905 -tr nnUNetTrainerMalenia -tr nnUNetTrainerMalenia_nameonly \\
      -tr 906/nnUNetTrainer --folds 0 --device cpu --disable-tta -o bench"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="fold-wise DSC/NSD of several trainers (cross-validation and test set), seen vs unseen",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name whose test cases are scored")
    parser.add_argument("-tr", "--trainer", action="append", required=True, metavar="TRAINER",
                        help="trainer class name (repeatable); ID/TRAINER for a model trained on another dataset")
    parser.add_argument("--folds", nargs="+", default=["0", "1", "2", "3", "4"], help="folds (default: 0 1 2 3 4)")
    parser.add_argument("-c", "--configuration", default="3d_fullres", help="default: %(default)s")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: %(default)s)")
    parser.add_argument("--table", default=None,
                        help="knowledge table for Malenia models (path or shipped name); default: the model's")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output folder (default: $nnUNet_results/DATASET/malenia_benchmark)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring at test time (faster)")
    parser.add_argument("--tolerance-mm", type=float, default=2.0, help="NSD tolerance in mm (default: %(default)s)")
    parser.add_argument("--unknown-threshold", type=float, default=0.0, metavar="T",
                        help="open-set threshold for Malenia models (default 0: every lesion gets its closest row)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth", help="default: %(default)s")
    parser.add_argument("--no-test", action="store_true", help="only the cross-validation predictions")
    parser.add_argument("--no-cv", action="store_true", help="only the test set")
    parser.add_argument("--voxelwise", action="store_true",
                        help="score the test-set label maps as predicted; by default each connected lesion first "
                             "takes the disease label most of its voxels carry (one disease per lesion, every model "
                             "alike), so a few voxels of a second disease on a lesion's rim are not a false lesion")
    parser.add_argument("--min-lesion-ml", type=float, default=0.0, metavar="ML",
                        help="with the vote: a predicted lesion smaller than ML millilitres is not a finding and takes "
                             "the label around it (default 0: off; 0.5 ml is a 10 mm sphere, RECIST's smallest "
                             "measurable lesion; the CPU tier's benchmark uses it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from nnunetv2_malenia.evaluation.benchmark import dataset_name, run_benchmark

    if not math.isfinite(args.tolerance_mm) or args.tolerance_mm < 0:
        raise MaleniaError(f"--tolerance-mm must be a finite number >= 0, got {args.tolerance_mm}")
    if not math.isfinite(args.min_lesion_ml) or args.min_lesion_ml < 0:
        raise MaleniaError(f"--min-lesion-ml must be a finite number >= 0, got {args.min_lesion_ml}")
    if args.min_lesion_ml > 0 and args.voxelwise:
        raise MaleniaError("--min-lesion-ml works on the lesion vote, which --voxelwise turns off; drop one")
    if args.no_test and args.no_cv:
        raise MaleniaError("--no-test and --no-cv leave nothing to score; drop one")
    folds = [f if f == "all" else int(f) for f in args.folds]
    name = dataset_name(args.dataset)
    output = args.output or Path(os.environ.get("nnUNet_results", ".")) / name / "malenia_benchmark"
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = run_benchmark(name, args.trainer, folds, output, configuration=args.configuration, plans=args.plans,
                           table=args.table, device=device, tta=not args.disable_tta, tolerance_mm=args.tolerance_mm,
                           unknown_threshold=args.unknown_threshold, checkpoint=args.checkpoint,
                           test=not args.no_test, cross_validation=not args.no_cv, lesion_vote=not args.voxelwise,
                           min_lesion_ml=args.min_lesion_ml)
    from nnunetv2_malenia.evaluation.benchmark import markdown

    print(markdown(result), end="")
    print(f"-> {output / 'benchmark.md'}, benchmark.csv, benchmark.json, benchmark.png")
    return 0
