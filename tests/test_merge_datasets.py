"""`malenia merge-datasets`: labels united by name and renumbered, geometry kept, case ids unique,
clear errors for incompatible datasets, nothing left by an interrupted merge; evaluation of a merged
dataset; and a merged dataset trains with the smoke trainer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_malenia
from nnunetv2_malenia.datasets import merge as merge_module
from nnunetv2_malenia.datasets.annotated_labels import load_annotated_labels
from nnunetv2_malenia.datasets.merge import merge_datasets
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.evaluation.evaluate_folder import NOT_ANNOTATED, evaluate_folders

SHAPE_ZYX = (4, 5, 6)
LIVER_GEOMETRY = dict(spacing=(0.8, 0.8, 2.5), origin=(-10.0, 20.0, 5.0), direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
KIDNEY_GEOMETRY = dict(spacing=(1.5, 1.5, 1.0), origin=(3.0, -4.0, 7.5), direction=(1, 0, 0, 0, -1, 0, 0, 0, 1))


def _write(array: np.ndarray, path: Path, geometry: dict) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    sitk.WriteImage(image, str(path))


def make_dataset(raw: Path, dataset_id: int, name: str, labels: dict, cases: dict[str, list[int]], geometry: dict,
                 channel_names: dict | None = None, file_ending: str = ".nii.gz",
                 attributes: dict | None = None) -> Path:
    """A raw dataset whose case CASE holds one blob of each listed label value (one CT channel)."""
    folder = raw / f"Dataset{dataset_id:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for k, (case, values) in enumerate(cases.items()):
        seg = np.zeros(SHAPE_ZYX, dtype=np.uint8)
        for i, value in enumerate(values):
            seg[i % SHAPE_ZYX[0], i:i + 2, 1:4] = value
        image = np.random.default_rng(k).normal(0, 100, SHAPE_ZYX).astype(np.float32)
        _write(image, folder / "imagesTr" / f"{case}_0000{file_ending}", geometry)
        _write(seg, folder / "labelsTr" / f"{case}{file_ending}", geometry)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": channel_names or {"0": "CT"}, "labels": labels, "numTraining": len(cases),
        "file_ending": file_ending}))
    if attributes is not None:
        (folder / "lesion_attributes.json").write_text(json.dumps(
            {"schema_version": 1, "vocabulary": "malenia-ct", "cases": attributes}))
    return folder


def _record(disease: str) -> dict:
    return {"disease": disease, "attributes": {"shape": "round-like"}}


@pytest.fixture
def raw(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    for variable in ("nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("nnUNet_raw", str(root))
    return root


def liver(raw: Path, **kwargs) -> Path:
    cases = kwargs.pop("cases", {"liver_0": [1, 2], "liver_1": [1]})
    return make_dataset(raw, 11, "Liver", {"background": 0, "liver": 1, "liver_tumor": 2}, cases, LIVER_GEOMETRY,
                        **kwargs)


def kidney(raw: Path, **kwargs) -> Path:
    cases = kwargs.pop("cases", {"case_00000": [1, 2, 3], "case_00001": [3]})
    return make_dataset(raw, 12, "Kidney", {"background": 0, "kidney": 1, "Liver Tumor": 2, "kidney tumor": 3},
                        cases, KIDNEY_GEOMETRY, **kwargs)


def _read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (np.allclose(a.GetSpacing(), b.GetSpacing()) and np.allclose(a.GetOrigin(), b.GetOrigin())
            and np.allclose(a.GetDirection(), b.GetDirection()) and a.GetSize() == b.GetSize())


def test_merge_renumbers_labels_by_name_and_keeps_geometry(raw):
    liver_folder = liver(raw, attributes={"liver_0": {"2": _record("liver tumor")},
                                          "liver_99": {"2": _record("liver tumor")}})  # a test case: not merged
    kidney_folder = kidney(raw, attributes={"case_00000": {"2": _record("liver tumor"), "3": _record("kidney tumor")}})
    result = run_malenia("merge-datasets", "-d", "11", "Dataset012_Kidney", "-o", "13", "--name", "Merged",
                         env={**os.environ})
    assert result.returncode == 0, result.stderr
    target = raw / "Dataset013_Merged"
    assert f"wrote {target}" in result.stdout
    assert "Dataset012_Kidney: 2 cases, labels 1->3, 2->2, 3->4" in result.stderr

    dataset = json.loads((target / "dataset.json").read_text())
    # "Liver Tumor" is "liver_tumor" (case and "_" ignored); the first spelling stays
    assert dataset["labels"] == {"background": 0, "liver": 1, "liver_tumor": 2, "kidney": 3, "kidney tumor": 4}
    assert dataset["numTraining"] == 4 and dataset["channel_names"] == {"0": "CT"}
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset011_Liver", "Dataset012_Kidney", "Dataset013_Merged"]

    for folder, case, lut in ((liver_folder, "liver_0", {0: 0, 1: 1, 2: 2}),
                              (kidney_folder, "case_00000", {0: 0, 1: 3, 2: 2, 3: 4})):
        source, source_image = _read(folder / "labelsTr" / f"{case}.nii.gz")
        merged, merged_image = _read(target / "labelsTr" / f"{case}.nii.gz")
        assert np.array_equal(merged, np.vectorize(lut.get)(source))
        assert _same_geometry(merged_image, source_image)
        assert (target / "imagesTr" / f"{case}_0000.nii.gz").read_bytes() == \
            (folder / "imagesTr" / f"{case}_0000.nii.gz").read_bytes()

    annotated = load_annotated_labels(target / "annotated_labels.json", labels=range(1, 5))
    assert annotated.cases == {"liver_0": {1, 2}, "liver_1": {1, 2}, "case_00000": {2, 3, 4}, "case_00001": {2, 3, 4}}
    assert annotated.sources["Dataset012_Kidney"] == {"labels": [2, 3, 4], "num_cases": 2}
    attributes = json.loads((target / "lesion_attributes.json").read_text())
    assert attributes["cases"] == {"liver_0": {"2": _record("liver tumor")},
                                   "case_00000": {"2": _record("liver tumor"), "4": _record("kidney tumor")}}
    assert attributes["vocabulary"] == "malenia-ct"


def test_shared_case_ids_get_their_dataset_name_as_prefix(raw):
    liver(raw, cases={"case_00000": [1, 2], "liver_1": [1]}, attributes={"case_00000": {"2": _record("liver tumor")}})
    kidney(raw, attributes={"case_00000": {"3": _record("kidney tumor")}})
    target = merge_datasets(["11", "12"], 13, "Merged", progress=False)
    cases = sorted(p.name for p in (target / "labelsTr").iterdir())
    assert cases == ["Kidney_case_00000.nii.gz", "Liver_case_00000.nii.gz", "case_00001.nii.gz", "liver_1.nii.gz"]
    assert sorted(p.name for p in (target / "imagesTr").iterdir()) == [c.replace(".nii", "_0000.nii") for c in cases]
    annotated = json.loads((target / "annotated_labels.json").read_text())["cases"]
    assert annotated["Liver_case_00000"] == [1, 2] and annotated["Kidney_case_00000"] == [2, 3, 4]
    attributes = json.loads((target / "lesion_attributes.json").read_text())["cases"]
    assert attributes == {"Liver_case_00000": {"2": _record("liver tumor")},
                          "Kidney_case_00000": {"4": _record("kidney tumor")}}
    merged, _ = _read(target / "labelsTr" / "Kidney_case_00000.nii.gz")
    assert set(np.unique(merged).tolist()) == {0, 2, 3, 4}


def test_differing_channel_names_are_a_one_line_error_naming_the_dataset(raw):
    liver(raw)
    kidney(raw, channel_names={"0": "MRI"})
    result = run_malenia("merge-datasets", "-d", "11", "12", "-o", "13", "--name", "Merged", env={**os.environ})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "malenia merge-datasets: error: Dataset012_Kidney: channel_names {'0': 'MRI'} differ from Dataset011_Liver's "
        "{'0': 'CT'}; merged datasets need the same input channels in the same order (edit "
        "Dataset012_Kidney/dataset.json or leave it out)")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset011_Liver", "Dataset012_Kidney"]


def test_differing_file_endings_are_an_error_naming_the_dataset(raw):
    liver(raw)
    kidney(raw, file_ending=".nrrd")
    with pytest.raises(MaleniaError) as error:
        merge_datasets(["11", "12"], 13, "Merged", progress=False)
    assert str(error.value) == ("Dataset012_Kidney: file_ending '.nrrd' differs from Dataset011_Liver's '.nii.gz'; "
                                "convert Dataset012_Kidney's images and labels to '.nii.gz' first")


@pytest.mark.parametrize("change, message", [
    (lambda raw: (raw / "Dataset012_Kidney" / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": [1, 2]}, "file_ending": ".nii.gz"})),
     "Dataset012_Kidney/dataset.json: label 'kidney' has value [1, 2]; merging needs plain integer labels, not "
     "regions (see docs/real_data.md, section 2)"),
    (lambda raw: (raw / "Dataset013_Other").mkdir(),
     "dataset id 13 is already used by {raw}/Dataset013_Other; nnU-Net needs unique ids: choose another -o or "
     "remove that folder"),
    (lambda raw: _write(np.full(SHAPE_ZYX, 7, np.uint8), raw / "Dataset012_Kidney/labelsTr/case_00001.nii.gz",
                        KIDNEY_GEOMETRY),
     "{raw}/Dataset012_Kidney/labelsTr/case_00001.nii.gz: holds label value 7, which Dataset012_Kidney/dataset.json "
     "'labels' does not name; fix the label map or add the label"),
])
def test_bad_input_is_named(raw, change, message):
    liver(raw)
    kidney(raw)
    change(raw)
    with pytest.raises(MaleniaError) as error:
        merge_datasets(["11", "12"], 13, "Merged", progress=False)
    assert str(error.value) == message.format(raw=raw)
    assert not (raw / "Dataset013_Merged").exists() and not list(raw.glob(".Dataset013*"))


def test_interrupted_merge_leaves_no_dataset_folder(raw, monkeypatch):
    liver(raw)
    kidney(raw)
    written = []

    def fail_on_third(*args, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(args[2])
        return original(*args, **kwargs)

    original = merge_module.renumber_label_map
    monkeypatch.setattr(merge_module, "renumber_label_map", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        merge_datasets(["11", "12"], 13, "Merged", progress=False)
    assert len(written) == 2 and written[0].parent.parent.name.startswith(".Dataset013_Merged.partial")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset011_Liver", "Dataset012_Kidney"]


def test_evaluation_leaves_out_labels_a_case_source_does_not_annotate(raw, tmp_path):
    """A kidney predicted in a liver case is no false positive: the liver dataset does not label kidneys."""
    liver(raw)
    kidney(raw)
    target = merge_datasets(["11", "12"], 13, "Merged", progress=False)
    pred = tmp_path / "pred"
    pred.mkdir()
    for case in ("liver_0", "case_00000"):
        array, image = _read(target / "labelsTr" / f"{case}.nii.gz")
        array[array == 0] = 3  # every background voxel predicted as kidney
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        sitk.WriteImage(out, str(pred / f"{case}.nii.gz"))
    gt = tmp_path / "gt"
    gt.mkdir()
    for case in ("liver_0", "case_00000"):
        (gt / f"{case}.nii.gz").write_bytes((target / "labelsTr" / f"{case}.nii.gz").read_bytes())
    result = evaluate_folders(pred, gt, labels=["3"], label_file=target / "dataset.json", progress=False)
    rows = {r["case"]: r for r in result.rows}
    assert rows["liver_0"]["empty"] == NOT_ANNOTATED and np.isnan(rows["liver_0"]["dsc"])
    assert 0 < rows["case_00000"]["dsc"] < 1  # the kidney case is scored, false positives and all
    kidney_stats = result.summary["labels"]["kidney"]
    assert kidney_stats["dsc"]["n"] == 1 and kidney_stats["counts"][NOT_ANNOTATED] == 1
    assert kidney_stats["dsc"]["mean"] == pytest.approx(rows["case_00000"]["dsc"])
    assert result.summary["annotated_labels"] == str(target / "annotated_labels.json")


# ----------------------------------------------------------------------------- training (slow)
TRAINER = "nnUNetTrainerMalenia_smoke"
FULL_UNSEEN = ["pancreas cyst", "liver hemangioma", "gallbladder cancer", "splenic metastasis", "ground-glass nodule"]


def _run(command: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_merged_synthetic_datasets_train_with_partial_labels(tmp_path):
    """Two synthetic datasets, the second without the liver lesions: merged, planned, trained."""
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    env.update(nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "preprocessed"),
               nnUNet_results=str(tmp_path / "results"), nnUNet_compile="0", nnUNet_def_n_proc="2",
               nnUNet_n_proc_DA="2", OMP_NUM_THREADS="2")
    common = ["--cases", "4", "--test-cases", "1", "--shape", "32", "32", "32", "--spacing", "3", "--workers", "1"]
    for dataset_id, name, unseen, seed in ((931, "SynA", FULL_UNSEEN, "1"),
                                           (932, "SynB", FULL_UNSEEN + ["liver cyst", "liver tumor"], "2")):
        args = ["synth", "-d", str(dataset_id), "--name", name, "--seed", seed, *common, "-q"]
        for disease in unseen:
            args += ["--unseen", disease]
        result = run_malenia(*args, env=env)
        assert result.returncode == 0, result.stderr
    merged = run_malenia("merge-datasets", "-d", "931", "932", "-o", "933", "--name", "SynMerged", "-q", env=env)
    assert merged.returncode == 0, merged.stderr
    folder = tmp_path / "raw" / "Dataset933_SynMerged"
    dataset = json.loads((folder / "dataset.json").read_text())
    labels = dataset["labels"]
    annotated = json.loads((folder / "annotated_labels.json").read_text())["sources"]
    assert labels["liver tumor"] in annotated["Dataset931_SynA"]["labels"]
    assert labels["liver tumor"] not in annotated["Dataset932_SynB"]["labels"]
    assert dataset["malenia"]["knowledge_table"] == "knowledge_table.yaml" and (folder / "vocabulary.yaml").is_file()

    _run(["nnUNetv2_plan_and_preprocess", "-d", "933", "-c", "3d_fullres", "--verify_dataset_integrity",
          "-np", "1", "-npfp", "1"], env)
    cases = sorted(p.name.removesuffix(".nii.gz") for p in (folder / "labelsTr").iterdir())
    splits = [{"train": cases, "val": cases}]  # every label in validation: nnU-Net's mean Dice stays defined
    (tmp_path / "preprocessed" / "Dataset933_SynMerged" / "splits_final.json").write_text(json.dumps(splits))
    # augmentation in the main process: spawned workers would re-import torch for seconds each
    _run(["nnUNetv2_train", "933", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], {**env, "nnUNet_n_proc_DA": "0"})
    fold = tmp_path / "results" / "Dataset933_SynMerged" / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "partial labels (annotated_labels.json): marginal Dice+CE, 4 of 8 cases leave labels unannotated" in log
    assert "non-finite loss" not in log
