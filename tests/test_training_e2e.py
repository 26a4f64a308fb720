"""End to end with nnU-Net's own commands: synth -> plan/preprocess -> train -> predict, and resume."""

from __future__ import annotations

import csv
import json
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
    synth = run_malenia("synth", "-d", "903", "--name", "Tiny", "--cases", "8", "--test-cases", "2",
                        "--shape", "32", "32", "32", "--spacing", "3", "--seed", "1", "--workers", "1", env=env)
    assert synth.returncode == 0, synth.stderr
    _run(["nnUNetv2_plan_and_preprocess", "-d", "903", "-c", "3d_fullres", "--verify_dataset_integrity",
          "-np", "1", "-npfp", "1"], env)
    # Fold 0 validates on every case (one seen disease each), so every label is in its cross-validation:
    # nnU-Net's mean Dice over labels, which model selection maximises, is NaN when a label is absent.
    images = root / "raw" / "Dataset903_Tiny" / "imagesTr"
    cases = sorted(f.name.removesuffix("_0000.nii.gz") for f in images.iterdir())
    splits = [{"train": cases, "val": cases}, {"train": cases[2:], "val": cases[:2]}]
    (root / "preprocessed" / "Dataset903_Tiny" / "splits_final.json").write_text(json.dumps(splits))
    return root, env


def _model_folder(root: Path) -> Path:
    return root / "results" / "Dataset903_Tiny" / f"{TRAINER}__nnUNetPlans__3d_fullres"


@pytest.fixture(scope="module")
def trained(dataset):
    root, env = dataset
    _run(["nnUNetv2_train", "903", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], _train_env(env))
    return _model_folder(root)


def test_train_then_predict_with_stock_commands(dataset, trained):
    root, env = dataset
    fold = trained / "fold_0"
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
    labels = set(json.loads((root / "raw" / "Dataset903_Tiny" / "dataset.json").read_text())["labels"].values())
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


