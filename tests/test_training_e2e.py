"""End to end with nnU-Net's own commands: synth -> plan/preprocess -> train -> predict, and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import run_malenia

TRAINER = "nnUNetTrainerMalenia_smoke"


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}  # the .pth hook must set it
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_compile="0", nnUNet_def_n_proc="2",
               nnUNet_n_proc_DA="2", OMP_NUM_THREADS="2")
    return env


def _train_env(env: dict) -> dict:
    """Augmentation in the main process: spawned workers would re-import torch for seconds each."""
    return {**env, "nnUNet_n_proc_DA": "0"}


def _run(command: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = _env(root)
    synth = run_malenia("synth", "-d", "903", "--name", "Tiny", "--cases", "6", "--test-cases", "2",
                        "--shape", "32", "32", "32", "--spacing", "3", "--seed", "1", "--workers", "1", env=env)
    assert synth.returncode == 0, synth.stderr
    _run(["nnUNetv2_plan_and_preprocess", "-d", "903", "-c", "3d_fullres", "--verify_dataset_integrity",
          "-np", "1", "-npfp", "1"], env)
    return root, env


def _model_folder(root: Path) -> Path:
    return root / "results" / "Dataset903_Tiny" / f"{TRAINER}__nnUNetPlans__3d_fullres"


def test_train_then_predict_with_stock_commands(dataset):
    root, env = dataset
    _run(["nnUNetv2_train", "903", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], _train_env(env))
    fold = _model_folder(root) / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "validation" / "summary.json").is_file()  # nnU-Net's final validation ran
    assert (fold / "progress.png").is_file() and (fold / "progress_malenia.png").is_file()
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "attribute accuracy (val patches): location" in log

    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    malenia = checkpoint["init_args"]["plans"]["malenia"]
    assert malenia["text_tower"]["name"] == "all-MiniLM-L6-v2" and malenia["text_tower"]["embed_dim"] == 384
    assert len(malenia["knowledge_table"]["diseases"]) == 13  # the whole table, unseen rows included
    assert checkpoint["network_weights"]["attributes.value_embeddings"].shape[1] == 384

    images = root / "raw" / "Dataset903_Tiny" / "imagesTs"
    out = root / "predicted"
    _run(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "903", "-c", "3d_fullres", "-tr", TRAINER,
          "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"], env)
    labels = {int(v) for v in __import__("json").loads((root / "raw" / "Dataset903_Tiny" / "dataset.json").read_text())["labels"].values()}
    inputs = sorted(images.glob("*_0000.nii.gz"))
    assert len(inputs) == 2
    for image_file in inputs:
        image = sitk.ReadImage(str(image_file))
        prediction = sitk.ReadImage(str(out / image_file.name.replace("_0000.nii.gz", ".nii.gz")))
        assert prediction.GetSize() == image.GetSize()
        assert np.allclose(prediction.GetSpacing(), image.GetSpacing())
        assert np.allclose(prediction.GetOrigin(), image.GetOrigin())
        assert np.allclose(prediction.GetDirection(), image.GetDirection())
        assert set(np.unique(sitk.GetArrayFromImage(prediction)).tolist()) <= labels


def test_killed_training_resumes_with_c(dataset):
    root, env = dataset
    fold = _model_folder(root) / "fold_1"
    command = ["nnUNetv2_train", "903", "3d_fullres", "1", "-tr", TRAINER, "-device", "cpu"]
    process = subprocess.Popen(command, env=_train_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 600
    while not (fold / "checkpoint_latest.pth").is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # let torch.save finish writing
    assert process.poll() is None, "training ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (fold / "checkpoint_final.pth").exists()
    assert torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)["current_epoch"] == 1

    resumed = _run(command + ["--c"], _train_env(env))
    assert "Epoch 1" in resumed.stdout and "Epoch 0\n" not in resumed.stdout
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 2  # the same 2 epochs in all, not 2 more
    assert len(final["logging"]["train_losses"]) == 2
    assert len(final["logging"]["train/contrastive"]) == 2  # Malenia's curves resume too


def test_nameonly_ablation_aligns_each_lesion_to_its_disease_name(dataset, monkeypatch):
    root, env = dataset
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env.get(key, os.environ.get(key, "")))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args("903", "3d_fullres", 2, "nnUNetTrainerMalenia_nameonly", device=torch.device("cpu"))
    assert trainer.vocabulary.type_keys == ("disease",)
    assert trainer.vocabulary.phrases == trainer.table.disease_names
    assert trainer.plans_manager.plans["malenia"]["config"]["num_attribute_types"] == 1
    lookup = trainer.attribute_lookup
    label = trainer.knowledge.lesion_labels[0]
    assert [trainer.vocabulary.phrases[i] for i in lookup.vector("any case", label).nonzero()[0]] == \
        [trainer.knowledge.disease_of_label[label]]
    trainer.on_train_start()
    try:
        out = trainer.train_step(next(trainer.dataloader_train))
    finally:
        trainer.on_train_end()
    assert np.isfinite(out["loss"]) and np.isfinite(out["contrastive"])
