"""`malenia evaluate`: DSC, NSD cross-checks against DeepMind's surface-distance, conventions, folders, outputs."""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.evaluation import dsc, evaluate_case, evaluate_folders, nsd, resolve_labels, write_outputs
from nnunetv2_malenia.evaluation.metrics import BOTH_EMPTY, GT_EMPTY, PRED_EMPTY

SPACINGS = [(1.0, 1.0, 1.0), (1.0, 1.0, 3.0), (3.0, 0.8, 1.2)]


def sphere(shape, center_mm, radius_mm, spacing):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, center_mm)) <= radius_mm ** 2


def box(shape, lo, hi):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def sphere_pair(spacing):
    shape = tuple(int(round(40 / s)) for s in spacing)  # 40 mm field of view on every axis
    gt = sphere(shape, (20.0, 19.0, 21.0), 11.0, spacing)
    pred = sphere(shape, (22.5, 20.0, 18.0), 9.5, spacing)
    return gt, pred


# --------------------------------------------------------------------------- DSC


def test_dsc_hand_checked():
    gt = box((6, 6, 6), (0, 0, 0), (2, 2, 2))            # 8 voxels
    pred = box((6, 6, 6), (1, 0, 0), (3, 2, 2))          # 8 voxels, 4 shared
    assert dsc(gt, pred) == pytest.approx(2 * 4 / 16)
    assert dsc(gt, gt) == 1.0
    assert dsc(gt, box((6, 6, 6), (4, 4, 4), (6, 6, 6))) == 0.0


# --------------------------------------------------------------------------- NSD cross-checks


@pytest.mark.parametrize("spacing", SPACINGS, ids=lambda s: "x".join(f"{v:g}" for v in s))
def test_nsd_matches_deepmind_surface_distance(spacing):
    """Our NSD (MONAI, subvoxels) equals DeepMind's reference code to 1e-6, isotropic and anisotropic."""
    sd = pytest.importorskip("surface_distance", reason="DeepMind's reference: pip install surface-distance")
    gt, pred = sphere_pair(spacing)
    assert gt.any() and pred.any() and not np.array_equal(gt, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # it uses scipy.ndimage.filters / .morphology
        distances = sd.compute_surface_distances(gt, pred, spacing)
    for tolerance in (0.5, 1.0, 2.0, 3.5):
        reference = sd.compute_surface_dice_at_tolerance(distances, tolerance)
        assert 0.0 < reference < 1.0
        assert nsd(gt, pred, spacing, tolerance) == pytest.approx(reference, abs=1e-6)


def test_nsd_deepmind_agreement_is_spacing_sensitive():
    """The cross-check would catch a swapped axis order: the anisotropic answer differs from the permuted one."""
    sd = pytest.importorskip("surface_distance")
    spacing = (1.0, 1.0, 3.0)
    gt, pred = sphere_pair(spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        swapped = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(gt, pred, spacing[::-1]), 2.0)
    assert abs(nsd(gt, pred, spacing, 2.0) - swapped) > 1e-3


def test_nsd_shifted_box_hand_checked_anisotropic():
    """A translate by v puts every surface point within |v| of the other surface: NSD(tol >= |v|) = 1, below < 1."""
    spacing = (1.0, 1.0, 3.0)
    gt = box((14, 14, 14), (3, 3, 3), (10, 9, 8))
    along_3mm = np.roll(gt, 1, axis=2)
    along_1mm = np.roll(gt, 1, axis=0)
    assert nsd(gt, gt, spacing, 0.0) == pytest.approx(1.0)
    assert nsd(gt, along_3mm, spacing, 3.0) == pytest.approx(1.0, abs=1e-6)
    assert nsd(gt, along_3mm, spacing, 2.0) < 0.9
    assert nsd(gt, along_1mm, spacing, 1.0) == pytest.approx(1.0, abs=1e-6)
    assert nsd(gt, along_1mm, spacing, 2.0) == pytest.approx(1.0, abs=1e-6)
    far = box((14, 14, 14), (11, 11, 11), (13, 13, 13))
    assert nsd(box((14, 14, 14), (0, 0, 0), (2, 2, 2)), far, spacing, 2.0) == 0.0


def test_nsd_monotone_in_tolerance():
    spacing = (1.0, 1.0, 3.0)
    gt, pred = sphere_pair(spacing)
    values = [nsd(gt, pred, spacing, t) for t in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 20.0)]
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:])), values
    assert values[0] < values[-1] == pytest.approx(1.0)


def test_nsd_crop_does_not_change_the_value_at_the_image_border():
    spacing = (1.0, 1.0, 3.0)
    gt = box((10, 10, 6), (0, 0, 0), (6, 5, 4))       # touches the lower borders
    pred = box((10, 10, 6), (1, 0, 0), (10, 5, 6))    # touches the upper borders
    small = nsd(gt, pred, spacing, 1.5)
    big = nsd(np.pad(gt, 7), np.pad(pred, 7), spacing, 1.5)
    assert small == pytest.approx(big, abs=1e-7)