def test_find_best_configuration_and_ensemble_work_unchanged(dataset, trained, tmp_path):
    """Eval mode gives one logits tensor over the dataset's labels, so nnU-Net's model selection and
    its ensembling of saved probabilities need nothing from the plugin."""
    root, env = dataset
    _run(["nnUNetv2_find_best_configuration", "903", "-c", "3d_fullres", "-tr", TRAINER, "-f", "0", "-np", "1"], env)
    instructions = (root / "results" / "Dataset903_Tiny" / "inference_instructions.txt").read_text()
    assert TRAINER in instructions and "nnUNetv2_predict" in instructions

    images = root / "raw" / "Dataset903_Tiny" / "imagesTs"
    num_labels = len(json.loads((root / "raw" / "Dataset903_Tiny" / "dataset.json").read_text())["labels"])
    outputs = []
    for name, extra in (("mirrored", []), ("plain", ["--disable_tta"])):
        outputs.append(tmp_path / name)
        _run(["nnUNetv2_predict", "-i", str(images), "-o", str(outputs[-1]), "-d", "903", "-c", "3d_fullres",
              "-tr", TRAINER, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0", "--save_probabilities", *extra],
             env)
    ensembled = tmp_path / "ensembled"
    _run(["nnUNetv2_ensemble", "-i", *map(str, outputs), "-o", str(ensembled), "-np", "1"], env)
    cases = sorted(f.name.replace("_0000.nii.gz", "") for f in images.glob("*_0000.nii.gz"))
    for case in cases:
        probabilities = [np.load(out / f"{case}.npz")["probabilities"] for out in outputs]
        assert probabilities[0].shape[0] == num_labels
        assert np.allclose(probabilities[0].sum(0), 1.0, atol=1e-3)
        label_map = sitk.GetArrayFromImage(sitk.ReadImage(str(ensembled / f"{case}.nii.gz")))
        assert np.array_equal(label_map, np.argmax(probabilities[0] + probabilities[1], axis=0))


def test_cpu_configuration_trains_and_predicts_with_stock_commands(dataset, tmp_path):
    """`malenia cpu-config` adds 3d_cpu to nnU-Net's plans; stock train and predict use it unchanged,
    on the parent's preprocessed data, and the CPU recipe's trainer sets itself up on it."""
    root, env = dataset
    added = run_malenia("cpu-config", "-d", "903", "--features", "8", "16", "32", env=env)
    assert added.returncode == 0, added.stderr
    assert "added 3d_cpu" in added.stdout and "features 8-16-32" in added.stdout
    _run(["nnUNetv2_train", "903", "3d_cpu", "0", "-tr", TRAINER, "-device", "cpu"], _train_env(env))
    folder = root / "results" / "Dataset903_Tiny" / f"{TRAINER}__nnUNetPlans__3d_cpu"
    assert (folder / "fold_0" / "checkpoint_final.pth").is_file()
    plans = json.loads((folder / "plans.json").read_text())
    assert plans["configurations"]["3d_cpu"]["architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32]
    assert sorted(p.name for p in (root / "preprocessed" / "Dataset903_Tiny").iterdir() if p.is_dir()) == \
        ["gt_segmentations", "nnUNetPlans_3d_fullres"]                     # no second copy of the data

    out = tmp_path / "predicted_cpu"
    _run(["nnUNetv2_predict", "-i", str(root / "raw" / "Dataset903_Tiny" / "imagesTs"), "-o", str(out), "-d", "903",
          "-c", "3d_cpu", "-tr", TRAINER, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0"], env)
    assert len(list(out.glob("*.nii.gz"))) == 2

    probe = ("from nnunetv2.run.run_training import get_trainer_from_args as g; import torch;"
             "t = g('903', '3d_cpu', 0, 'nnUNetTrainer_cpu', device=torch.device('cpu')); t.initialize();"
             "print(type(t.optimizer).__name__, t.optimizer.param_groups[0]['lr'], t.inference_allowed_mirroring_axes,"
             " t.num_epochs * t.num_iterations_per_epoch)")
    result = _run([sys.executable, "-c", probe], env)
    from nnunetv2_malenia.training.cpu_recipe import CpuRecipe
    steps = CpuRecipe.cpu_schedule["num_epochs"] * CpuRecipe.cpu_schedule["num_iterations_per_epoch"]
    assert result.stdout.split()[-4:] == ["AdamW", str(CpuRecipe.cpu_lr), "None", str(steps)]


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


def test_anomalies_with_their_own_head_channel_train_and_validate_in_nnunets_loop(dataset, monkeypatch):
    """AnomalyConfig(label_in_head="own"): nnU-Net's head, loss and deep supervision take one more
    channel; the plans record it, so nnU-Net's predictor builds the same shape."""
    root, env = dataset
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    import nnunetv2.run.run_training as run_training

    from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia_smoke
    from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig

    class OwnChannel(nnUNetTrainerMalenia_smoke):
        anomalies = AnomalyConfig(probability=1.0, max_per_patch=1, describe=True, label_in_head="own")
        lesion_region_weight = 1.0

    monkeypatch.setattr(run_training, "recursive_find_trainer_class_by_name", lambda name: OwnChannel)
    trainer = run_training.get_trainer_from_args("903", "3d_fullres", 2, "OwnChannel", device=torch.device("cpu"))
    labels = trainer.label_manager.num_segmentation_heads
    assert trainer.anomaly_label == labels
    assert trainer.plans_manager.plans["malenia"]["config"]["anomaly_head_channel"] is True
    trainer.on_train_start()
    try:
        assert trainer.network.decoder.seg_layers[-1].out_channels == labels + 1
        out = trainer.train_step(next(trainer.dataloader_train))
        trainer.network.eval()
        val = trainer.validation_step(next(trainer.dataloader_val))
    finally:
        trainer.on_train_end()
    assert np.isfinite(out["loss"]) and np.isfinite(out["lesion_region"])
    assert val["tp_hard"].shape == (labels - 1,)          # scored on the dataset's labels, not the extra channel


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing())
            and np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection()))


def test_zero_shot_predict_answers_with_every_table_row_and_resumes(dataset, trained, tmp_path):
    root, env = dataset
    raw = root / "raw" / "Dataset903_Tiny"
    images = raw / "imagesTs"
    out = tmp_path / "zero_shot"
    args = ["predict", "-i", str(images), "-o", str(out), "-m", str(trained), "-f", "0", "--device", "cpu",
            "--disable-tta", "--overlays", "--unknown-threshold", "0"]
    first = run_malenia(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    # the model's own table holds the unseen rows too: labels as the benchmark's test label list
    test_info = json.loads((raw / "dataset_test.json").read_text())
    test_labels = test_info["labels"]
    diseases = [n for n in test_labels if n != "background" and n not in test_info["organ_labels"]]
    assert len(diseases) == 13
    assert json.loads((out / "dataset.json").read_text())["labels"] == test_labels
    outputs = sorted(out.glob("*.nii.gz"))
    assert len(outputs) == 2
    assert len(list(out.glob("*.png"))) == 2  # --overlays
    for output in outputs:
        image = sitk.ReadImage(str(images / output.name.replace(".nii.gz", "_0000.nii.gz")))
        prediction = sitk.ReadImage(str(output))
        assert _same_geometry(prediction, image)
        assert set(np.unique(sitk.GetArrayFromImage(prediction)).tolist()) <= set(test_labels.values())
        report = json.loads((out / output.name.replace(".nii.gz", ".lesions.json")).read_text())
        name_of = {value: name for name, value in test_labels.items()}
        for lesion in report["lesions"]:
            assert lesion["disease"] == name_of[lesion["label"]]
            assert len(lesion["row_scores"]) == 13 and len(lesion["attributes"]) == 8
            assert lesion["volume_ml"] > 0 and len(lesion["centroid_mm"]) == 3
        # a presence score for every table row, lesions found or not
        assert sorted(report["case_scores"]) == sorted(diseases)
        assert all(0.0 <= v <= 1.0 for v in report["case_scores"].values())
    with open(out / "case_scores.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["case", *json.loads((out / outputs[0].name.replace(".nii.gz", ".lesions.json")).read_text())["case_scores"]]
    assert sorted(r[0] for r in rows[1:]) == sorted(o.name[:-len(".nii.gz")] for o in outputs)

    outputs += sorted(out.glob("*.lesions.json"))
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    again = run_malenia(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps  # existing outputs were skipped
    forced = run_malenia(*args, "--overwrite", env=env)
    assert forced.returncode == 0
    assert any(p.stat().st_mtime_ns != stamps[p] for p in outputs)


def _table_with_new_value(tmp_path: Path, tables_dir: Path) -> Path:
    """The clinical table plus a disease whose Specific Features value is not in the vocabulary."""
    import yaml

    vocabulary = yaml.safe_load((tables_dir / "vocabulary.yaml").read_text())
    for attr_type in vocabulary["attribute_types"]:
        if attr_type["key"] == "specific_features":
            attr_type["values"].append({"phrase": "fat-containing areas"})
    (tmp_path / "vocabulary.yaml").write_text(yaml.safe_dump(vocabulary, sort_keys=False))
    table = yaml.safe_load((tables_dir / "clinical_knowledge_table.yaml").read_text())
    row = json.loads(json.dumps(next(r for r in table["diseases"] if r["name"] == "kidney cyst")))
    row.update(name="renal angiomyolipoma", source="test row")
    row["attributes"]["specific_features"] = {"fat-containing areas": 1.0}
    table["diseases"].append(row)
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


def test_table_swap_with_a_new_value_embeds_it_or_names_the_missing_tower(dataset, trained, tmp_path):
    from conftest import TABLES

    root, env = dataset
    table = _table_with_new_value(tmp_path, TABLES)
    images = root / "raw" / "Dataset903_Tiny" / "imagesTs"
    base = ["predict", "-i", str(images), "-m", str(trained), "-f", "0", "--device", "cpu", "--disable-tta",
            "--table", str(table)]

    missing = tmp_path / "no_such_weights.safetensors"
    refused = run_malenia(*base, "-o", str(tmp_path / "refused"), "--tower", f"ViT-B-16:{missing}", env=env)
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("malenia predict: error: the table has values the model never embedded "
                              "('fat-containing areas') and its text tower is not available")
    assert str(missing) in message
    assert not list((tmp_path / "refused").glob("*.nii.gz"))

    out = tmp_path / "swapped"
    swapped = run_malenia(*base, "-o", str(out), env=env)
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert "renal angiomyolipoma" in labels and "hepatic vessel tumor" in labels
    assert labels["kidney cyst"] == json.loads((root / "raw" / "Dataset903_Tiny" / "dataset.json").read_text())["labels"]["kidney cyst"]


def test_predict_with_a_free_text_description_gives_it_its_own_label(dataset, trained, tmp_path):
    root, env = dataset
    raw = root / "raw" / "Dataset903_Tiny"
    text = "round, hypodense, homogeneous lesion with a thin cystic wall in the pancreatic body"
    base = ["predict", "-i", str(raw / "imagesTs"), "-m", str(trained), "-f", "0", "--device", "cpu", "--disable-tta",
            "--unknown-threshold", "0"]
    out = tmp_path / "described"
    result = run_malenia(*base, "-o", str(out), "--describe", f"cystic pancreas lesion={text}", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # the parsed row is printed before predicting, then the description takes the next free label
    assert "description 'cystic pancreas lesion' -> label" in result.stdout
    assert "pancreatic body" in result.stdout and "thin cystic wall" in result.stdout
    test_labels = json.loads((raw / "dataset_test.json").read_text())["labels"]
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert labels == {**test_labels, "cystic pancreas lesion": max(test_labels.values()) + 1}
    reports = sorted(out.glob("*.lesions.json"))
    assert len(reports) == 2
    for report_file in reports:
        report = json.loads(report_file.read_text())
        assert "cystic pancreas lesion" in report["case_scores"] and len(report["case_scores"]) == 14
        for lesion in report["lesions"]:
            assert "cystic pancreas lesion" in lesion["row_scores"]

    # liver hemangioma is kept out of training (full tier): a row of the model's table, not a trained label
    clash = run_malenia(*base, "-o", str(tmp_path / "clash"), "--describe", f"liver hemangioma={text}", env=env)
    assert clash.returncode == 2
    assert clash.stderr.strip().splitlines()[-1] == (
        "malenia predict: error: --describe 'liver hemangioma': the name is already a row of the model's table "
        "'malenia-synthetic'; choose another NAME (it becomes the output label name)")
    assert not (tmp_path / "clash").exists()


def test_predict_rejects_a_folder_that_is_not_a_malenia_model(dataset, tmp_path):
    root, env = dataset
    images = root / "raw" / "Dataset903_Tiny" / "imagesTs"
    result = run_malenia("predict", "-i", str(images), "-o", str(tmp_path / "out"), "-m", str(tmp_path), "-f", "0",
                         "--device", "cpu", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"malenia predict: error: {tmp_path}: not an nnU-Net model folder (no plans.json/dataset.json)")
    assert not (tmp_path / "out").exists()


def test_open_set_threshold_adds_the_unknown_label_and_takes_lesions_from_the_rows(dataset, trained, tmp_path):
    root, env = dataset
    raw = root / "raw" / "Dataset903_Tiny"
    out = tmp_path / "open_set"
    result = run_malenia("predict", "-i", str(raw / "imagesTs"), "-o", str(out), "-m", str(trained), "-f", "0",
                         "--device", "cpu", "--disable-tta", "--unknown-threshold", "0.999999", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    test_labels = json.loads((raw / "dataset_test.json").read_text())["labels"]
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert labels == {**test_labels, "unknown lesion": max(test_labels.values()) + 1}
    organs = set(json.loads((raw / "dataset_test.json").read_text())["organ_labels"].values())
    diseases = sorted(set(test_labels.values()) - organs - {0})
    closed = tmp_path / "closed_set"
    result = run_malenia("predict", "-i", str(raw / "imagesTs"), "-o", str(closed), "-m", str(trained), "-f", "0",
                         "--device", "cpu", "--disable-tta", "--unknown-threshold", "0", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    reported = 0
    for report_file in sorted(out.glob("*.lesions.json")):
        lesions = json.loads(report_file.read_text())["lesions"]
        reported += len(lesions)
        for lesion in lesions:  # no row matches any lesion that well
            assert lesion["disease"] == "unknown lesion" and lesion["closest_disease"] in labels
        name = report_file.name.replace(".lesions.json", ".nii.gz")
        open_map = sitk.GetArrayFromImage(sitk.ReadImage(str(out / name)))
        closed_map = sitk.GetArrayFromImage(sitk.ReadImage(str(closed / name)))
        assert (np.isin(open_map, diseases) <= np.isin(closed_map, diseases)).all()  # lesions only leave their rows
        assert ((open_map == labels["unknown lesion"]).sum() > 0) == bool(lesions)
    assert reported > 0  # the untrained model does predict lesions: the check above was not vacuous

    bad = run_malenia("predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "bad"), "-m", str(trained),
                      "-f", "0", "--device", "cpu", "--unknown-threshold", "1.5", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "malenia predict: error: --unknown-threshold must be in [0, 1), got 1.5"
    assert not list((tmp_path / "bad").glob("*.nii.gz"))


def test_seen_row_penalty_option_names_lesions_with_unseen_rows_only_when_large(dataset, trained, tmp_path):
    root, env = dataset
    raw = root / "raw" / "Dataset903_Tiny"
    out = tmp_path / "penalised"
    result = run_malenia("predict", "-i", str(raw / "imagesTs"), "-o", str(out), "-m", str(trained), "-f", "0",
                         "--device", "cpu", "--disable-tta", "--unknown-threshold", "0", "--seen-row-penalty", "50",
                         env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    test_info = json.loads((raw / "dataset_test.json").read_text())
    trained_labels = json.loads((raw / "dataset.json").read_text())["labels"]
    seen = {name for name in trained_labels if name != "background" and name not in test_info["organ_labels"]}
    unseen = {n for n in test_info["labels"] if n != "background" and n not in test_info["organ_labels"]} - seen
    assert seen and unseen
    named = [lesion["disease"] for f in sorted(out.glob("*.lesions.json"))
             for lesion in json.loads(f.read_text())["lesions"]]
    assert named and set(named) <= unseen  # e^-50: no seen row can win
    for output in sorted(out.glob("*.nii.gz")):
        label_map = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
        assert not np.isin(label_map, [test_info["labels"][name] for name in seen]).any()

    bad = run_malenia("predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "bad"), "-m", str(trained),
                      "-f", "0", "--device", "cpu", "--seen-row-penalty", "-1", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == ("malenia predict: error: --seen-row-penalty must be >= 0 "
                                                   "(0: score seen and unseen rows alike), got -1.0")
    assert not list((tmp_path / "bad").glob("*.nii.gz"))


def test_benchmark_scores_cross_validation_and_test_set_fold_by_fold(dataset, trained, tmp_path):
    root, env = dataset
    out = tmp_path / "bench"
    result = run_malenia("benchmark", "-d", "903", "-tr", TRAINER, "--folds", "0", "--device", "cpu",
                         "--disable-tta", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("benchmark.md", "benchmark.csv", "benchmark.json", "benchmark.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "benchmark.json").read_text())
    test_info = json.loads((root / "raw" / "Dataset903_Tiny" / "dataset_test.json").read_text())
    classes = summary["sources"]["test"][TRAINER]["classes"]
    # every lesion class of the test label list is scored, seen and unseen apart; organs are not
    assert {c for c, s in classes.items() if s["group"] == "seen"} == set(test_info["seen_diseases"])
    assert {c for c, s in classes.items() if s["group"] == "unseen"} == set(test_info["unseen_diseases"])
    cv = summary["sources"]["cv"][TRAINER]["classes"]
    assert set(test_info["organ_labels"]) <= set(cv) and not set(test_info["unseen_diseases"]) & set(cv)
    table = (out / "benchmark.md").read_text()
    assert "### Test set" in table and "unseen lesion classes (zero-shot)" in table and "### Cross-validation" in table
    predictions = sorted((out / "predictions" / TRAINER / "fold_0" / "labels").glob("*.nii.gz"))
    assert len(predictions) == 2
    stamps = [p.stat().st_mtime_ns for p in (out / "predictions" / TRAINER / "fold_0" / "raw").glob("*.nii.gz")]
    again = run_malenia("benchmark", "-d", "903", "-tr", TRAINER, "--folds", "0", "--device", "cpu",
                        "--disable-tta", "-o", str(out), "--no-cv", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert stamps == [p.stat().st_mtime_ns for p in (out / "predictions" / TRAINER / "fold_0" / "raw").glob("*.nii.gz")]

    missing = run_malenia("benchmark", "-d", "903", "-tr", TRAINER, "--folds", "3", "-o", str(tmp_path / "m"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("malenia benchmark: error: ")
    assert "fold_3/checkpoint_final.pth: missing; train fold 3" in missing.stderr


def test_predict_parts_split_the_cases_between_runs(dataset, trained, tmp_path):
    root, env = dataset
    images = root / "raw" / "Dataset903_Tiny" / "imagesTs"
    out = tmp_path / "parts"
    base = ["predict", "-i", str(images), "-o", str(out), "-m", str(trained), "-f", "0", "--device", "cpu",
            "--disable-tta", "--num-parts", "2"]
    first = run_malenia(*base, "--part-id", "0", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [p.name for p in out.glob("*.lesions.json")] == ["Tiny_test_0000.lesions.json"]
    second = run_malenia(*base, "--part-id", "1", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["Tiny_test_0000.nii.gz", "Tiny_test_0001.nii.gz"]
    # the open set is off unless a threshold is given (it belongs to a model: docs/inference.md)
    assert "unknown lesion" not in json.loads((out / "dataset.json").read_text())["labels"]

    bad = run_malenia(*base, "--part-id", "2", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == \
        "malenia predict: error: --part-id must be in 0..1 for --num-parts 2, got 2"


def test_text_tower_is_chosen_by_environment_variable(dataset, monkeypatch):
    root, env = dataset
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env.get(key, os.environ.get(key, "")))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv("MALENIA_TEXT_TOWER", "tiny-random")
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args("903", "3d_fullres", 2, TRAINER, device=torch.device("cpu"))
    assert trainer.bank.embeddings.shape[1] == 32  # tiny-random's width, not MiniLM's 384
    malenia = trainer.plans_manager.plans["malenia"]
    assert malenia["text_tower_spec"] == "tiny-random" and malenia["config"]["text_dim"] == 32


def test_predict_keeps_an_unusual_geometry_and_refuses_a_non_ct_file(dataset, trained, tmp_path):
    root, env = dataset
    source = sitk.ReadImage(str(root / "raw" / "Dataset903_Tiny" / "imagesTs" / "Tiny_test_0000_0000.nii.gz"))
    odd = tmp_path / "odd"
    odd.mkdir()
    image = sitk.Image(source)
    image.SetSpacing((2.0, 3.5, 4.5))  # other spacing than training (3 mm) and a flipped, permuted direction
    image.SetDirection((0, -1, 0, 1, 0, 0, 0, 0, 1))
    image.SetOrigin((10.0, -20.0, 5.0))
    sitk.WriteImage(image, str(odd / "odd_0000.nii.gz"))
    result = run_malenia("predict", "-i", str(odd), "-o", str(tmp_path / "out"), "-m", str(trained), "-f", "0",
                         "--device", "cpu", "--disable-tta", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _same_geometry(sitk.ReadImage(str(tmp_path / "out" / "odd.nii.gz")), image)

    mr = sitk.GetImageFromArray(np.abs(sitk.GetArrayFromImage(source)).astype(np.int16))  # no voxel below 0
    mr.CopyInformation(source)
    sitk.WriteImage(mr, str(odd / "zmr_0000.nii.gz"))
    refused = run_malenia("predict", "-i", str(odd), "-o", str(tmp_path / "refused"), "-m", str(trained), "-f", "0",
                          "--device", "cpu", "--disable-tta", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"malenia predict: error: {odd / 'zmr_0000.nii.gz'}: does not look like CT in Hounsfield units")
    assert not (tmp_path / "refused").exists()  # checked before anything was written
