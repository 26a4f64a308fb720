"""`malenia merge-datasets`: one nnU-Net raw dataset from several partially labelled ones."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Merge nnU-Net raw datasets that each label only their own organs and lesions (MSD Liver, Lung,
Pancreas, Colon, KiTS23, ...) into one dataset $nnUNet_raw/DatasetNEW_ID_NAME, to train one model
on all of them:
  - labels are united by name (case and '_' ignored, as the trainer matches lesion labels), and
    every label map is renumbered into the union; geometry (spacing, origin, direction) is kept;
  - case ids stay, except ids several datasets use: those get their dataset's name as prefix;
  - lesion_attributes.json files are merged, with the new case ids and label values;
  - annotated_labels.json (beside dataset.json) records per case which labels its source dataset
    annotates. Trainers read it: a label a case's source does not annotate is not background in
    that case's loss (marginal loss), and `malenia evaluate`/`benchmark` do not score it there.
Channel names and file endings must agree. Spacings may differ (nnU-Net resamples). Images are
hard-linked (copied with --copy or across file systems); only training cases are merged. The
dataset is built in a hidden folder beside it and renamed into place at the end: an interrupted
merge leaves nothing behind."""

EPILOG = """\
example (the paper's five datasets, prepared as in docs/real_data.md):
  malenia merge-datasets -d 3 6 7 10 220 -o 500 --name MaleniaAbdomen
then:
  nnUNetv2_plan_and_preprocess -d 500 -c 3d_fullres --verify_dataset_integrity
  nnUNetv2_train 500 3d_fullres 0 -tr nnUNetTrainerMalenia     (or -tr nnUNetTrainer_partial)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge-datasets", help="merge partially labelled nnU-Net raw datasets into one (labels united by name)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--datasets", nargs="+", required=True, metavar="ID",
                        help="the raw datasets to merge: ids (3) or folder names (Dataset003_Liver), at least two")
    parser.add_argument("-o", "--output-id", type=int, required=True, metavar="NEW_ID",
                        help="dataset id of the merged dataset (1-999, unused)")
    parser.add_argument("--name", required=True, help="name of the merged dataset: DatasetNEW_ID_NAME")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of hard-linking them")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the result line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.datasets.merge import merge_datasets

    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    target = merge_datasets(args.datasets, args.output_id, args.name, copy=args.copy, progress=not args.quiet,
                            log=log)
    print(f"wrote {target}")
    return 0
