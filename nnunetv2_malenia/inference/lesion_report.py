"""Per-lesion reports: disease, every table row's score, the attribute readout, volume, centroid.

A predicted lesion is a connected component of one disease label in the network's working space
(nnU-Net's preprocessed image: transposed, cropped, resampled). No extra network pass: nnU-Net's
sliding window already ran every token on every window, and the predictor kept what they said
(window_tokens.WindowRecorder). The token whose mask overlaps the lesion best speaks for it: its
probability of each attribute value (the readout shown in the paper's figures), its disease
scores, how well each row explains its readout (row_match, computed here for that token only)
and its objectness. Volume is measured at the working spacing; the centroid is mapped back
through nnU-Net's cropping, resampling and transposition to world coordinates (mm, as SimpleITK
reports them for the input image).

A model that names lesion voxels by its per-voxel readout (`lesion_naming="voxel"`, the zero-shot
recipe) is reported from that readout instead, averaged over the lesion's voxels: the attribute
values, row_scores (the mean p(disease | voxel)) and row_match all come from what named the lesion;
objectness stays the best token's. `readout` in the report says which spoke ("voxels" or "token";
a lesion none of whose voxels were read falls back to the token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

from nnunetv2_malenia.inference.window_tokens import WindowRecorder
from nnunetv2_malenia.knowledge import KnowledgeTable
from nnunetv2_malenia.network.attribute_bank import type_one_hot
from nnunetv2_malenia.training.lesion_targets import connected_lesions

UNKNOWN_LESION = "unknown lesion"


@dataclass
class LesionReport:
    label: int
    disease: str
    voxels: int
    volume_ml: float
    centroid_mm: list[float]
    objectness: float
    row_scores: dict[str, float]
    attributes: dict[str, dict[str, float | str]] = field(default_factory=dict)
    row_match: dict[str, float] = field(default_factory=dict)
    closest_disease: str = ""
    readout: str = "token"  # what the attributes and scores were read from: "token" or "voxels"
    # where the lesion is in working space (not serialised): bounding box and the mask inside it
    bbox: tuple[slice, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def best_match(self) -> float:
        return max(self.row_match.values(), default=0.0)

    def to_dict(self) -> dict:
        return {"label": self.label, "disease": self.disease, "closest_disease": self.closest_disease,
                "best_match": round(self.best_match, 4), "volume_ml": round(self.volume_ml, 3),
                "centroid_mm": [round(c, 2) for c in self.centroid_mm], "voxels": self.voxels,
                "objectness": round(self.objectness, 4), "readout": self.readout,
                "row_scores": {k: round(v, 4) for k, v in self.row_scores.items()},
                "row_match": {k: round(v, 4) for k, v in self.row_match.items()},
                "attributes": self.attributes}


def working_to_world(index: np.ndarray, properties: dict, transpose_forward: list[int],
                     working_shape: tuple[int, ...]) -> list[float]:
    """A (continuous) voxel index of the preprocessed image -> world coordinates of the input image."""
    before = np.asarray(properties["shape_after_cropping_and_before_resampling"], dtype=float)
    scale = before / np.asarray(working_shape, dtype=float)
    cropped = (np.asarray(index, dtype=float) + 0.5) * scale - 0.5  # voxel centres line up
    transposed = cropped + np.asarray([b[0] for b in properties["bbox_used_for_cropping"]], dtype=float)
    array_index = np.empty_like(transposed)
    array_index[list(transpose_forward)] = transposed  # undo nnU-Net's transpose
    geometry = properties["sitk_stuff"]
    reference = sitk.Image([1] * len(array_index), sitk.sitkUInt8)
    reference.SetSpacing(geometry["spacing"])
    reference.SetOrigin(geometry["origin"])
    reference.SetDirection(geometry["direction"])
    # numpy arrays from SimpleITK are (z, y, x); SimpleITK indices are (x, y, z)
    return list(reference.TransformContinuousIndexToPhysicalPoint([float(i) for i in array_index[::-1]]))


@torch.no_grad()
def lesion_reports(network, windows: WindowRecorder, segmentation: np.ndarray, disease_of_label: dict[int, str],
                   table: KnowledgeTable, properties: dict, transpose_forward: list[int],
                   spacing: tuple[float, ...], max_lesions: int = 50,
                   unknown: tuple[float, int] | None = None) -> list[LesionReport]:
    """Reports for the lesions of one case: `segmentation` in working space, `windows` what the
    tokens said in the prediction pass that made it (ZeroShotPredictor.predict_with_windows);
    `network` supplies the table scoring for row_match.

    `unknown` = (threshold, label): a lesion whose best row match is below the threshold becomes
    UNKNOWN_LESION with that label (open set); its closest row is still reported.
    """
    vocabulary = table.vocabulary
    head, value_type = network.disease_head, network.attributes.value_type
    type_member = type_one_hot(value_type.cpu(), len(vocabulary.types)).t()  # (T, V): a voxel readout's (V) -> (T, V)
    reports = []
    for label, mask in connected_lesions(segmentation, sorted(disease_of_label), max_lesions):
        found = windows.best_token(mask)
        if found is None:
            raise ValueError(f"lesion of label {label} lies in no recorded window: the windows do not cover the image")
        window, token = found
        voxels = np.argwhere(mask)
        low, high = voxels.min(0), voxels.max(0)
        probs = torch.from_numpy(window.attribute_probs[token])  # (T, V)
        row_scores = window.disease_given_token[token].tolist()
        by_voxels = windows.voxel_readout(mask)
        if by_voxels is not None:
            values, voxel_disease = by_voxels
            probs, row_scores = torch.from_numpy(values).float()[None, :] * type_member, voxel_disease.tolist()
        readout = {}
        for t, attr_type in enumerate(vocabulary.types):
            value = int(probs[t].argmax())
            readout[attr_type.key] = {"value": vocabulary.phrases[value], "similarity": round(float(probs[t, value]), 4)}
        match = head.row_match(probs[None, None].to(value_type.device), value_type)[0, 0].float().cpu().tolist()
        report = LesionReport(
            label=int(label), disease=disease_of_label[label], voxels=int(mask.sum()),
            volume_ml=float(mask.sum() * np.prod(spacing) / 1000.0),
            centroid_mm=working_to_world(voxels.mean(0), properties, transpose_forward, mask.shape),
            objectness=float(window.objectness[token]),
            row_scores=dict(zip(table.disease_names, row_scores)),
            attributes=readout, row_match=dict(zip(table.disease_names, match)),
            closest_disease=disease_of_label[label], readout="token" if by_voxels is None else "voxels",
            bbox=tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(low, high)))
        report.mask = mask[report.bbox]
        if unknown is not None and report.best_match < unknown[0]:
            report.disease, report.label = UNKNOWN_LESION, int(unknown[1])
        reports.append(report)
    return reports
