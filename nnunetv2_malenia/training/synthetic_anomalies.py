"""Synthetic anomalies: random blobs pasted into organs as class-agnostic lesion targets.

Why: a model trained on a handful of lesion types learns "lesion = one of these appearances", and
a lesion of a new appearance (hyperdense where every seen lesion of that organ was hypodense) is
organ to it: measured on the CPU tier, no token and no nnU-Net lesion channel fires on three of
the four unseen diseases (docs/benchmarks.md, zero-shot diagnosis). Finding must not depend on
having seen the appearance; naming is the text's job. So, during training, some patches get one or
two blobs of random size, shape, density (darker or brighter than their organ), texture and margin,
pasted inside an organ. Each blob is a lesion for the token path (mask, objectness, CMKI's masks):
it teaches "differs from its organ = a lesion" and nothing about which disease. The generator
knows nothing of the knowledge table or of the benchmark's renderer.

Optionally (`describe=True`) a blob also carries the attribute values its drawing makes
unambiguous by the radiological definitions: darker or brighter than its organ (density), texture
weak or strong next to the offset (density variation), a sharp or a blurred edge (margin), an
ellipsoid or a perturbed one (shape), and with `lobe_probability` a lobulated one. Values in
between are left without a target. With `feature_probability`, some blobs also get one specific
feature (calcium dots, a darker area inside, a thin bright rim), and a blob with none and no
texture is "no specific features". Why:
measured on the varied tier, specific features were read right on 0.36 of unseen lesions (0.77 of
seen ones; docs/benchmarks.md): each feature was seen in one or two organs only (decreased density
areas in liver tumours alone), so the organ named the feature. In the lesions of
a training set every attribute comes tied to its disease; these blobs show each value on every
organ and in every combination, so the readout can learn a type apart from the others.

By default nnU-Net's own head keeps its target (the blob's voxels stay the organ's label), so
nnU-Net's loss and the organ labels are untouched. That teaches the shared backbone, through the
head, that a bright blob in the liver is liver, against what the tokens are taught (measured: no
unseen lesion found more, docs/benchmarks.md). `label_in_head="lesion"` instead gives the blob's
voxels a lesion label in nnU-Net's target (the dataset's first lesion label, at every deep
supervision scale): the head's summed lesion channels become a class-agnostic "differs from its
organ" detector, the prior that `lesion_presence="nnunet"` reads at inference. Which lesion label
does not matter there (the eval output ignores the head's lesion channels one by one), but it does
for the head's own naming of seen diseases (`lesion_naming="hybrid"`): that channel then holds a
disease and "any anomaly in any organ", and liver tumours went to it (liver cyst, 80 % of their
voxels; docs/benchmarks.md). `label_in_head="own"` gives the blobs a label of their own, one more
channel of nnU-Net's head (MaleniaConfig.anomaly_head_channel, which the trainer sets), a lesion
channel of no disease: counted in the lesion mass, named by nobody, and every disease channel keeps
its disease alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


LABELS_IN_HEAD = ("organ", "lesion", "own")
FEATURES = ("calcified", "darker areas", "rim")


@dataclass(frozen=True)
class AnomalyConfig:
    """How often and what kind of blobs are pasted. Intensities are in HU for CT-normalised data
    (converted with the plans' foreground std) and in normalised units otherwise."""

    probability: float = 0.5            # per patch
    max_per_patch: int = 2
    radius_voxels: tuple[float, float] = (3.0, 6.5)
    contrast: tuple[float, float] = (40.0, 160.0)   # |mean offset from the organ|, either sign
    # Share of blobs made of another tissue instead: an absolute CT number drawn from `tissue_hu`
    # (fat to enhancing soft tissue), whatever the organ. An offset of 40-160 HU never turns aerated
    # lung (-850 HU) into a soft-tissue nodule; a tissue blob does, and in solid organs it is darker
    # or brighter by as much as real lesions of another tissue are. Needs `zero_hu` in paste_anomalies.
    tissue_probability: float = 0.0
    tissue_hu: tuple[float, float] = (-100.0, 200.0)
    heterogeneity: tuple[float, float] = (0.0, 0.6)  # texture std as a fraction of the offset
    margin_blur_voxels: tuple[float, float] = (0.0, 1.5)
    irregularity: tuple[float, float] = (0.0, 0.35)  # boundary perturbation as a fraction of the radius
    # Share of blobs drawn lobulated instead (see `_blob`): 3-5 round lobes with notches between them,
    # smooth (no perturbation), named "lobulated". 0 draws none, and no random number for it. Why:
    # on the detached recipe "lobulated" was never the shape readout's answer (liver hemangiomas,
    # lobulated, read round-like on 7 of 9; docs/benchmarks.md): the blobs, most of what the shape
    # readout learns from, drew round and irregular outlines only.
    lobe_probability: float = 0.0
    # Share of blobs drawn on an organ's surface instead, centred on an organ voxel next to the
    # background and reaching out into it (its CT number there: the organ's mean plus the offset).
    # 0 draws none, and no random number for it. Why: on the varied tier the spleen's, kidneys' and
    # lungs' lesions sit on their organ's surface (about half of the shell around them is not their
    # organ; liver lesions lie inside), and every blob lay two voxels or more inside its organ, so a
    # surface lesion's look was taught by the organ's seen diseases alone (splenic metastases read
    # as the splenic cyst's values by every readout probed; docs/benchmarks.md).
    surface_probability: float = 0.0
    min_voxels: int = 40
    # Share of blobs drawn with one specific feature (see the module docstring): calcium dots, a
    # darker area inside, or a thin brighter rim, each a third of them; 0 draws none (and no random
    # number for it, so the blobs are those of a config without the field).
    feature_probability: float = 0.0
    # Which features those blobs draw, each equally often (names of FEATURES).
    features: tuple[str, ...] = FEATURES
    calcium_hu: tuple[float, float] = (300.0, 600.0)     # above the organ, whatever the blob's density
    darker_area_hu: tuple[float, float] = (60.0, 120.0)  # below the blob's own content
    rim_hu: tuple[float, float] = (60.0, 120.0)          # above the organ
    # Attribute targets for what the drawing makes unambiguous (see the module docstring).
    describe: bool = False
    # nnU-Net's head target of a blob's voxels: "organ" (unchanged), "lesion" (the first lesion label)
    # or "own" (a label and head channel of their own); see the module docstring.
    label_in_head: str = "organ"
    # (type key, phrase) per drawn property; a phrase missing from the vocabulary is skipped.
    phrases: tuple[tuple[str, str, str], ...] = (
        ("darker", "density", "hypodense lesion"), ("brighter", "density", "hyperdense lesion"),
        ("flat", "density_variation", "homogeneous"), ("textured", "density_variation", "heterogeneous"),
        ("sharp", "surface_characteristics", "well-defined margin"),
        ("blurred", "surface_characteristics", "ill-defined margin"),
        ("ellipsoid", "shape", "round-like"), ("perturbed", "shape", "irregular"), ("lobed", "shape", "lobulated"),
        ("calcified", "specific_features", "calcified foci"),
        ("darker areas", "specific_features", "presence of decreased density areas"),
        ("rim", "specific_features", "thin cystic wall"),
        ("plain", "specific_features", "no specific features"))

    def __post_init__(self) -> None:
        if self.label_in_head not in LABELS_IN_HEAD:
            raise ValueError(f"label_in_head must be one of {', '.join(map(repr, LABELS_IN_HEAD))}, "
                             f"got {self.label_in_head!r}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ValueError(f"features must be a non-empty selection of {', '.join(map(repr, FEATURES))}, "
                             f"got {unknown[0] if unknown else 'none'!r}")
        for name in ("feature_probability", "lobe_probability", "surface_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class Anomaly:
    """A pasted blob: its mask and the drawn properties that name attribute values (see `phrases`)."""

    mask: np.ndarray
    properties: tuple[str, ...]


def _properties(offset: float, heterogeneity: float, blur: float, irregularity: float,
                lobed: bool = False) -> tuple[str, ...]:
    """The properties a radiologist would call unambiguous; thresholds leave a gap between values."""
    found = ["darker" if offset < 0 else "brighter"]
    if heterogeneity < 0.1:
        found.append("flat")
    elif heterogeneity > 0.35:
        found.append("textured")
    if blur < 0.4:
        found.append("sharp")
    elif blur > 1.0:
        found.append("blurred")
    if lobed:
        found.append("lobed")
    elif irregularity < 0.08:
        found.append("ellipsoid")
    elif irregularity > 0.25:
        found.append("perturbed")
    return tuple(found)


def _feature_field(feature: str, mask: np.ndarray, cfg: AnomalyConfig, rng: np.random.Generator) -> np.ndarray | None:
    """HU added to a blob (zero outside `mask`) by one specific feature, drawn by its radiological
    definition with no knowledge of any renderer: calcified foci are 1-4 dots of up to 1.5 voxels'
    radius far brighter than the organ; decreased density areas are 1-2 regions of 30-50 % of the blob's
    radius darker than the blob; a thin cystic wall is the blob's one-voxel rim, brighter than the
    organ. None when the blob is too small to hold it. Drawn in the blob's bounding box."""
    field = np.zeros(mask.shape, dtype=np.float32)
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    blob, out = mask[box], field[box]   # views: writing `out` writes `field`
    interior = ndimage.binary_erosion(blob, iterations=1)   # the box is tight: its faces are outside the blob
    inside = np.argwhere(interior)
    if not len(inside):
        return None
    if feature == "rim":
        out[blob & ~interior] = rng.uniform(*cfg.rim_hu)
        return field
    if feature == "calcified":
        count, value = int(rng.integers(1, 5)), rng.uniform(*cfg.calcium_hu)
    else:
        radius = (3.0 * mask.sum() / (4.0 * np.pi)) ** (1.0 / 3.0)
        count, value = int(rng.integers(1, 3)), -rng.uniform(*cfg.darker_area_hu)
    grid = np.indices(blob.shape, dtype=np.float32)
    for _ in range(count):
        centre = inside[rng.integers(len(inside))]
        r = rng.uniform(0.8, 1.5) if feature == "calcified" else rng.uniform(0.3, 0.5) * radius
        out[(((grid - centre[:, None, None, None]) ** 2).sum(0) <= r * r) & interior] = value
    return field


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _lobes(grid: np.ndarray, center: np.ndarray, radii: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normalised distance (< 1 inside) of a lobulated body: the union of 3-5 spheres of 0.5-0.65
    of the radius whose centres sit 0.45-0.6 of the radius from the blob's centre, in random
    directions. Each lobe bulges out as a round cap, and where two lobes meet the outline turns
    inwards: the scalloped contour with notches that "lobulated" means, and smooth, unlike the
    perturbed ("irregular") outline."""
    count = int(rng.integers(3, 6))
    directions = rng.standard_normal((count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distance = np.full(grid.shape[:-1], np.inf, dtype=np.float64)
    for direction in directions:
        lobe_center = center + rng.uniform(0.45, 0.6) * radii * direction
        lobe_radius = rng.uniform(0.5, 0.65) * radii
        distance = np.minimum(distance, np.sqrt((((grid - lobe_center) / lobe_radius) ** 2).sum(-1)))
    return distance


def _blob(host: np.ndarray, cfg: AnomalyConfig, irregularity: float, rng: np.random.Generator,
          lobed: bool = False, outside: np.ndarray | None = None) -> np.ndarray | None:
    """A boolean blob inside `host` (an organ minus existing lesions), or None if it does not fit:
    an ellipsoid whose surface is perturbed by `irregularity`, or with `lobed` a union of lobes.
    With `outside` (free background next to the organ), a blob on the organ's surface: centred on
    a host voxel that touches `outside`, and covering host and `outside` voxels."""
    if outside is not None:
        candidates = np.argwhere(host & ndimage.binary_dilation(outside))
        host = host | outside
    else:
        core = ndimage.binary_erosion(host, iterations=2)
        candidates = np.argwhere(core if core.any() else host)
    if not len(candidates):
        return None
    center = candidates[rng.integers(len(candidates))]
    radii = rng.uniform(*cfg.radius_voxels) * rng.uniform(0.85, 1.15, size=3)
    lo = np.maximum(center - np.ceil(radii * 1.5).astype(int), 0)
    hi = np.minimum(center + np.ceil(radii * 1.5).astype(int) + 1, host.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    if lobed:
        distance = _lobes(grid, center, radii, rng)
    else:
        distance = np.sqrt((((grid - center) / radii) ** 2).sum(-1))  # 1 on the ellipsoid's surface
        distance = distance + irregularity * _smooth_noise(distance.shape, 1.5, rng)
    mask = np.zeros(host.shape, dtype=bool)
    mask[box] = (distance < 1.0) & host[box]
    if mask.sum() < cfg.min_voxels:
        return None
    return mask


def paste_anomalies(image: np.ndarray, segmentation: np.ndarray, lesion_labels: set[int], room: int,
                    cfg: AnomalyConfig, intensity_unit: float, clip: tuple[float, float],
                    rng: np.random.Generator, zero_hu: float | None = None) -> list[Anomaly]:
    """Paste blobs into `image` (C, X, Y, Z, modified in place) inside the organs of `segmentation`
    (X, Y, Z); returns them. `room`: how many more lesion targets the patch may hold;
    `intensity_unit`: one contrast unit in the image's (normalised) units; `clip`: the value range;
    `zero_hu`: 0 HU in the image's units (tissue blobs, `cfg.tissue_probability`; None: none)."""
    if room <= 0 or rng.random() >= cfg.probability:
        return []
    lesion = np.isin(segmentation, list(lesion_labels))
    taken = ndimage.binary_dilation(lesion, iterations=2)
    organs = [label for label in np.unique(segmentation) if label > 0 and label not in lesion_labels]
    pasted: list[Anomaly] = []
    for _ in range(min(room, int(rng.integers(1, cfg.max_per_patch + 1)))):
        if not organs:
            break
        host = (segmentation == organs[rng.integers(len(organs))]) & ~taken
        irregularity = rng.uniform(*cfg.irregularity)
        lobed = cfg.lobe_probability > 0 and rng.random() < cfg.lobe_probability
        surface = cfg.surface_probability > 0 and rng.random() < cfg.surface_probability
        mask = _blob(host, cfg, irregularity, rng, lobed, (segmentation == 0) & ~taken if surface else None)
        if mask is None:
            continue
        organ_level = float(image[0][host].mean())
        # outside the organ a surface blob is the organ's tissue plus its offset, not the background's
        to_organ = np.where(host, 0.0, organ_level - image[0]).astype(np.float32) if surface else 0.0
        offset = rng.choice([-1.0, 1.0]) * rng.uniform(*cfg.contrast)
        if zero_hu is not None and rng.random() < cfg.tissue_probability:  # another tissue: an absolute CT number
            organ_hu = (organ_level - zero_hu) / intensity_unit
            offset = rng.uniform(*cfg.tissue_hu) - organ_hu
        heterogeneity, blur = rng.uniform(*cfg.heterogeneity), rng.uniform(*cfg.margin_blur_voxels)
        texture = heterogeneity * abs(offset) * _smooth_noise(mask.shape, 1.0, rng)
        alpha = ndimage.gaussian_filter(mask.astype(np.float32), blur)
        image += (alpha * ((offset + texture) * intensity_unit + to_organ))[None]
        properties = _properties(offset, heterogeneity, blur, irregularity, lobed)
        if cfg.feature_probability > 0:
            feature = cfg.features[rng.integers(len(cfg.features))] if rng.random() < cfg.feature_probability else None
            field = _feature_field(feature, mask, cfg, rng) if feature else None
            if field is not None:
                image += (field * intensity_unit)[None]   # sharp: dots and a rim are not blurred
                properties += (feature,)
            elif feature is None and "flat" in properties:
                properties += ("plain",)   # nothing drawn and no texture to mistake for a feature
        np.clip(image, clip[0], clip[1], out=image)
        if (alpha >= 0.5).any():
            pasted.append(Anomaly(alpha >= 0.5, properties))
        taken |= ndimage.binary_dilation(mask, iterations=2)
    return pasted
