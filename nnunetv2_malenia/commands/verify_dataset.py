"""`malenia verify-dataset`: the raw-data checks nnU-Net's --verify_dataset_integrity leaves out."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DESCRIPTION = """\
Check the raw nnU-Net dataset $nnUNet_raw/DatasetXXX_NAME for what
`nnUNetv2_plan_and_preprocess --verify_dataset_integrity` does not check (run both before training):

  complete files     every image and label file of imagesTr/labelsTr (and imagesTs/labelsTs, if
                     present) decompresses completely and holds the voxels its header declares.
                     SimpleITK, and so nnU-Net, reads a .nii.gz cut short by an interrupted copy
                     without an error, the missing part as zeros.
  finite images      no NaN or infinite voxel (one spreads over the whole case in normalisation)
  label values       every value of a label map is a label of dataset.json (labelsTs: of the
                     test label list, dataset.json's malenia.test_labels or dataset_test.json)
  lesion labels      the lesion labels are rows of the knowledge table (as the trainer resolves them)
  lesion attributes  lesion_attributes.json uses only vocabulary values; every lesion label present
                     in a case's label map has a record there whose disease is that label's row
                     (a missing record makes the trainer fall back to the row's most likely values)

Each finding is one line naming the file and the case, label or value; a summary line follows,
with a progress bar on stderr meanwhile. Exit status 0 without findings, 1 with findings, 2 when
there is nothing to check (unknown dataset, no dataset.json)."""

EPILOG = """\
examples:
  malenia verify-dataset -d 901
  malenia verify-dataset -d Dataset220_KiTS2023 && nnUNetv2_plan_and_preprocess -d 220 --verify_dataset_integrity"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify-dataset", help="check a raw dataset: complete files, finite images, label values, lesion attributes",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset-id", required=True, metavar="ID",
                        help="nnU-Net dataset id or name (in $nnUNet_raw)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from tqdm.auto import tqdm

    from nnunetv2_malenia.dataset_verification import verify_raw_dataset

    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise MaleniaError("$nnUNet_raw is not set; export it as for nnUNetv2_plan_and_preprocess (see `malenia env`)")
    try:
        name = maybe_convert_to_dataset_name(args.dataset_id)
    except RuntimeError as e:
        raise MaleniaError(f"dataset {args.dataset_id}: {str(e).splitlines()[0]}") from None
    report = verify_raw_dataset(Path(raw) / name, progress=not args.no_progress,
                                on_finding=lambda line: tqdm.write(line))
    for note in report.notes:
        print(f"note: {note}")
    print(report.summary())
    return 1 if report.findings else 0
