"""`malenia predict`: segment new CT with a trained model and a (possibly new) knowledge table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.inference.open_set import OPEN_SET_THRESHOLD, resolve_unknown_threshold


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="zero-shot prediction: segment lesion types from knowledge-table rows",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Predict a folder of CT images (nnU-Net naming: CASE_0000.nii.gz) with a model trained by "
        "nnUNetTrainerMalenia, answering with the rows of a knowledge table: by default the table stored in the "
        "model (every row, including diseases kept out of training), or --table, whose rows may be diseases the "
        "model never saw. nnU-Net's predictor does the sliding window, mirroring, fold ensembling and "
        "resampling to the input geometry. OUT gets, per case, a label map and CASE.lesions.json (per lesion: "
        "disease, the score of every table row, the predicted value of each attribute with its similarity, "
        "volume in ml, centroid in world mm), and dataset.json with the output labels (organs keep their "
        "values, trained diseases keep their labels, new diseases follow). Cases already done are skipped "
        "unless --overwrite, so an interrupted run resumes.\n\n"
        "Every case is checked before anything is written: each file must be a readable 3D image, complete (a "
        ".nii.gz cut short by an interrupted copy is refused, not read as zeros), one per model channel and, for a "
        "CT model, in Hounsfield units. The first bad case stops the run with one line naming the file (exit "
        "status 2); with --skip-bad-inputs each bad case is reported on one line and left out, the others are "
        "predicted, and the exit status is 1 if any case was left out.",
        epilog="example:\n  malenia predict -i $nnUNet_raw/Dataset901_MaleniaSynth/imagesTs -o pred \\\n"
        "      -m $nnUNet_results/Dataset901_MaleniaSynth/nnUNetTrainerMalenia__nnUNetPlans__3d_fullres -f 0 --device cpu\n"
        "  malenia predict ... --describe \"cystic pancreas lesion=round, hypodense, homogeneous lesion with a thin "
        "cystic wall in the pancreatic body\"")
    parser.add_argument("-i", "--input", type=Path, required=True, help="folder of images (CASE_0000.nii.gz)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for label maps and dataset.json")
    parser.add_argument("-m", "--model", type=Path, required=True, help="model folder written by nnUNetv2_train")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: all present)")
    parser.add_argument("--table", default=None,
                        help="knowledge table (path or shipped name); default: the table stored in the model")
    parser.add_argument("--describe", action="append", default=[], metavar="NAME=TEXT",
                        help="a lesion described in plain English, e.g. \"cystic pancreas lesion=round, hypodense lesion "
                        "with a thin cystic wall in the pancreatic body\": parsed into a knowledge-table row (printed "
                        "before predicting; types the text does not speak of are left empty) that is added to the "
                        "table and gets its own output label NAME; repeatable (docs/free_text.md)")
    parser.add_argument("--describe-only", action="store_true",
                        help="the table holds only the --describe rows (their values read against the vocabulary of "
                        "--table, or of the model)")
    parser.add_argument("--tower", default=None,
                        help="text tower spec for table values the model never embedded and for --describe "
                        "(default: the model's)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--overwrite", action="store_true", help="predict cases whose output exists")
    parser.add_argument("--overlays", action="store_true",
                        help="also write CASE.png: the CT slice through each lesion, its contour and attribute readout")
    parser.add_argument("--unknown-threshold", type=float, default=None, metavar="T",
                        help="open set: a lesion whose best knowledge-table row match is below T is labelled "
                        "'unknown lesion' (the last label) instead of its closest row; 0 turns this off "
                        "(default: the threshold stored with the model by benchmarks/bench_open_set.py --store "
                        "in MODEL/open_set_threshold.json, else %g: off)" % OPEN_SET_THRESHOLD)
    parser.add_argument("--seen-row-penalty", type=float, default=None, metavar="G",
                        help="score the rows of the diseases the model was trained on G nats lower than the others "
                        "(calibrated stacking: a readout trained on seen lesions leans to their rows; larger G "
                        "names more lesions as unseen rows, 0 scores all rows alike; default: the model's own, "
                        "1 for the zero-shot recipe's trainers, else 0)")
    parser.add_argument("--num-parts", type=int, default=1, metavar="N",
                        help="split the cases into N parts, as nnUNetv2_predict -num_parts (default: 1)")
    parser.add_argument("--part-id", type=int, default=0, metavar="K",
                        help="which part this run predicts, 0..N-1 (run one per machine or GPU; default: 0)")
    parser.add_argument("--no-ct-check", action="store_true",
                        help="predict images that do not look like CT in HU (no voxel below -200) anyway")
    parser.add_argument("--skip-bad-inputs", action="store_true",
                        help="leave out cases with an unreadable, truncated or otherwise bad file (one line each), "
                        "predict the others, exit 1 at the end if any was left out (default: stop at the first)")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring (faster, slightly worse)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nnunetv2_malenia.inference.zero_shot_predictor import ZeroShotPredictor, check_part
    from nnunetv2_malenia.knowledge import load_knowledge_table
    from nnunetv2_malenia.knowledge.free_text import split_describe_option

    descriptions = [split_describe_option(option) for option in args.describe]
    if args.describe_only and not descriptions:
        raise MaleniaError("--describe-only needs at least one --describe \"NAME=TEXT\"")
    if not args.input.is_dir() or not any(args.input.glob("*_0000.*")):
        raise MaleniaError(f"{args.input}: no images named CASE_0000.<ext> (nnU-Net's naming) in this folder")
    check_part(args.num_parts, args.part_id)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    predictor = ZeroShotPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=not args.disable_tta,
                                  perform_everything_on_device=device.type == "cuda", device=device,
                                  verbose=False, verbose_preprocessing=False, allow_tqdm=True)
    folds = [f if f == "all" else int(f) for f in args.folds] if args.folds else None
    predictor.initialize_from_trained_model_folder(str(args.model), folds, args.checkpoint)
    table = load_knowledge_table(args.table) if args.table else predictor.model.table
    parsed = []
    if descriptions:
        from nnunetv2_malenia.inference.descriptions import describe_table

        table, parsed = describe_table(predictor.model, predictor.dataset_json["labels"], table, descriptions,
                                       args.tower, only=args.describe_only)
    threshold, source = resolve_unknown_threshold(args.unknown_threshold, args.model)
    if threshold > 0 and source != "--unknown-threshold":
        print(f"open set: lesions whose best row match is below {threshold:g} are 'unknown lesion' (threshold "
              f"stored with the model in {source}; --unknown-threshold 0 turns it off)")
    labels = predictor.install_table(table, args.tower, unknown_threshold=threshold,
                                     seen_row_penalty=args.seen_row_penalty)
    for description in parsed:
        print(f"description {description.name!r} -> label {labels[description.name]}: {description.text}")
        print("\n".join("  " + line for line in description.table_lines()))
    print(f"table {table.name}: {len(table.diseases)} diseases -> labels " +
          ", ".join(f"{name} {value}" for name, value in labels.items() if value > 0))
    result = predictor.predict_folder(args.input, args.output, overwrite=args.overwrite, overlays=args.overlays,
                                      num_parts=args.num_parts, part_id=args.part_id,
                                      ct_check=not args.no_ct_check, skip_bad_inputs=args.skip_bad_inputs)
    print(f"{len(result.predicted)} cases predicted; label maps, CASE.lesions.json and dataset.json (output labels) "
          f"in {args.output}")
    if result.skipped:
        print(f"malenia predict: {len(result.skipped)} case(s) left out because of bad input files (reasons above): "
              f"{', '.join(result.skipped)}; fix or replace them and run again (done cases are not redone)",
              file=sys.stderr)
        return 1
    return 0
