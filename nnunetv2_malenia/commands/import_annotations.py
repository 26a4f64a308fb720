"""`malenia import-annotations`: the released workbook -> DATASET/lesion_attributes.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError


def _sheet_table() -> str:
    from nnunetv2_malenia.knowledge.workbook import WORKBOOK_SHEETS

    lines = [f"  {s.key:<15} {s.sheet:<6} {s.disease:<15} {s.dataset:<20} label {s.label}" for s in WORKBOOK_SHEETS]
    return "sheets (--sheet NAME), the dataset they annotate and the label:\n" + "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-annotations", help="convert the released annotation workbook to lesion_attributes.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert the Malenia authors' lesion-description workbook (annotations_of_lesion_descriptions_en.xlsx) "
        "to DATASET/lesion_attributes.json: case id -> lesion label -> {disease, attributes, report}. Case ids are "
        "nnU-Net's (liver_2, case_00000). Rows that cannot be imported (header and example rows, blank cells, codes "
        "outside the header's set) are listed with the reason.",
        epilog=_sheet_table() + "\n\nexample:\n  malenia import-annotations --workbook annotations_of_lesion_descriptions_en.xlsx "
        "\\\n      --dataset $nnUNet_raw/Dataset220_KiTS2023 --sheet kidney-tumor kidney-cyst")
    parser.add_argument("--workbook", type=Path, required=True, help="the English workbook (.xlsx)")
    parser.add_argument("--dataset", type=Path, required=True,
                        help="nnU-Net raw dataset folder to write lesion_attributes.json into (must exist)")
    parser.add_argument("--sheet", nargs="+", default=None, metavar="NAME",
                        help="import only these sheets (English key or sheet name; default: all)")
    parser.add_argument("--vocabulary", default="vocabulary", help="vocabulary path or shipped name (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing lesion_attributes.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.knowledge.lesion_attributes import LESION_ATTRIBUTES_FILENAME
    from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary
    from nnunetv2_malenia.knowledge.workbook import import_workbook

    if not args.dataset.is_dir():
        raise MaleniaError(f"{args.dataset}: no such dataset folder; point --dataset at the nnU-Net raw dataset "
                           "(e.g. $nnUNet_raw/Dataset220_KiTS2023)")
    target = args.dataset / LESION_ATTRIBUTES_FILENAME
    if target.exists() and not args.force:
        raise MaleniaError(f"{target} exists; pass --force to overwrite it")
    result = import_workbook(args.workbook, load_vocabulary(args.vocabulary), args.sheet)
    result.lesion_attributes.save(target)
    for row in result.skipped:
        print(f"skipped {row}")
    for sheet, count in result.imported.items():
        print(f"imported {count:4d} rows from sheet {sheet}")
    n_lesions = sum(result.imported.values())
    print(f"wrote {target}: {len(result.lesion_attributes.cases)} cases, {n_lesions} lesions; "
          f"{len(result.skipped)} rows skipped (listed above)")
    return 0
