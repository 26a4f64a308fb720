"""A picture per case: the CT slice through each predicted lesion, its contour and its readout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia._atomic import atomic_write

MAX_PANELS = 6
CT_WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window (level 40, width 400)


def write_overlay(image_file: str | Path, label_file: str | Path, lesions: list[dict], output_png: str | Path) -> None:
    """One panel per lesion (largest first, at most MAX_PANELS): axial slice through its centroid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = sitk.ReadImage(str(image_file))
    ct = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
    shown = sorted(lesions, key=lambda lesion: -lesion["volume_ml"])[:MAX_PANELS]
    panels = shown or [None]
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 6.6), squeeze=False)
        for ax, lesion in zip(axes[0], panels):
            if lesion is None:
                z = ct.shape[0] // 2
                ax.set_title("no lesion predicted", fontsize=10)
            else:
                x, y, z = image.TransformPhysicalPointToIndex(lesion["centroid_mm"])
                z = int(np.clip(z, 0, ct.shape[0] - 1))
                ax.contour(labels[z] == lesion["label"], levels=[0.5], colors="red", linewidths=1.2)
                ax.set_title(f"{lesion['disease']} ({lesion['row_scores'][lesion['disease']]:.2f})", fontsize=10)
                readout = "\n".join(f"{key}: {a['value']} ({a['similarity']:.2f})"
                                    for key, a in lesion["attributes"].items())
                ax.text(0, -0.02, f"{lesion['volume_ml']:.1f} ml\n{readout}", transform=ax.transAxes,
                        va="top", fontsize=6.5, family="monospace")
            ax.imshow(ct[z], cmap="gray", vmin=CT_WINDOW[0], vmax=CT_WINDOW[1])
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(Path(label_file).name, fontsize=11)
        fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.3, wspace=0.08)  # room for the readout
        atomic_write(output_png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)
