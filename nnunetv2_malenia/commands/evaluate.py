"""`malenia evaluate`: per case and label DSC and NSD of a prediction folder against a ground-truth folder."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DESCRIPTION = """\
Compare the label maps in PRED with those of the same file name in GT (nnU-Net naming: CASE.nii.gz)
and report, per case and per label, the Dice similarity coefficient (DSC) and the normalized surface
Dice (NSD) at --tolerance-mm. NSD is MONAI's compute_surface_dice with use_subvoxels=True, i.e.
DeepMind's surface-distance algorithm: surface elements weighted by their area in mm^2 and
spacing-aware distances, so anisotropic voxels count correctly. Spacing comes from the GT image;
a prediction whose size, spacing or origin differs from its GT is an error.

Empty masks (Metrics Reloaded convention, Maier-Hein et al., Nat. Methods 2024):
  GT and prediction both empty   -> DSC = NSD = 1 (--both-empty nan: NaN, left out of the means)
  GT empty, prediction not       -> DSC = NSD = 0
  prediction empty, GT not       -> DSC = NSD = 0
Every row says which case applied (column `empty`); summary.json counts them per label.

Default tolerance 2 mm: a common choice for lesions and organs-at-risk (e.g. the ABCs 2020
challenge scored surface Dice at 2 mm); about 2-3 voxels in-plane on clinical abdominal CT, i.e.
boundary disagreement of the size readers disagree by. It is below one voxel on coarse grids (the
synthetic benchmark's 2.5 mm), where a one-voxel shift then counts as wrong: set it to your data
and always quote it with the numbers (summary.json records it).

Partially labelled data (a dataset from `malenia merge-datasets`): with annotated_labels.json beside
--label-file, a case is not scored on labels its source dataset does not annotate (rows marked
"not annotated", not in the means).

Output in -o OUT: metrics.csv (one row per case and label), summary.json (per label mean, std
and n of DSC and NSD, the convention counts, and the mean over labels) and summary.md (the same
as a markdown table)."""

EPILOG = """\
examples:
  malenia evaluate -p pred -g $nnUNet_raw/Dataset901_MaleniaSynth/labelsTs -o eval \\
      --label-file $nnUNet_raw/Dataset901_MaleniaSynth/dataset_test.json
  malenia evaluate -p pred -g labelsTs -o eval --labels 1 liver_tumor --label-file dataset.json --tolerance-mm 1
see docs/evaluation.md for the conventions and the reference implementation."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="DSC and NSD (normalized surface Dice) per case and label: CSV, JSON and markdown",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", "--pred", type=Path, required=True, metavar="PRED", help="folder of predicted label maps")
    parser.add_argument("-g", "--gt", type=Path, required=True, metavar="GT", help="folder of ground-truth label maps")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                        help="folder for metrics.csv, summary.json, summary.md (default: PRED/evaluation)")
    parser.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                        help="label values or names (names need --label-file); default: every label in GT except 0")
    parser.add_argument("--label-file", type=Path, default=None, metavar="JSON",
                        help="dataset.json or dataset_test.json: its \"labels\" {name: value} name the labels, "
                        "its \"file_ending\" sets the file ending")
    parser.add_argument("--tolerance-mm", type=float, default=2.0, metavar="T",
                        help="NSD tolerance in mm (default: %(default)s; see above)")
    parser.add_argument("--both-empty", choices=("1", "nan"), default="1",
                        help="score when GT and prediction are both empty: 1 (default, Metrics Reloaded) or nan "
                        "(left out of the means)")
    parser.add_argument("--file-ending", default=None,
                        help="label map file ending (default: the label file's, else .nii.gz)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="a GT case without prediction is reported (rows marked missing, not in the means) "
                        "instead of being an error")
    parser.add_argument("-np", "--num-processes", type=int, default=1, metavar="N",
                        help="worker processes (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.evaluation.evaluate_folder import evaluate_folders, markdown_table, write_outputs

    if not math.isfinite(args.tolerance_mm) or args.tolerance_mm < 0:
        raise MaleniaError(f"--tolerance-mm must be a finite number >= 0, got {args.tolerance_mm}")
    result = evaluate_folders(
        args.pred, args.gt, labels=args.labels, label_file=args.label_file, tolerance_mm=args.tolerance_mm,
        file_ending=args.file_ending, allow_missing=args.allow_missing, num_processes=args.num_processes,
        both_empty=math.nan if args.both_empty == "nan" else 1.0, progress=not args.quiet)
    out = args.output or args.pred / "evaluation"
    paths = write_outputs(result, out)
    if not args.quiet:
        print(markdown_table(result.summary), end="")
    s = result.summary
    print(f"{s['n_cases']} cases, {len(result.labels)} labels: mean DSC {_f(s['mean']['dsc'])}, "
          f"mean NSD@{args.tolerance_mm:g}mm {_f(s['mean']['nsd'])} -> {paths['csv'].parent}")
    return 0


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
