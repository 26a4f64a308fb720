"""Input integrity: a file cut short is refused by name, not read as zeros; `malenia verify-dataset`.

Truncated files are real .nii.gz files with bytes cut off their end (what an interrupted copy leaves);
the NaN voxel is planted by writing a float image with SimpleITK.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_malenia
from nnunetv2_malenia.data_integrity import check_complete, incompleteness
from nnunetv2_malenia.errors import MaleniaError, TableError
from nnunetv2_malenia.evaluation import load_pair
from nnunetv2_malenia.inference.input_check import check_case
from nnunetv2_malenia.knowledge import load_lesion_attributes, load_vocabulary

EOF_MESSAGE = "Compressed file ended before the end-of-stream marker was reached"
DATASET = "Dataset902_Tiny"


def _ct(path: Path, shape=(32, 32, 32)) -> Path:
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 400, size=shape).astype(np.int16)  # noise: the gzip stream is long enough to cut
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=True)
    return path


def _cut(path: Path, keep: float = 0.5) -> Path:
    """Cut bytes off the end of `path`, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _truncation_message(path: Path) -> str:
    return (f"{path}: truncated or corrupt ({EOF_MESSAGE}); copy or export the file again "
            "(an interrupted copy or download leaves it incomplete)")


# --------------------------------------------------------------------------- the check itself
def test_truncated_gzip_is_named_although_simpleitk_reads_it(tmp_path):
    whole = _ct(tmp_path / "whole_0000.nii.gz")
    check_complete(whole)
    cut = _cut(Path(shutil.copy(whole, tmp_path / "cut_0000.nii.gz")))
    # the hole this closes: SimpleITK reads the cut file without an error, the missing half as zeros
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(cut))) == 0).mean() > 0.4
    with pytest.raises(MaleniaError) as e:
        check_complete(cut)
    assert str(e.value) == _truncation_message(cut)


def test_corrupt_and_short_files_are_named(tmp_path):
    whole = _ct(tmp_path / "a.nii.gz")
    flipped = bytearray(whole.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / "flipped.nii.gz").write_bytes(bytes(flipped))
    assert incompleteness(tmp_path / "flipped.nii.gz").startswith("corrupt compressed data (")
    raw = gzip.decompress(whole.read_bytes())
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(raw[:-100]))  # a complete stream of too few voxels
    assert incompleteness(tmp_path / "short.nii.gz") == \
        f"holds {len(raw) - 100} bytes of image data where its NIfTI header declares {len(raw)}"
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) // 2])  # uncompressed NIfTI: SimpleITK reads zeros too
    assert incompleteness(tmp_path / "cut.nii") == \
        f"holds {len(raw) // 2} bytes of image data where its NIfTI header declares {len(raw)}"
    (tmp_path / "whole.nii").write_bytes(raw)
    assert incompleteness(tmp_path / "whole.nii") is None
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), str(tmp_path / "other.mha"))
    assert incompleteness(tmp_path / "other.mha") is None  # formats other than .gz / NIfTI are not checked here


def test_predict_input_check_names_a_truncated_image_before_the_hu_test(tmp_path):
    cut = _cut(_ct(tmp_path / "case_0000.nii.gz"))
    with pytest.raises(MaleniaError) as e:
        check_case([cut], 1, expects_ct=True)
    assert str(e.value) == _truncation_message(cut)


def test_evaluation_refuses_a_truncated_ground_truth(tmp_path):
    labels = np.zeros((32, 32, 32), np.uint8)
    labels[8:24, 8:24, 8:24] = 1
    gt, pred = tmp_path / "gt.nii.gz", tmp_path / "pred.nii.gz"
    for path in (gt, pred):
        sitk.WriteImage(sitk.GetImageFromArray(labels), str(path), useCompression=True)
    load_pair(gt, pred)
    _cut(gt, 0.6)
    with pytest.raises(MaleniaError) as e:
        load_pair(gt, pred)
    assert str(e.value) == _truncation_message(gt)


def test_nan_and_inf_are_found_although_simpleitk_reads_them_as_zero_from_nifti(tmp_path):
    from nnunetv2_malenia.dataset_verification import DatasetReport, _check_image

    array = np.zeros((4, 5, 6), np.float32)
    array[1, 2, 3], array[3, 4, 5] = np.nan, np.inf
    for name in ("planted.nii.gz", "planted.mha"):
        path = tmp_path / name
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=True)
        report = DatasetReport(tmp_path)
        _check_image(path, report)
        assert report.findings == [f"{path}: 1 NaN and 1 infinite voxel(s), the first at voxel index (x, y, z) "
                                   "(3, 2, 1); nnU-Net reads them as 0 (NIfTI) or spreads them over the case when "
                                   "normalising: replace them with real values and save the image again"]
    # the reason the stored bytes are read: ITK's NIfTI reader silently makes them 0
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "planted.nii.gz")))[1, 2, 3] == 0


