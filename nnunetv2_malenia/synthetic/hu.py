"""Tissue classes and their CT numbers (HU) in the two contrast phases the phantoms use.

Values are textbook means for adult abdominal CT at 120 kVp: unenhanced ("non-contrast CT") and
portal-venous phase ("contrast-enhanced CT", ~70 s after iodinated contrast), where parenchymal
organs and vessels enhance and fluid, fat, air and bone do not. nnU-Net's CT normalisation clips
to the foreground's 0.5-99.5 percentiles, so the spread between organs matters more than the
exact numbers; the relative order (fat < fluid < pancreas < liver < spleen, kidneys brightest
after contrast) is what makes the phantoms read like CT.
"""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    """Tissue classes of the tissue map. 1..9 coincide with the organ labels (organ parenchyma)."""

    AIR = 0
    LIVER = 1
    KIDNEY_RIGHT = 2
    KIDNEY_LEFT = 3
    SPLEEN = 4
    PANCREAS = 5
    GALLBLADDER = 6          # bile inside the gallbladder
    LUNG_RIGHT = 7
    LUNG_LEFT = 8
    COLON = 9                # colon wall
    FAT = 10
    MUSCLE = 11
    BONE = 12                # cancellous bone (vertebral bodies)
    CORTICAL_BONE = 13       # cortex, ribs
    BLOOD = 14               # aorta, IVC
    BOWEL = 15               # small-bowel loops (unlabelled)
    URINE = 16               # bladder
    CSF = 17                 # spinal canal
    COLON_LUMEN = 18         # gas and stool inside the colon (labelled as colon)
    LUNG_VESSEL = 19         # pulmonary vessels (labelled as lung)


NON_CONTRAST = "non-contrast CT"
CONTRAST = "contrast-enhanced CT"
PHASES = (NON_CONTRAST, CONTRAST)

# Tissue -> (non-contrast HU, portal-venous HU).
TISSUE_HU: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.LIVER: (58.0, 110.0),
    Tissue.KIDNEY_RIGHT: (32.0, 165.0),
    Tissue.KIDNEY_LEFT: (32.0, 165.0),
    Tissue.SPLEEN: (48.0, 120.0),
    Tissue.PANCREAS: (42.0, 100.0),
    Tissue.GALLBLADDER: (8.0, 8.0),
    Tissue.LUNG_RIGHT: (-860.0, -855.0),
    Tissue.LUNG_LEFT: (-860.0, -855.0),
    Tissue.COLON: (38.0, 85.0),
    Tissue.FAT: (-100.0, -100.0),
    Tissue.MUSCLE: (50.0, 62.0),
    Tissue.BONE: (280.0, 285.0),
    Tissue.CORTICAL_BONE: (750.0, 750.0),
    Tissue.BLOOD: (40.0, 170.0),
    Tissue.BOWEL: (28.0, 65.0),
    Tissue.URINE: (8.0, 8.0),
    Tissue.CSF: (10.0, 10.0),
    Tissue.COLON_LUMEN: (-650.0, -650.0),
    Tissue.LUNG_VESSEL: (35.0, 150.0),
}

# Image noise: routine abdominal CT at ~3-5 mm slices has 8-12 HU standard deviation.
NOISE_STD_HU = 10.0
# Correlation of the noise (Gaussian sigma in voxels) so it looks like CT grain, not salt.
NOISE_CORRELATION_VOXELS = 0.6
# System point-spread function (Gaussian sigma in voxels): every edge gets this much partial volume.
PSF_SIGMA_VOXELS = 0.55
# The stored image range (int16 HU).
HU_MIN, HU_MAX = -1024, 3071

# Lesion CT numbers that do not depend on the host organ.
FLUID_HU = 8.0            # cyst content, necrosis, dilated duct
GAS_HU = -900.0           # cavitation
CALCIUM_HU = 1100.0       # calcified focus (before the PSF spreads it)
GROUND_GLASS_HU = -560.0  # ground-glass opacity in lung


def phase_index(phase: str) -> int:
    """0 for non-contrast, 1 for contrast-enhanced (index into TISSUE_HU's pairs)."""
    return PHASES.index(phase)


def tissue_hu(tissue: Tissue | int, phase: str) -> float:
    return TISSUE_HU[Tissue(int(tissue))][phase_index(phase)]
