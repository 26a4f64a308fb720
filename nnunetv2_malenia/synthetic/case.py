"""One synthetic case: anatomy, lesions placed and drawn from their attributes, PSF and noise.

Order matters: lesions are placed first (a "distant" lesion grows its host organ), the
background is then drawn from the tissue map in the case's phase, features outside the lesion
(fat stranding, duct, pleural strand) are drawn into it, lesions are blended in, and last the
scanner's blur and noise are applied to everything, lesions included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.knowledge.lesion_attributes import LesionRecord
from nnunetv2_malenia.synthetic.anatomy import ORGAN_LABELS, Anatomy, build_anatomy
from nnunetv2_malenia.synthetic.appearance import render_lesion
from nnunetv2_malenia.synthetic.fields import smooth_field, texture_field
from nnunetv2_malenia.synthetic.hu import (
    HU_MAX, HU_MIN, NOISE_CORRELATION_VOXELS, PSF_SIGMA_VOXELS, TISSUE_HU, Tissue, phase_index,
    tissue_hu,
)
from nnunetv2_malenia.synthetic.presets import FULL, GeneratorPreset
from nnunetv2_malenia.synthetic.placement import PlacedLesion, PlacementError, Placer
from nnunetv2_malenia.synthetic.report import report_sentence
from nnunetv2_malenia.synthetic.sampling import CasePlan, DiseasePlan
from nnunetv2_malenia.synthetic.shapes import WALL_SHAPE, lesion_outline
from nnunetv2_malenia.synthetic import surroundings

MIN_RADIUS_VOXELS = 1.0
RECORD_SOURCE = "malenia synth (synthetic benchmark)"
_LUNGS = (ORGAN_LABELS["right lung"], ORGAN_LABELS["left lung"])


@dataclass
class CaseResult:
    case_id: str
    image: np.ndarray                     # int16 HU, array order (z, y, x)
    labels: np.ndarray                    # uint8
    records: dict[int, LesionRecord]      # lesion label -> record
    lesions: list[tuple[DiseasePlan, PlacedLesion]] = field(default_factory=list)
    anatomy: Anatomy | None = None        # kept for tests and the preview, not written
    phase: str = ""


def render_case(plan: CasePlan, shape: tuple[int, int, int], spacing_zyx: tuple[float, float, float],
                rng: np.random.Generator, keep_anatomy: bool = False, preset: GeneratorPreset = FULL) -> CaseResult:
    """Draw the planned case. `rng` must be the case's own stream (see dataset_writer); `preset`
    gives the shrink steps, the minimum lesion size, lesion contrast and noise."""
    shrink_steps = preset.shrink_steps
    anatomy = build_anatomy(shape, rng, preset.organ_scale)
    placer = Placer(anatomy, rng)
    placed: list[tuple[DiseasePlan, PlacedLesion]] = []
    failed: list[DiseasePlan] = []
    for disease in plan.diseases:
        for index, radius in enumerate(disease.radii):
            # The first lesion may shrink, and may move to another location its row allows when
            # the drawn one has no room (all lesions of the disease share one record, so the move
            # applies to them all); the full size anywhere is preferred over shrinking. Later
            # lesions of the same disease that find no room at full size are left out, and so is a
            # disease whose first lesion finds none; a case must hold at least one lesion.
            locations = [disease.attributes["location"]] + (disease.fallback_locations if index == 0 else [])
            lesion = None
            for factor in (shrink_steps if index == 0 else (1.0,)):
                for location in locations:
                    lesion = _place_one(placer, disease, radius * factor, location, rng, preset.min_lesion_voxels)
                    if lesion is not None:
                        disease.attributes["location"] = location
                        break
                if lesion is not None:
                    break
            if lesion is None:
                if index == 0:
                    failed.append(disease)
                    break      # a disease of the case that finds no room is left out
                continue   # a second lesion of the same disease that finds no room is left out
            placer.commit(lesion, disease.attributes["relationship"])
            placed.append((disease, lesion))
    if not placed:
        disease = failed[0]
        raise PlacementError(
            f"case {plan.case_id}: could not place a {disease.disease} lesion "
            f"({disease.attributes['shape']}, {disease.attributes['location']}, "
            f"{disease.attributes['relationship']}) even at {shrink_steps[-1]:.0%} size"
            f"{f' and at least {preset.min_lesion_voxels} voxels' if preset.min_lesion_voxels else ''}; "
            "use a larger --shape or a smaller lesion size")

    image = _background(anatomy, plan.phase, rng)
    for disease, lesion in placed:
        features = disease.attributes["specific_features"]
        if "surrounding fat stranding" in features:
            surroundings.fat_stranding(image, anatomy, lesion, rng)
        if "pleural retraction" in features:
            surroundings.pleural_retraction(image, anatomy, lesion)
        if "pancreatic duct dilatation" in features:
            surroundings.duct_dilatation(image, anatomy, lesion)
    for disease, lesion in placed:
        host_hu = tissue_hu(lesion.host, plan.phase)
        look = render_lesion(lesion.mask, disease.attributes, host_hu, plan.phase, lesion.host in _LUNGS, rng,
                             preset)
        region = image[lesion.box]
        region[...] = region * (1.0 - look.weight) + look.hu * look.weight
        for hard, value in look.hard:
            region[hard] = value

    image = ndimage.gaussian_filter(image, PSF_SIGMA_VOXELS, mode="nearest")
    noise = texture_field(rng, shape, NOISE_CORRELATION_VOXELS) * preset.noise_std_hu
    image = np.clip(np.rint(image + noise), HU_MIN, HU_MAX).astype(np.int16)

    labels = anatomy.organs.copy()
    for disease, lesion in placed:
        labels[lesion.box][lesion.mask] = disease.label
    records = _records(plan, placed, spacing_zyx)
    return CaseResult(plan.case_id, image, labels, records, placed, anatomy if keep_anatomy else None, plan.phase)


def _place_one(placer: Placer, disease: DiseasePlan, radius: float, location: str,
               rng: np.random.Generator, min_voxels: int = 0) -> PlacedLesion | None:
    attrs = disease.attributes
    r = max(MIN_RADIUS_VOXELS, radius)
    if attrs["shape"] == WALL_SHAPE:
        lesion = placer.place_wall(r, location, attrs["relationship"])
    else:
        outline = lesion_outline(attrs["shape"], r, rng, spiculated="spiculated margins" in attrs["specific_features"])
        lesion = placer.place(outline, location, attrs["relationship"])
    if lesion is not None and int(lesion.mask.sum()) < min_voxels:
        return None   # clipped by its neighbours below the tier's minimum size: try elsewhere
    return lesion


def _background(anatomy: Anatomy, phase: str, rng: np.random.Generator) -> np.ndarray:
    """CT numbers from the tissue map, with organ texture, bowel content and lumen gas/stool."""
    p = phase_index(phase)
    lut = np.zeros(256, dtype=np.float32)
    for tissue, values in TISSUE_HU.items():
        lut[int(tissue)] = values[p]
    image = lut[anatomy.tissue]
    soft = anatomy.body & (anatomy.tissue != Tissue.AIR)
    image += np.where(soft, 4.0 * smooth_field(rng, anatomy.shape, coarse=10), 0.0).astype(np.float32)
    lumen = anatomy.tissue == Tissue.COLON_LUMEN
    if lumen.any():
        stool = smooth_field(rng, anatomy.shape, coarse=12)
        image[lumen] = np.where(stool[lumen] > 0.2, -900.0, -60.0 + 40.0 * stool[lumen])
    return image


def _records(plan: CasePlan, placed: list[tuple[DiseasePlan, PlacedLesion]],
             spacing_zyx: tuple[float, float, float]) -> dict[int, LesionRecord]:
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    records: dict[int, LesionRecord] = {}
    for disease in plan.diseases:
        masks = [lesion.mask for d, lesion in placed if d is disease]
        if not masks:
            continue
        diameters = [2 * (3 * m.sum() * voxel_ml / (4 * np.pi)) ** (1 / 3) for m in masks]  # cm, from ml
        report = report_sentence(disease.attributes, len(masks), max(diameters))
        records[disease.label] = LesionRecord(disease.disease, dict(disease.attributes), report, RECORD_SOURCE)
    return records