# --------------------------------------------------------------------------- verify-dataset
def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_compile="0", OMP_NUM_THREADS="1",
               MALENIA_TEXT_TOWER="tiny-random", MALENIA_CACHE=str(root / "cache"))
    return env


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A clean tiny synthetic dataset (4 training, 2 test cases of 32^3), to be copied before planting faults."""
    root = tmp_path_factory.mktemp("integrity")
    result = run_malenia("synth", "-d", "902", "--name", "Tiny", "--cases", "4", "--test-cases", "2",
                         "--shape", "32", "32", "32", "--workers", "1",
                         "--output-root", str(root / "raw"), env=_env(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture
def dataset(synthetic, tmp_path) -> tuple[Path, Path]:
    """(root with raw/, the raw dataset folder): a private copy of the clean dataset."""
    shutil.copytree(synthetic / "raw", tmp_path / "raw")
    return tmp_path, tmp_path / "raw" / DATASET


def _verify(root: Path):
    return run_malenia("verify-dataset", "-d", "902", env=_env(root))


def test_verify_dataset_passes_a_clean_synthetic_dataset(dataset):
    root, _ = dataset
    result = _verify(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [f"{DATASET}: 6 images and 6 label maps checked, no findings"]
    assert "verify" in result.stderr  # the progress bar


def test_verify_dataset_finds_each_planted_fault(dataset):
    root, folder = dataset
    # label value not in dataset.json
    label_file = folder / "labelsTr" / "Tiny_0000.nii.gz"
    labels = sitk.ReadImage(str(label_file))
    array = sitk.GetArrayFromImage(labels)
    array[0, 0, 0] = 40
    planted = sitk.GetImageFromArray(array)
    planted.CopyInformation(labels)
    sitk.WriteImage(planted, str(label_file), useCompression=True)
    # truncated label map
    truncated = _cut(folder / "labelsTr" / "Tiny_0001.nii.gz")
    # NaN voxel in a float image
    image_file = folder / "imagesTr" / "Tiny_0003_0000.nii.gz"
    image = sitk.ReadImage(str(image_file), sitk.sitkFloat32)
    voxels = sitk.GetArrayFromImage(image)
    voxels[5, 6, 7] = np.nan
    nan_image = sitk.GetImageFromArray(voxels)
    nan_image.CopyInformation(image)
    sitk.WriteImage(nan_image, str(image_file), useCompression=True)
    # lesion label without attributes, and an attribute value not in the vocabulary
    attributes_file = folder / "lesion_attributes.json"
    attributes = json.loads(attributes_file.read_text())
    lesion_labels = sorted(int(label) for label in attributes["cases"]["Tiny_0002"])
    dropped = lesion_labels[-1]
    dropped_disease = attributes["cases"]["Tiny_0002"].pop(str(dropped))["disease"]
    test_label = next(iter(attributes["cases"]["Tiny_test_0000"]))
    attributes["cases"]["Tiny_test_0000"][test_label]["attributes"]["location"] = "left ear"
    attributes_file.write_text(json.dumps(attributes))

    result = _verify(root)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    allowed = ", ".join(str(v) for v in range(18))
    vocabulary = load_vocabulary()
    locations = ", ".join(vocabulary.type("location").values)
    expected = {
        f"{label_file}: label value(s) 40 not in dataset.json \"labels\" (allowed: {allowed}); relabel the map or "
        "add the label",
        _truncation_message(truncated),
        f"{image_file}: 1 NaN and 0 infinite voxel(s), the first at voxel index (x, y, z) (7, 6, 5); nnU-Net reads "
        "them as 0 (NIfTI) or spreads them over the case when normalising: replace them with real values and save "
        "the image again",
        f"{attributes_file}: case 'Tiny_0002' label {dropped} ({dropped_disease}): no record, but Tiny_0002.nii.gz "
        "holds that label; add the lesion's attributes (without them the trainer uses the row's most likely values)",
        f"{attributes_file}: row 'Tiny_test_0000 label {test_label}': field 'location': unknown value 'left ear'; "
        f"allowed: {locations}",
    }
    assert set(lines[:-1]) == expected and len(lines) == 6
    assert lines[-1] == f"{DATASET}: 6 images and 6 label maps checked, 5 finding(s)"


def test_verify_dataset_names_a_lesion_label_that_is_no_table_row(dataset):
    root, folder = dataset
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["labels"] = {("kidney pebble" if name == "kidney stone" else name): value
                              for name, value in dataset_json["labels"].items()}
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    result = _verify(root)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(
        "dataset.json: lesion label 'kidney pebble' (14) matches no row of knowledge table ")


def test_verify_dataset_of_an_unknown_id_is_one_line(dataset):
    root, _ = dataset
    result = run_malenia("verify-dataset", "-d", "977", env=_env(root))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("malenia verify-dataset: error: dataset 977: ")


def test_lesion_attribute_problems_are_collected_when_asked(tmp_path, synthetic):
    source = synthetic / "raw" / DATASET / "lesion_attributes.json"
    attributes = json.loads(source.read_text())
    bad = [(case, label) for case, labels in list(attributes["cases"].items())[:2] for label in labels]
    for case, label in bad:
        attributes["cases"][case][label]["attributes"]["shape"] = "star-shaped"
    path = tmp_path / "lesion_attributes.json"
    path.write_text(json.dumps(attributes))
    vocabulary = load_vocabulary()
    with pytest.raises(TableError, match="unknown value 'star-shaped'"):
        load_lesion_attributes(path, vocabulary)
    problems: list[TableError] = []
    lesions = load_lesion_attributes(path, vocabulary, problems)
    assert [(p.row, p.field) for p in problems] == [(f"{case} label {label}", "shape") for case, label in bad]
    assert all(lesions.get(case, int(label)) is None for case, label in bad)
    assert sum(map(len, lesions.cases.values())) == sum(map(len, attributes["cases"].values())) - len(bad)


# --------------------------------------------------------------------------- malenia predict
BUILD_MODEL = '''
"""An untrained Malenia model folder: nnU-Net's plans for the dataset and the smoke trainer's network as
initialised (no training step: what is tested is which cases get predicted, not how well)."""
import json
import sys
from pathlib import Path

import torch
from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments
from nnunetv2.run.run_training import get_trainer_from_args

if __name__ == "__main__":
    out = Path(sys.argv[1])
    extract_fingerprints([902], num_processes=1)
    plan_experiments([902])
    trainer = get_trainer_from_args("902", "3d_fullres", 0, "nnUNetTrainerMalenia_smoke", device=torch.device("cpu"))
    trainer.network = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager,
                                                         len(trainer.dataset_json["channel_names"]),
                                                         trainer.label_manager.num_segmentation_heads, True)
    trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()  # installs vocabulary and table
    (out / "fold_0").mkdir(parents=True)
    (out / "plans.json").write_text(json.dumps(trainer.plans_manager.plans))
    (out / "dataset.json").write_text(json.dumps(trainer.dataset_json))
    trainer.save_checkpoint(str(out / "fold_0" / "checkpoint_final.pth"))
'''


@pytest.fixture(scope="module")
def model(synthetic) -> Path:
    import subprocess

    script = synthetic / "build_model.py"
    script.write_text(BUILD_MODEL)
    folder = synthetic / "model"
    env = {**_env(synthetic), "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1"}
    result = subprocess.run([sys.executable, str(script), str(folder)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.fixture
def test_images(synthetic, tmp_path) -> tuple[Path, Path]:
    """(folder of the two test images, the second of them cut short)."""
    images = tmp_path / "images"
    shutil.copytree(synthetic / "raw" / DATASET / "imagesTs", images)
    return images, _cut(images / "Tiny_test_0001_0000.nii.gz")


def _predict(synthetic: Path, images: Path, out: Path, *extra: str):
    return run_malenia("predict", "-i", str(images), "-o", str(out), "-m", str(synthetic / "model"), "-f", "0",
                       "--device", "cpu", "--disable-tta", *extra, env=_env(synthetic))


def test_predict_refuses_a_truncated_image_before_writing_anything(synthetic, model, test_images, tmp_path):
    images, cut = test_images
    result = _predict(synthetic, images, tmp_path / "out")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == f"malenia predict: error: {_truncation_message(cut)}"
    assert not (tmp_path / "out").exists()


def test_skip_bad_inputs_predicts_the_good_cases_and_reports_the_bad(synthetic, model, test_images, tmp_path):
    images, cut = test_images
    out = tmp_path / "out"
    result = _predict(synthetic, images, out, "--skip-bad-inputs")
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"skipping case Tiny_test_0001: {_truncation_message(cut)}" in result.stderr.splitlines()
    assert result.stderr.strip().splitlines()[-1] == (
        "malenia predict: 1 case(s) left out because of bad input files (reasons above): Tiny_test_0001; "
        "fix or replace them and run again (done cases are not redone)")
    assert sorted(p.name for p in out.iterdir()) == ["Tiny_test_0000.lesions.json", "Tiny_test_0000.nii.gz", "case_scores.csv",
                                                     "dataset.json"]
    assert "1 cases predicted" in result.stdout
