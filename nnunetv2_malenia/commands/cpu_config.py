"""`malenia cpu-config`: add the CPU tier's small network configuration to nnU-Net's plans."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.planning.cpu_configuration import CPU_FEATURES

DESCRIPTION = """\
Add a configuration (default 3d_cpu) to a dataset's nnU-Net plans: it inherits from 3d_fullres,
reuses its preprocessed data (same data_identifier) and replaces the network with fewer, narrower
stages and a small batch, so that nnU-Net's own commands train and predict it on a CPU:

  nnUNetv2_train ID 3d_cpu FOLD -tr nnUNetTrainer_cpu
  nnUNetv2_train ID 3d_cpu FOLD -tr nnUNetTrainerMalenia_cpu
  nnUNetv2_predict -i IN -o OUT -d ID -c 3d_cpu -tr nnUNetTrainer_cpu -f 0

Run it after nnUNetv2_plan_and_preprocess -c 3d_fullres. Never run nnUNetv2_preprocess -c 3d_cpu:
the configuration shares 3d_fullres's data folder, which nnU-Net would delete and rewrite."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cpu-config", help="add the small 3d_cpu network configuration to nnU-Net's plans",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset-id", required=True, metavar="ID", help="nnU-Net dataset id or name")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: %(default)s)")
    parser.add_argument("--name", default="3d_cpu", help="name of the new configuration (default: %(default)s)")
    parser.add_argument("--parent", default="3d_fullres", help="configuration it inherits from (default: %(default)s)")
    parser.add_argument("--features", type=int, nargs="+", default=list(CPU_FEATURES), metavar="F",
                        help=f"width of each encoder stage (default: {' '.join(map(str, CPU_FEATURES))})")
    parser.add_argument("--batch-size", type=int, default=2, help="batch size (default: %(default)s)")
    parser.add_argument("--no-batch-dice", dest="batch_dice", action="store_false",
                        help="per-image Dice as 3d_fullres has it (default: Dice over the batch, which the CPU "
                             "tier was calibrated with)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from nnunetv2_malenia.planning.cpu_configuration import add_cpu_configuration

    if not os.environ.get("nnUNet_preprocessed"):
        raise MaleniaError("$nnUNet_preprocessed is not set; export it as for nnUNetv2_plan_and_preprocess")
    try:
        dataset = maybe_convert_to_dataset_name(args.dataset_id)
    except RuntimeError as exc:
        raise MaleniaError(f"dataset {args.dataset_id}: {exc}") from None
    plans_file = Path(os.environ["nnUNet_preprocessed"]) / dataset / f"{args.plans}.json"
    config = add_cpu_configuration(plans_file, args.name, args.parent, args.features, args.batch_size,
                                   args.batch_dice)
    arch = config["architecture"]["arch_kwargs"]
    print(f"added {args.name} to {plans_file}: inherits from {args.parent}, features "
          f"{'-'.join(map(str, arch['features_per_stage']))}, patch {'x'.join(map(str, config['patch_size']))}, "
          f"batch {config['batch_size']}, batch Dice {config['batch_dice']}, data {config['data_identifier']}")
    return 0
