"""Shared by the scripts that read a Malenia model against the synthetic test set's ground truth.

`model_arguments` adds -m/-r/-o/-f; `load_model` gives nnU-Net's predictor (ZeroShotPredictor) with
a chosen table installed and its fold's weights loaded; `test_cases` yields, per test case, the
preprocessed image and label map in the network's working space, as nnU-Net's predictor sees them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


def model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", type=Path, required=True, help="model folder (nnUNetTrainerMalenia...)")
    parser.add_argument("-r", "--raw", type=Path, required=True, help="raw synthetic dataset with imagesTs/labelsTs")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("-f", "--fold", type=int, default=0)


def load_model(model: Path, fold: int, table_of: Callable | None = None):
    """(predictor, network in eval mode); `table_of(full_table, model_knowledge)` picks the table
    to install (default: the model's own, every row)."""
    import torch

    from nnunetv2_malenia.inference.zero_shot_predictor import ZeroShotPredictor

    from bench_training import with_bench_trainers
    with_bench_trainers(os.environ)   # a model of a benchmark trainer names its class in benchmarks/trainers

    predictor = ZeroShotPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                  perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                  verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), [fold], "checkpoint_final.pth")
    table = predictor.model.table if table_of is None else table_of(predictor.model.table, predictor.model)
    predictor.install_table(table, unknown_threshold=0.0)
    network = predictor.network
    network.load_state_dict(predictor.list_of_parameters[0])
    network.eval()
    return predictor, network


def test_split(raw: Path) -> tuple[dict, dict[int, str], dict]:
    """(dataset_test.json, lesion label -> disease, lesion_attributes.json's cases)."""
    test = json.loads((raw / "dataset_test.json").read_text())
    disease_of_label = {v: k for k, v in {**test["seen_diseases"], **test["unseen_diseases"]}.items()}
    truth = json.loads((raw / "lesion_attributes.json").read_text())["cases"]
    return test, disease_of_label, truth


def test_cases(predictor, raw: Path, split: str = "Ts", keys: set[str] | None = None
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray, dict]]:
    """(case, data (C, X, Y, Z), label map (X, Y, Z) int16, properties) per case of images{split}
    (default the test set; "Tr" with `keys` for a fold's validation cases), with a progress bar."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder, get_identifiers_from_splitted_dataset_folder
    from tqdm import tqdm

    folder = raw / f"images{split}"
    cases = [c for c in get_identifiers_from_splitted_dataset_folder(str(folder), ".nii.gz") if keys is None or c in keys]
    files = create_lists_from_splitted_dataset_folder(str(folder), ".nii.gz", cases, num_processes=1)
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    for case, case_files in tqdm(list(zip(cases, files)), desc=f"images{split}"):
        data, seg, properties = preprocessor.run_case(case_files, str(raw / f"labels{split}" / f"{case}.nii.gz"),
                                                      predictor.plans_manager, predictor.configuration_manager,
                                                      predictor.dataset_json)
        yield case, data, seg[0].astype(np.int16), properties
