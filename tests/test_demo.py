"""`malenia demo --quick`: the README's main command, end to end on the CPU tier, then resumed."""

import os
from pathlib import Path

from conftest import run_malenia


def test_quick_demo_runs_every_step_and_resumes(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}  # the demo sets its own folders
    env.update(nnUNet_n_proc_DA="0", OMP_NUM_THREADS="2")  # no spawned augmentation workers in a test
    workdir = tmp_path / "demo"
    first = run_malenia("demo", "--quick", "--workdir", str(workdir), "-d", "991", env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    out = first.stdout
    assert "### Test set" in out
    assert "| **seen lesion classes** |" in out and "| **unseen lesion classes (zero-shot)** |" in out
    for disease in ("liver hemangioma", "lung metastasis", "kidney abscess", "splenic metastasis"):
        assert f"| {disease} |" in out  # every unseen disease of the CPU tier is scored from its table row
    predictions = workdir / "results" / "predictions" / "nnUNetTrainerMalenia_smoke" / "fold_0" / "raw"
    assert len(list(predictions.glob("*.nii.gz"))) == 10
    assert len(list(predictions.glob("*.lesions.json"))) == 10 and len(list(predictions.glob("*.png"))) == 10
    for name in ("benchmark.md", "benchmark.png", "benchmark.json"):
        assert (workdir / "results" / name).is_file()
    assert (workdir / "synth_preview.png").is_file()
    assert (workdir / "nnUNet_raw" / "Dataset991_MaleniaDemo" / "dataset.json").is_file()
    assert str(predictions) in out

    checkpoint = (workdir / "nnUNet_results" / "Dataset991_MaleniaDemo" /
                  "nnUNetTrainerMalenia_smoke__nnUNetPlans__3d_cpu" / "fold_0" / "checkpoint_final.pth")
    stamps = {p: p.stat().st_mtime_ns for p in [checkpoint, *predictions.glob("*.nii.gz")]}
    again = run_malenia("demo", "--quick", "--workdir", str(workdir), "-d", "991", env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing was redone
    assert "| **unseen lesion classes (zero-shot)** |" in again.stdout