# --------------------------------------------------------------------------- empty conventions


def test_empty_conventions():
    spacing = (1.0, 1.0, 3.0)
    empty = np.zeros((8, 8, 8), dtype=bool)
    full = box((8, 8, 8), (2, 2, 2), (5, 5, 5))
    assert (dsc(empty, empty), nsd(empty, empty, spacing)) == (1.0, 1.0)                   # both empty
    assert math.isnan(dsc(empty, empty, both_empty=math.nan))
    assert math.isnan(nsd(empty, empty, spacing, both_empty=math.nan))
    assert (dsc(empty, full), nsd(empty, full, spacing)) == (0.0, 0.0)                     # GT empty
    assert (dsc(full, empty), nsd(full, empty, spacing)) == (0.0, 0.0)                     # prediction empty

    gt = np.zeros((8, 8, 8), np.uint8)
    gt[full] = 1
    pred = np.zeros_like(gt)
    pred[full] = 2
    rows = {r["label"]: r for r in evaluate_case(gt, pred, spacing, {"a": 1, "b": 2, "c": 3}, case="x")}
    assert rows["a"]["empty"] == PRED_EMPTY and rows["a"]["gt_voxels"] == 27 and rows["a"]["pred_voxels"] == 0
    assert rows["b"]["empty"] == GT_EMPTY and rows["b"]["dsc"] == 0.0 and rows["b"]["nsd"] == 0.0
    assert rows["c"]["empty"] == BOTH_EMPTY and rows["c"]["dsc"] == 1.0 and rows["c"]["nsd"] == 1.0


# --------------------------------------------------------------------------- folders


def write_map(path: Path, array: np.ndarray, spacing_xyz=(1.0, 1.0, 3.0), origin=(0.0, 0.0, 0.0)) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.astype(np.uint8))  # array is (z, y, x)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))


