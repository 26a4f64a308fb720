"""`malenia tables check|derive|from-text`: validate table files; turn annotated cases or a free-text
description into table rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from nnunetv2_malenia.errors import MaleniaError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tables", help="check or derive attribute vocabularies and knowledge tables",
        description="Work with the attribute vocabulary, Clinical Knowledge Tables and lesion_attributes.json files.")
    sub = parser.add_subparsers(dest="tables_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check", help="validate table files",
        description="Validate each file against the schema: a vocabulary (kind: attribute_vocabulary), a knowledge "
        "table (kind: knowledge_table, checked against the vocabulary it names) or a lesion_attributes.json. "
        "Prints one line per file; a bad file gets one line naming file, row and field. Exit status 1 if any "
        "file fails.",
        epilog="example: malenia tables check attribute_tables/*.yaml")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.add_argument("--vocabulary", default="vocabulary",
                       help="vocabulary for lesion_attributes.json files (path or shipped name; default: %(default)s)")
    check.set_defaults(func=run_check)

    derive = sub.add_parser(
        "derive", help="knowledge-table rows from a lesion_attributes.json (value frequencies per disease)",
        description="Count, per disease, how often each attribute value occurs in a lesion_attributes.json and "
        "write knowledge-table rows with those frequencies as weights. This is how the shipped clinical table's "
        "workbook rows were made.",
        epilog="example: malenia tables derive $nnUNet_raw/Dataset220_KiTS2023/lesion_attributes.json -o kits_rows.yaml")
    derive.add_argument("lesion_attributes", type=Path, metavar="LESION_ATTRIBUTES_JSON")
    derive.add_argument("--vocabulary", default="vocabulary", help="vocabulary path or shipped name (default: %(default)s)")
    derive.add_argument("--source", default=None, help="text for each row's `source` field (default: the file name)")
    derive.add_argument("--name", default="derived", help="table name when writing a whole table (default: %(default)s)")
    derive.add_argument("-o", "--output", type=Path, default=None,
                        help="write a complete knowledge table YAML here (default: print the rows)")
    derive.set_defaults(func=run_derive)

    from_text = sub.add_parser(
        "from-text", help="a knowledge-table row from a plain-English lesion description",
        description="Parse a free-text description into a knowledge-table row, as `malenia predict --describe` "
        "does: vocabulary phrases named in the text are taken as they are, other clauses are matched to the value "
        "phrases by the text tower's cosine similarity, and types the text does not speak of are left empty ([]), "
        "which table scoring skips. Prints the row as YAML (stdout), ready to paste under `diseases:` of a table, "
        "and how each value was found (stderr). See docs/free_text.md.",
        epilog='example: malenia tables from-text "round, hypodense, homogeneous lesion with a thin cystic wall in '
        'the pancreatic body" --name "cystic pancreas lesion"')
    from_text.add_argument("text", metavar="TEXT", help="the description (quote it)")
    from_text.add_argument("--name", required=True, help="the row's disease name")
    from_text.add_argument("--vocabulary", default="vocabulary", help="vocabulary path or shipped name (default: %(default)s)")
    from_text.add_argument("--tower", default="default",
                           help="text tower spec; use the one your model was trained with (default: %(default)s)")
    from_text.set_defaults(func=run_from_text)


def run_check(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.knowledge.check import check_table_file
    from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary

    failures = 0
    vocabulary = None
    for path in args.paths:
        try:
            if path.suffix == ".json" and vocabulary is None:
                vocabulary = load_vocabulary(args.vocabulary)
            print(f"ok   {check_table_file(path, vocabulary)}")
        except MaleniaError as e:
            failures += 1
            print(f"FAIL {e}", file=sys.stderr)
    return 1 if failures else 0


def run_from_text(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.knowledge.free_text import parse_description, tower_embedder
    from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary

    if not args.name.strip():
        raise MaleniaError("--name is empty; give the row a disease name")
    vocabulary = load_vocabulary(args.vocabulary)
    parsed = parse_description(args.name.strip(), args.text.strip(), vocabulary, tower_embedder(args.tower))
    print("\n".join(parsed.table_lines()), file=sys.stderr)
    print(yaml.safe_dump([parsed.yaml_row()], sort_keys=False, allow_unicode=True, width=200), end="")
    return 0


def run_derive(args: argparse.Namespace) -> int:
    from nnunetv2_malenia._atomic import atomic_path
    from nnunetv2_malenia.knowledge.derive import derived_rows
    from nnunetv2_malenia.knowledge.knowledge_table import knowledge_table_from_dict
    from nnunetv2_malenia.knowledge.lesion_attributes import load_lesion_attributes
    from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary

    vocabulary = load_vocabulary(args.vocabulary)
    lesions = load_lesion_attributes(args.lesion_attributes, vocabulary)
    rows = derived_rows(lesions, vocabulary, args.source or args.lesion_attributes.name)
    if not rows:
        raise MaleniaError(f"{args.lesion_attributes}: holds no lesions to derive rows from")
    if args.output is None:
        print(yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, width=200), end="")
        return 0
    vocab_ref = Path(vocabulary.source)
    doc = {"kind": "knowledge_table", "schema_version": 1, "name": args.name,
           "vocabulary": str(vocab_ref.resolve()), "diseases": rows}
    knowledge_table_from_dict(doc, vocabulary, args.output)  # never write a table the checker would reject
    with atomic_path(args.output) as tmp:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.output}")
    return 0
