"""A picture of a synthetic dataset: one example lesion per disease, with its attributes.

For each disease (its largest lesion in the first cases), the axial slice where that lesion is
largest is shown twice: the whole slice with organ and lesion contours (where it is), and a
magnified crop without contours (what it looks like: margin, texture, rim, core, calcium).
The caption lists the lesion's attribute values, so a reader can check that they show.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.synthetic.anatomy import ORGAN_LABELS

SOFT_WINDOW = (-110.0, 240.0)      # W350 L65: abdomen
LUNG_WINDOW = (-1150.0, 250.0)     # W1400 L-450: lung
_ATTRIBUTE_ORDER = ("location", "shape", "density", "density_variation", "surface_characteristics",
                    "relationship", "specific_features", "enhancement_status")


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _examples(dataset: Path, max_panels: int, scan_cases: int = 80) -> list[dict]:
    """For each disease, its largest lesion among the first `scan_cases` cases of each split:
    the biggest example shows its attributes best."""
    records = json.loads((dataset / "lesion_attributes.json").read_text(encoding="utf-8"))["cases"]
    test_info = json.loads((dataset / "dataset_test.json").read_text(encoding="utf-8"))
    unseen = set(test_info.get("unseen_diseases", {}))
    # The first cases of each split: unseen diseases occur only in test cases.
    train = sorted(c for c in records if "_test_" not in c)[:scan_cases]
    order = train + sorted(c for c in records if "_test_" in c)[:scan_cases]
    chosen: dict[str, dict] = {}
    for case_id in order:
        split = "Ts" if "_test_" in case_id else "Tr"
        labels = None
        for label, rec in sorted(records[case_id].items(), key=lambda kv: int(kv[0])):
            if labels is None:
                labels = _read(dataset / f"labels{split}" / f"{case_id}.nii.gz")
            size = int((labels == int(label)).sum())
            best = chosen.get(rec["disease"])
            if best is None or size > best["size"]:
                chosen[rec["disease"]] = {"case": case_id, "split": split, "label": int(label), "record": rec,
                                          "unseen": rec["disease"] in unseen, "size": size}
    table_order = list(test_info.get("seen_diseases", {})) + list(test_info.get("unseen_diseases", {}))
    ordered = sorted(chosen.values(), key=lambda e: table_order.index(e["record"]["disease"])
                     if e["record"]["disease"] in table_order else len(table_order))
    return ordered[:max_panels]


def _caption(example: dict) -> str:
    rec = example["record"]
    attrs = rec["attributes"]
    lines = []
    for key in _ATTRIBUTE_ORDER:
        value = attrs.get(key)
        if value is None:
            continue
        value = ", ".join(value) if isinstance(value, list) else value
        value = value.replace(" with adjacent organs", "").replace(" lesion", "")
        lines.append(textwrap.fill(value, 44, subsequent_indent="  "))
    return "\n".join(lines)


def write_preview(dataset: str | Path, png: str | Path, max_panels: int = 16, columns: int = 4) -> Path:
    """Write the preview PNG of a generated dataset folder; returns the PNG path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset, png = Path(dataset), Path(png)
    examples = _examples(dataset, max_panels)
    if not examples:
        raise ValueError(f"{dataset}: no lesions to preview")
    rows = int(np.ceil(len(examples) / columns))
    cell_w, img_h, txt_h = 4.6, 2.2, 1.55
    fig = plt.figure(figsize=(cell_w * columns, rows * (img_h + txt_h) + 0.5), dpi=90)
    fig.suptitle(f"{dataset.name}: one lesion per disease (left: axial slice with organ contours and the lesion "
                 "in red; right: magnified, no contours)", fontsize=11, y=0.997)
    height = rows * (img_h + txt_h) + 0.5
    cmap = plt.get_cmap("tab10")
    for i, ex in enumerate(examples):
        r, c = divmod(i, columns)
        image = _read(dataset / f"images{ex['split']}" / f"{ex['case']}_0000.nii.gz").astype(np.float32)
        labels = _read(dataset / f"labels{ex['split']}" / f"{ex['case']}.nii.gz")
        lesion = labels == ex["label"]
        z = int(np.argmax(lesion.sum(axis=(1, 2))))
        in_lung = "lung" in ex["record"]["attributes"].get("location", "")
        vmin, vmax = LUNG_WINDOW if in_lung else SOFT_WINDOW
        x0 = c * cell_w / (cell_w * columns)
        y_top = 1 - (0.5 + r * (img_h + txt_h)) / height
        w_img = 2.15 / (cell_w * columns)
        h_img = img_h / height * 0.97
        ax_full = fig.add_axes([x0 + 0.01 / columns, y_top - h_img, w_img, h_img])
        ax_zoom = fig.add_axes([x0 + 0.01 / columns + w_img * 1.04, y_top - h_img, w_img, h_img])
        sl = image[z]
        ax_full.imshow(sl, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        for organ, value in ORGAN_LABELS.items():
            m = labels[z] == value
            if m.any():
                ax_full.contour(m, levels=[0.5], colors=[cmap(value % 10)], linewidths=0.6)
        ax_full.contour(lesion[z], levels=[0.5], colors=["red"], linewidths=1.2)
        cy, cx = np.argwhere(lesion[z]).mean(axis=0)
        half = max(7, int(max(np.ptp(np.argwhere(lesion[z]), axis=0)) * 0.8) + 4)
        ys = slice(int(max(cy - half, 0)), int(min(cy + half, sl.shape[0])))
        xs = slice(int(max(cx - half, 0)), int(min(cx + half, sl.shape[1])))
        # The crop is windowed around the host tissue next to the lesion, so +-30 HU differences show.
        ring = ndimage.binary_dilation(lesion[z], iterations=3) & ~ndimage.binary_dilation(lesion[z])
        ring &= (labels[z] > 0) & (sl > -300)
        if in_lung or not ring.any():
            zmin, zmax = vmin, vmax
        else:
            centre_hu = float(np.median(sl[ring]))
            zmin, zmax = centre_hu - 130.0, centre_hu + 130.0
        ax_zoom.imshow(sl[ys, xs], cmap="gray", vmin=zmin, vmax=zmax, interpolation="nearest")
        ax_full.add_patch(plt.Rectangle((xs.start - 0.5, ys.start - 0.5), xs.stop - xs.start, ys.stop - ys.start,
                                        fill=False, edgecolor="yellow", linewidth=0.7, linestyle="--"))
        for ax in (ax_full, ax_zoom):
            ax.set_xticks([])
            ax.set_yticks([])
        tag = "UNSEEN" if ex["unseen"] else "seen"
        title = f"{ex['record']['disease']} ({tag})"
        ax_full.set_title(title, fontsize=10, loc="left", color="darkred" if ex["unseen"] else "black",
                          fontweight="bold")
        ax_zoom.set_title(f"W{zmax - zmin:.0f} L{(zmax + zmin) / 2:.0f}", fontsize=7, loc="right")
        fig.text(x0 + 0.012 / columns, y_top - h_img - 0.004, _caption(ex), fontsize=7.2, va="top", ha="left",
                 family="monospace")
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png)
    return png