@pytest.fixture
def folders(tmp_path: Path):
    """GT/PRED with spacing (x, y, z) = (1, 1, 3) mm: a z-shift (3 mm) and an x-shift (1 mm), empty cases."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    shape = (12, 14, 14)  # z, y, x
    lesion = box(shape, (3, 3, 3), (8, 9, 10))
    organ = box(shape, (0, 0, 0), (3, 3, 14))
    cases = {}
    gt = np.zeros(shape, np.uint8)
    gt[organ] = 1
    gt[lesion] = 2
    pred = np.zeros(shape, np.uint8)
    pred[organ] = 1
    pred[np.roll(lesion, 1, axis=0)] = 2                 # lesion one slice (3 mm) off
    cases["case_a"] = (gt, pred)
    gt = np.zeros(shape, np.uint8)
    gt[lesion] = 2
    pred = np.zeros(shape, np.uint8)
    pred[np.roll(lesion, 1, axis=2)] = 2                 # lesion one column (1 mm) off; organ absent in both
    cases["case_b"] = (gt, pred)
    gt = np.zeros(shape, np.uint8)
    gt[organ] = 1
    cases["case_c"] = (gt, np.zeros(shape, np.uint8))    # organ missed, lesion absent in both
    for case, (g, p) in cases.items():
        write_map(gt_dir / f"{case}.nii.gz", g)
        write_map(pred_dir / f"{case}.nii.gz", p)
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "organ": 1, "tumor": 2}, "file_ending": ".nii.gz"}))
    return gt_dir, pred_dir, tmp_path / "dataset.json", cases


def test_folder_rows_use_gt_spacing_in_array_order(folders):
    gt_dir, pred_dir, label_file, cases = folders
    result = evaluate_folders(pred_dir, gt_dir, label_file=label_file, progress=False)
    rows = {(r["case"], r["label"]): r for r in result.rows}
    assert list(result.labels) == ["organ", "tumor"]
    assert len(result.rows) == 6
    spacing_zyx = (3.0, 1.0, 1.0)
    gt, pred = cases["case_a"]
    assert rows["case_a", "tumor"]["nsd"] == pytest.approx(nsd(gt == 2, pred == 2, spacing_zyx, 2.0), abs=1e-12)
    assert rows["case_a", "tumor"]["nsd"] < 0.9                    # 3 mm shift > 2 mm tolerance
    assert rows["case_b", "tumor"]["nsd"] == pytest.approx(1.0)    # 1 mm shift <= 2 mm
    assert rows["case_a", "organ"]["dsc"] == 1.0 and rows["case_a", "organ"]["empty"] == ""
    assert rows["case_b", "organ"]["empty"] == BOTH_EMPTY and rows["case_b", "organ"]["nsd"] == 1.0
    assert rows["case_c", "organ"]["empty"] == PRED_EMPTY and rows["case_c", "organ"]["dsc"] == 0.0
    s = result.summary
    assert s["labels"]["organ"]["counts"] == {"both_empty": 1, "gt_empty": 0, "pred_empty": 1, "missing": 0,
                                              "evaluated": 3}
    assert s["labels"]["organ"]["dsc"]["mean"] == pytest.approx(2 / 3)
    assert s["mean"]["dsc"] == pytest.approx((s["labels"]["organ"]["dsc"]["mean"] + s["labels"]["tumor"]["dsc"]["mean"]) / 2)

    nan_result = evaluate_folders(pred_dir, gt_dir, label_file=label_file, both_empty=math.nan, progress=False)
    assert nan_result.summary["labels"]["organ"]["dsc"]["n"] == 2                      # both-empty case left out
    assert nan_result.summary["labels"]["organ"]["dsc"]["mean"] == pytest.approx(0.5)


def test_outputs_written(folders, tmp_path):
    gt_dir, pred_dir, label_file, _ = folders
    result = evaluate_folders(pred_dir, gt_dir, labels=["tumor", "1"], label_file=label_file, tolerance_mm=3.0,
                              progress=False)
    paths = write_outputs(result, tmp_path / "out")
    with open(paths["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and list(table[0]) == ["case", "label", "value", "dsc", "nsd", "gt_voxels", "pred_voxels",
                                                  "empty"]
    assert {r["label"] for r in table} == {"tumor", "organ"}
    summary = json.loads(paths["json"].read_text())
    assert summary["tolerance_mm"] == 3.0 and summary["labels"]["tumor"]["nsd"]["mean"] == pytest.approx(1.0)
    assert summary["labels"]["tumor"]["counts"]["both_empty"] == 1 and "MONAI" in summary["nsd_implementation"]
    md = paths["md"].read_text()
    assert "| tumor | 2 |" in md and "mean over labels" in md and "3 mm" in md
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_label_names_and_numbers(folders):
    _, _, label_file, _ = folders
    from nnunetv2_malenia.evaluation import load_label_file

    labels = load_label_file(label_file)
    assert resolve_labels(["tumor", "1"], labels) == {"tumor": 2, "organ": 1}
    assert resolve_labels(["2,organ"], labels) == {"tumor": 2, "organ": 1}
    assert resolve_labels(["7"], labels) == {"7": 7}
    assert resolve_labels(None, labels, {0, 2, 5}) == {"tumor": 2, "5": 5}
    with pytest.raises(MaleniaError, match="'lung' is not in the label file; known labels: organ, tumor"):
        resolve_labels(["lung"], labels)
    with pytest.raises(MaleniaError, match="pass --label-file"):
        resolve_labels(["tumor"], None)


def test_geometry_mismatch_is_one_line_naming_case_and_geometries(folders):
    gt_dir, pred_dir, label_file, cases = folders
    write_map(pred_dir / "case_b.nii.gz", cases["case_b"][1], spacing_xyz=(1.0, 1.0, 2.5))
    with pytest.raises(MaleniaError) as e:
        evaluate_folders(pred_dir, gt_dir, label_file=label_file, progress=False)
    message = str(e.value)
    assert "\n" not in message
    assert message == ("case case_b: prediction geometry (size 14x14x12, spacing 1x1x2.5 mm, origin (0, 0, 0)) "
                       "does not match the ground truth (size 14x14x12, spacing 1x1x3 mm, origin (0, 0, 0))")


def test_missing_case_error_and_allow_missing(folders):
    gt_dir, pred_dir, label_file, _ = folders
    (pred_dir / "case_b.nii.gz").unlink()
    with pytest.raises(MaleniaError, match=r"no prediction for case case_b \(expected CASE\.nii\.gz\); "
                                           r"pass --allow-missing"):
        evaluate_folders(pred_dir, gt_dir, label_file=label_file, progress=False)
    result = evaluate_folders(pred_dir, gt_dir, label_file=label_file, allow_missing=True, progress=False)
    missing = [r for r in result.rows if r["case"] == "case_b"]
    assert len(missing) == 2 and all(r["empty"] == "missing" and math.isnan(r["dsc"]) for r in missing)
    assert result.summary["missing_cases"] == ["case_b"]
    assert result.summary["labels"]["tumor"]["dsc"]["n"] == 2


def test_command_line(folders, tmp_path, capsys):
    from nnunetv2_malenia.commands import evaluate

    parser = argparse.ArgumentParser(prog="malenia")
    evaluate.register(parser.add_subparsers(dest="command"))
    gt_dir, pred_dir, label_file, _ = folders
    args = parser.parse_args(["evaluate", "-p", str(pred_dir), "-g", str(gt_dir), "-o", str(tmp_path / "cli"),
                              "--label-file", str(label_file), "--labels", "tumor", "-q"])
    assert args.func(args) == 0
    assert "mean NSD@2mm" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {"metrics.csv", "summary.json", "summary.md"}
    bad = parser.parse_args(["evaluate", "-p", str(tmp_path / "nope"), "-g", str(gt_dir), "-q"])
    with pytest.raises(MaleniaError, match="prediction folder not found"):
        bad.func(bad)
    help_text = parser._subparsers._group_actions[0].choices["evaluate"].format_help()
    assert "Metrics Reloaded" in help_text and "both empty" in help_text and "2 mm" in help_text
