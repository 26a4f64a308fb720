"""The CPU tier of the synthetic benchmark (`malenia synth --preset cpu`) and the preset mechanism."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunetv2_malenia.cli import main
from nnunetv2_malenia.synthetic.benchmark import (
    MIN_DIFFERING_TYPES, differing_types, load_benchmark, new_unseen_values, split_problems,
)
from nnunetv2_malenia.synthetic.presets import available_presets, load_preset

CPU = load_preset("cpu")
# sha256 over the voxel arrays of a small full-preset dataset, from the generator at 544862a (before presets)
FULL_DIGEST = "2e12bdcb3a033c42c8d31709c09d3662387bc161e4f47b19310d5eabbd8bca7a"


def synth(root: Path, *args: str, dataset_id: str = "951", name: str = "Cpu") -> int:
    return main(["synth", "-d", dataset_id, "--name", name, "--output-root", str(root), "-q", *args])


@pytest.fixture(scope="module")
def cpu_tier(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw_cpu")
    assert synth(root, "--preset", "cpu", "--cases", "8", "--test-cases", "6", "--seed", "3", "--workers", "1") == 0
    return root / "Dataset951_Cpu"


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_presets_ship_as_data():
    assert {"full", "cpu"} <= set(available_presets())
    assert CPU.shape_xyz == (48, 48, 48) and CPU.radius_reference_axis is None and CPU.min_lesion_voxels >= 150


def test_cpu_tier_is_a_valid_nnunet_dataset_of_its_own_table(cpu_tier: Path):
    ds = json.loads((cpu_tier / "dataset.json").read_text())
    config = json.loads((cpu_tier / "synthetic_config.json").read_text())
    assert config["preset"]["name"] == "cpu" and config["shape_xyz"] == [48, 48, 48]
    bench = load_benchmark(preset="cpu")
    assert set(ds["labels"]) - {"background"} == set(bench.train_labels()) - {"background"}
    assert "malenia-synthetic-cpu" in (cpu_tier / "knowledge_table.yaml").read_text()
    image = sitk.ReadImage(str(next((cpu_tier / "imagesTr").glob("*.nii.gz"))))
    assert image.GetSize() == (48, 48, 48)

    exe = shutil.which("nnUNetv2_extract_fingerprint")
    if exe is None:
        pytest.skip("nnU-Net v2 command line tools are not installed")
    env = {**os.environ, "nnUNet_raw": str(cpu_tier.parent), "nnUNet_preprocessed": str(cpu_tier.parent / "pre"),
           "nnUNet_results": str(cpu_tier.parent / "res"), "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([exe, "-d", "951", "--verify_dataset_integrity", "-np", "1"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_every_lesion_is_at_least_the_presets_minimum_size(cpu_tier: Path):
    records = json.loads((cpu_tier / "lesion_attributes.json").read_text())["cases"]
    sizes = []
    for case, labels in records.items():
        split = "Ts" if "_test_" in case else "Tr"
        label_map = _read(cpu_tier / f"labels{split}" / f"{case}.nii.gz")
        for label in labels:
            components, n = ndimage.label(label_map == int(label))
            assert n >= 1, (case, label)
            sizes += np.bincount(components.ravel())[1:].tolist()
    assert min(sizes) >= CPU.min_lesion_voxels
    assert np.median(sizes) >= 200     # "several hundred voxels": measured median ~500


def test_cases_hold_several_diseases(cpu_tier: Path):
    records = json.loads((cpu_tier / "lesion_attributes.json").read_text())["cases"]
    per_case = [len(labels) for labels in records.values()]
    assert np.mean(per_case) >= 1.8 and max(per_case) >= 3


def test_cpu_split_keeps_the_zero_shot_property():
    bench = load_benchmark(preset="cpu")
    assert len(bench.seen) >= 6 and len(bench.unseen) >= 4
    assert split_problems(bench) == []
    for u in bench.unseen:
        for s in bench.seen:
            assert len(differing_types(bench.table.row(u), bench.table.row(s))) >= MIN_DIFFERING_TYPES
    assert new_unseen_values(bench) == set()   # on this tier every unseen value occurs in a seen row


def test_cpu_table_uses_one_location_per_organ_side():
    bench = load_benchmark(preset="cpu")
    locations = {v for d in bench.table.disease_names for v in bench.table.row(d).attributes["location"]}
    assert locations == {"right hepatic lobe", "left hepatic lobe", "left kidney", "right kidney", "spleen",
                         "left lower lung lobe", "right lower lung lobe"}


def test_same_seed_same_bytes_on_the_cpu_tier(cpu_tier: Path, tmp_path: Path):
    assert synth(tmp_path, "--preset", "cpu", "--cases", "8", "--test-cases", "6", "--seed", "3", "--workers", "2") == 0
    a = {p.relative_to(cpu_tier): p.read_bytes() for p in sorted(cpu_tier.rglob("*")) if p.is_file()}
    folder = tmp_path / "Dataset951_Cpu"
    b = {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert a == b


def test_full_preset_draws_the_same_phantoms_as_before_presets(tmp_path: Path):
    """Presets moved the generator's constants into data; the full tier must not change a voxel.
    The digest was taken from the generator before presets existed (seed 5, 32^3, 3 mm)."""
    assert synth(tmp_path, "--cases", "2", "--test-cases", "1", "--shape", "32", "32", "32", "--spacing", "3",
                 "--seed", "5", "--workers", "1") == 0
    folder = tmp_path / "Dataset951_Cpu"
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.nii.gz")):
        digest.update(_read(path).tobytes())
    assert digest.hexdigest() == FULL_DIGEST


def test_unknown_preset_is_a_one_line_error(tmp_path: Path, capsys):
    assert synth(tmp_path, "--preset", "gpu-huge", "--cases", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown synthetic preset 'gpu-huge'" in err[0] and "cpu" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_full_preset_needs_a_case_count(tmp_path: Path, capsys):
    assert synth(tmp_path) == 2
    assert "--cases is required with the 'full' preset" in capsys.readouterr().err


def test_preview_shows_seen_and_unseen_diseases(cpu_tier: Path, tmp_path: Path):
    from nnunetv2_malenia.synthetic.preview import _examples
    diseases = {e["record"]["disease"] for e in _examples(cpu_tier, 16)}
    assert diseases & set(CPU.unseen) and diseases & (set(load_benchmark(preset="cpu").seen))
