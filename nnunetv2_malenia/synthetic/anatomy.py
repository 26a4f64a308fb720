"""The phantom's anatomy: body, bones, vessels and labelled organs with their sub-regions.

Everything is drawn in body-relative units (see `fields.normalized_grid`) from implicit shapes
(ellipsoids with a low-frequency wobble, tubes along centrelines), jittered per case so no two
cases share an anatomy. The result is a tissue map (what CT number each voxel has, see `hu`), an
organ label map (nnU-Net's non-lesion labels) and a location map (which Location phrase of the
vocabulary each organ voxel belongs to, e.g. pancreatic head vs tail), which lesion placement uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from nnunetv2_malenia.synthetic.fields import normalized_grid, smooth_field, texture_field
from nnunetv2_malenia.synthetic.hu import Tissue

# Organ labels of every synthetic dataset (lesion labels follow after them).
ORGAN_LABELS: dict[str, int] = {
    "liver": 1,
    "right kidney": 2,
    "left kidney": 3,
    "spleen": 4,
    "pancreas": 5,
    "gallbladder": 6,
    "right lung": 7,
    "left lung": 8,
    "colon": 9,
}

# Location phrase of the vocabulary -> organ label that hosts it.
LOCATION_ORGAN: dict[str, int] = {
    "left hepatic lobe": 1,
    "right hepatic lobe": 1,
    "left kidney": 3,
    "right kidney": 2,
    "pancreatic head": 5,
    "pancreatic body": 5,
    "pancreatic tail": 5,
    "ascending colon": 9,
    "transverse colon": 9,
    "descending colon": 9,
    "sigmoid colon": 9,
    "rectum": 9,
    "left upper lung lobe": 8,
    "left lower lung lobe": 8,
    "right upper lung lobe": 7,
    "right middle lung lobe": 7,
    "right lower lung lobe": 7,
    "gallbladder": 6,
    "spleen": 4,
}
LOCATIONS: tuple[str, ...] = tuple(LOCATION_ORGAN)

# Tissues a lesion may not grow into and whose contact counts as "close relationship with
# adjacent organs" (besides other organs): muscle, bone, vessels and heart, small bowel, bladder.
STRUCTURE_TISSUES = (Tissue.MUSCLE, Tissue.BONE, Tissue.CORTICAL_BONE, Tissue.BLOOD, Tissue.BOWEL, Tissue.URINE)

# Colon centreline (x, y, z) in body units with the segment of each stretch; rectum last.
_COLON_PATH = [
    ((-0.60, 0.15, -0.62), "ascending colon"),
    ((-0.64, 0.05, -0.35), "ascending colon"),
    ((-0.62, -0.05, -0.15), "ascending colon"),
    ((-0.48, -0.32, -0.24), "transverse colon"),
    ((-0.20, -0.50, -0.32), "transverse colon"),
    ((0.15, -0.50, -0.30), "transverse colon"),
    ((0.45, -0.36, -0.14), "transverse colon"),
    ((0.64, -0.05, -0.04), "descending colon"),
    ((0.68, 0.12, -0.30), "descending colon"),
    ((0.62, 0.10, -0.60), "descending colon"),
    ((0.40, -0.15, -0.74), "sigmoid colon"),
    ((0.12, -0.22, -0.78), "sigmoid colon"),
    ((-0.05, 0.10, -0.84), "rectum"),
    ((0.00, 0.40, -0.90), "rectum"),
    ((0.00, 0.45, -1.10), "rectum"),
]
_COLON_RADIUS = 0.105
_COLON_WALL = 0.045
# Pancreas centreline head -> tail (x, y, z) with its radius; head/body/tail by arc length thirds.
_PANCREAS_PATH = [
    ((-0.22, 0.04, -0.14), 0.12),
    ((-0.12, -0.06, -0.05), 0.105),
    ((0.05, -0.05, 0.02), 0.09),
    ((0.24, 0.05, 0.08), 0.085),
    ((0.42, 0.17, 0.13), 0.08),
]


@dataclass
class Tube:
    """A tubular organ's centreline geometry, evaluated in a box around it.

    `t` is the arc-length position (0..1) of each box voxel's nearest centreline point, `dist` the
    distance to it (body units), `radius` the tube radius there, `segment` its location phrase
    index (into `LOCATIONS`, -1 if none). Used for sub-regions, wall thickening and the duct.
    """

    box: tuple[slice, slice, slice]
    t: np.ndarray
    dist: np.ndarray
    radius: np.ndarray
    segment: np.ndarray
    points_zyx_vox: np.ndarray   # dense centreline samples in voxel coordinates (z, y, x)
    points_t: np.ndarray
    points_segment: np.ndarray   # location index of each sample (-1 if none)
    length: float                # centreline length in body units


@dataclass
class Anatomy:
    shape: tuple[int, int, int]
    tissue: np.ndarray            # uint8 Tissue codes
    organs: np.ndarray            # uint8 organ labels (ORGAN_LABELS), 0 elsewhere
    location: np.ndarray          # uint8: 1 + index into LOCATIONS, 0 outside organs
    body: np.ndarray              # bool, inside the patient
    tubes: dict[str, Tube] = field(default_factory=dict)
    voxels_per_unit: tuple[float, float, float] = (32.0, 32.0, 32.0)

    def structures(self) -> np.ndarray:
        """Muscle, bone, vessels, bowel, bladder: what lesions abut but never grow into."""
        return np.isin(self.tissue, np.array([int(t) for t in STRUCTURE_TISSUES], dtype=np.uint8))


def _ellipsoid(grid, centre_xyz, semi_xyz, wobble: np.ndarray | None = None, amount: float = 0.0) -> np.ndarray:
    uz, uy, ux = grid
    cx, cy, cz = centre_xyz
    ax, ay, az = semi_xyz
    f = ((ux - cx) / ax) ** 2 + ((uy - cy) / ay) ** 2 + ((uz - cz) / az) ** 2
    if wobble is not None and amount:
        f = f + amount * wobble
    return f < 1.0


def _jitter(rng: np.random.Generator, xyz, scale: float) -> tuple[float, float, float]:
    return tuple(float(v + rng.uniform(-scale, scale)) for v in xyz)


def _sizes(rng: np.random.Generator, xyz, rel: float = 0.08) -> tuple[float, float, float]:
    return tuple(float(v * rng.uniform(1 - rel, 1 + rel)) for v in xyz)


def _scaled(semi_xyz, factor: float) -> tuple[float, float, float]:
    return tuple(float(v * factor) for v in semi_xyz) if factor != 1.0 else tuple(semi_xyz)


def build_anatomy(shape: tuple[int, int, int], rng: np.random.Generator,
                  organ_scale: dict[str, float] | None = None) -> Anatomy:
    """Draw one jittered torso (array order z, y, x). Cost is a few dozen vectorised passes.

    `organ_scale` enlarges organs by name (liver, spleen, right/left kidney: semi-axes times the
    factor), so a small volume can hold lesions of several hundred voxels; it draws no extra
    random numbers, so the rest of the case stays as it would be."""
    scale = {name: 1.0 for name in ORGAN_LABELS} | dict(organ_scale or {})
    unknown = sorted(set(scale) - set(ORGAN_LABELS))
    if unknown:
        raise ValueError(f"organ_scale: unknown organ {unknown[0]!r}; organs are {', '.join(ORGAN_LABELS)}")
    grid = normalized_grid(shape)
    uz, uy, ux = grid
    full = np.broadcast_shapes(uz.shape, uy.shape, ux.shape)
    wobble = smooth_field(rng, shape, coarse=6)
    tissue = np.zeros(full, dtype=np.uint8)
    organs = np.zeros(full, dtype=np.uint8)

    # Body: an elliptic cylinder; e is the relative elliptic radius (1 at the skin).
    bx, by = 0.90 * rng.uniform(0.94, 1.03), 0.70 * rng.uniform(0.94, 1.03)
    e = np.sqrt((ux / bx) ** 2 + ((uy - 0.04) / by) ** 2) * np.ones_like(uz)
    e = e + 0.015 * wobble
    body = e < 1.0
    tissue[body] = Tissue.FAT
    wall_inner = rng.uniform(0.82, 0.86)
    tissue[(e >= wall_inner) & (e < wall_inner + 0.06)] = Tissue.MUSCLE
    cavity = e < wall_inner
    thorax_base = rng.uniform(0.26, 0.34)
    # Ribs: oblique arcs in the chest wall (a band that winds with angle, so an axial slice cuts
    # separate rib segments), none in front of the sternum's midline.
    angle = np.arctan2(uy - 0.04, ux)
    ribs = (e >= wall_inner - 0.05) & (e < wall_inner) & (uz > thorax_base - 0.1) \
        & (np.cos(2 * np.pi * 4.5 * uz + 2.0 * np.abs(angle)) > 0.45) & ~((np.abs(ux) < 0.12) & (uy < 0))
    tissue[ribs] = Tissue.CORTICAL_BONE

    # Spine, spinal canal, paraspinal and psoas muscles (extruded along z).
    sy = 0.45 + rng.uniform(-0.02, 0.02)
    ones_z = np.ones_like(uz, dtype=bool)
    vert_r = ((ux / 0.11) ** 2 + ((uy - sy) / 0.10) ** 2)
    tissue[((vert_r < 1.0) & ones_z)] = Tissue.BONE
    tissue[((vert_r >= 0.75) & (vert_r < 1.0) & ones_z)] = Tissue.CORTICAL_BONE
    arch = (ux / 0.085) ** 2 + ((uy - sy - 0.17) / 0.07) ** 2
    tissue[(arch < 1.0) & ones_z] = Tissue.CORTICAL_BONE
    tissue[((ux / 0.045) ** 2 + ((uy - sy - 0.17) / 0.04) ** 2 < 1.0) & ones_z] = Tissue.CSF
    for side in (-1, 1):
        para = ((ux - side * 0.2) / 0.12) ** 2 + ((uy - sy - 0.17) / 0.09) ** 2 < 1.0
        tissue[para & ones_z & body] = Tissue.MUSCLE
        psoas_r = 0.035 + np.clip(-uz, 0, 1) * 0.06
        psoas = ((ux - side * 0.17) ** 2 + (uy - sy + 0.07) ** 2 < psoas_r ** 2) & (uz < 0.1)
        tissue[psoas & (tissue == Tissue.FAT)] = Tissue.MUSCLE

    # Small-bowel loops: the zero band of a smooth field gives tortuous tubes; some gas inside.
    loops = smooth_field(rng, shape, coarse=8)
    gas = smooth_field(rng, shape, coarse=9)
    bowel = (np.abs(loops) < 0.4) & cavity & (uz < -0.22) & (uz > -0.8) & (tissue == Tissue.FAT)
    tissue[bowel] = Tissue.BOWEL
    tissue[bowel & (gas > 1.3)] = Tissue.AIR
    bladder = _ellipsoid(grid, (0.0, -0.28, -0.88), _sizes(rng, (0.2, 0.17, 0.16), 0.15), wobble, 0.1)
    tissue[bladder & cavity] = Tissue.URINE

    # Great vessels and heart.
    aorta = ((ux - 0.07) ** 2 + (uy - sy + 0.2) ** 2 < 0.05 ** 2) & ones_z & cavity
    ivc = ((ux + 0.11) ** 2 + (uy - sy + 0.24) ** 2 < 0.048 ** 2) & (uz < 0.65) & cavity
    tissue[aorta | ivc] = Tissue.BLOOD
    heart = _ellipsoid(grid, _jitter(rng, (0.1, -0.18, 0.98), 0.03), _sizes(rng, (0.3, 0.3, 0.32)), wobble, 0.1)
    tissue[heart & cavity & (uz > thorax_base + 0.25)] = Tissue.BLOOD

    free = cavity & np.isin(tissue, np.array([Tissue.FAT, Tissue.BOWEL, Tissue.AIR], dtype=np.uint8))

    def paint(mask: np.ndarray, label: int, override: tuple[int, ...] = ()) -> None:
        allowed = free & ((organs == 0) | np.isin(organs, np.array(override, dtype=np.uint8)))
        region = mask & allowed
        organs[region] = label
        tissue[region] = label

    liver_c = _jitter(rng, (-0.36, 0.0, 0.2), 0.03)
    liver = _ellipsoid(grid, liver_c, _scaled(_sizes(rng, (0.42, 0.46, 0.33)), scale["liver"]), wobble, 0.12)
    left_lobe = _ellipsoid(grid, _jitter(rng, (0.08, -0.28, 0.3), 0.03),
                           _scaled(_sizes(rng, (0.3, 0.2, 0.17)), scale["liver"]), wobble, 0.12)
    paint(liver | left_lobe, ORGAN_LABELS["liver"])
    gallbladder = _ellipsoid(grid, _jitter(rng, (-0.3, -0.37, -0.06), 0.02), _sizes(rng, (0.11, 0.11, 0.18)), wobble, 0.05)
    paint(gallbladder, ORGAN_LABELS["gallbladder"], override=(ORGAN_LABELS["liver"],))
    spleen = _ellipsoid(grid, _jitter(rng, (0.48, 0.22, 0.36), 0.02),
                        _scaled(_sizes(rng, (0.19, 0.27, 0.25)), scale["spleen"]), wobble, 0.1)
    paint(spleen, ORGAN_LABELS["spleen"])
    for name, centre, hilum_side in (("right kidney", (-0.37, 0.36, -0.12), 1), ("left kidney", (0.37, 0.34, -0.1), -1)):
        c = _jitter(rng, centre, 0.025)
        f = scale[name]
        kidney = _ellipsoid(grid, c, _scaled(_sizes(rng, (0.17, 0.16, 0.28)), f), wobble, 0.06)
        sinus = _ellipsoid(grid, (c[0] + hilum_side * 0.09 * f, c[1] - 0.02, c[2]), _scaled((0.065, 0.055, 0.12), f))
        paint(kidney & ~sinus, ORGAN_LABELS[name])

    tubes: dict[str, Tube] = {}
    pancreas_pts = [(_jitter(rng, p, 0.02), r) for p, r in _PANCREAS_PATH]
    tube = _tube_field(shape, [p for p, _ in pancreas_pts], [r for _, r in pancreas_pts],
                       [None] * len(pancreas_pts), max_radius=0.13)
    tubes["pancreas"] = tube
    thirds = np.where(tube.t < 1 / 3, LOCATIONS.index("pancreatic head"),
                      np.where(tube.t < 2 / 3, LOCATIONS.index("pancreatic body"), LOCATIONS.index("pancreatic tail")))
    tube.segment[:] = np.where(tube.dist < tube.radius, thirds, -1)
    pancreas = np.zeros(full, dtype=bool)
    pancreas[tube.box] = tube.dist < tube.radius * (1 + 0.1 * wobble[tube.box])
    paint(pancreas, ORGAN_LABELS["pancreas"])

    colon_pts = [(_jitter(rng, p, 0.015), seg) for p, seg in _COLON_PATH]
    radius = _COLON_RADIUS * rng.uniform(0.9, 1.1)
    tube = _tube_field(shape, [p for p, _ in colon_pts], [radius] * len(colon_pts),
                       [LOCATIONS.index(s) for _, s in colon_pts], max_radius=radius)
    tubes["colon"] = tube
    colon = np.zeros(full, dtype=bool)
    colon[tube.box] = tube.dist < tube.radius
    lumen = np.zeros(full, dtype=bool)
    lumen[tube.box] = tube.dist < tube.radius - _COLON_WALL
    paint(colon, ORGAN_LABELS["colon"])
    tissue[lumen & (organs == ORGAN_LABELS["colon"])] = Tissue.COLON_LUMEN

    thorax = cavity & (uz > thorax_base)
    for name, cx in (("right lung", -0.42), ("left lung", 0.43)):
        lung = _ellipsoid(grid, _jitter(rng, (cx, 0.06, 0.95), 0.02), _sizes(rng, (0.37, 0.54, 0.66), 0.05), wobble, 0.08)
        paint(lung & thorax & (np.abs(ux) > 0.1), ORGAN_LABELS[name])
    lungs = (organs == ORGAN_LABELS["right lung"]) | (organs == ORGAN_LABELS["left lung"])
    vessels = texture_field(rng, shape, 0.9) > 2.1
    tissue[lungs & vessels] = Tissue.LUNG_VESSEL

    location = _locations(grid, organs, tubes)
    vpu = tuple(n / 2.0 for n in shape)
    return Anatomy(tuple(shape), tissue, organs, location, body, tubes, vpu)


def _locations(grid, organs: np.ndarray, tubes: dict[str, Tube]) -> np.ndarray:
    """Assign each organ voxel its Location phrase (1 + index into LOCATIONS)."""
    uz, uy, ux = grid
    loc = np.zeros(organs.shape, dtype=np.uint8)
    code = {name: i + 1 for i, name in enumerate(LOCATIONS)}
    liver = organs == ORGAN_LABELS["liver"]
    left = np.broadcast_to(ux > -0.08 - 0.25 * (uy + 0.1), organs.shape)
    loc[liver & left] = code["left hepatic lobe"]
    loc[liver & ~left] = code["right hepatic lobe"]
    for name in ("left kidney", "right kidney", "gallbladder", "spleen"):
        loc[organs == LOCATION_ORGAN[name]] = code[name]
    for organ, tube in (("pancreas", tubes["pancreas"]), ("colon", tubes["colon"])):
        box = tube.box
        inside = organs[box] == ORGAN_LABELS[organ]
        seg = tube.segment
        sub = loc[box]
        sub[inside & (seg >= 0)] = (seg[inside & (seg >= 0)] + 1).astype(np.uint8)
    # Lungs: the oblique fissure separates the posterior-inferior lower lobe; the right lung's
    # anterior-inferior remainder is the middle lobe.
    lower = np.broadcast_to(uy - 0.9 * (uz - 0.35) > -0.12, organs.shape)
    low_z = np.broadcast_to(uz < 0.66, organs.shape)
    right = organs == ORGAN_LABELS["right lung"]
    left_lung = organs == ORGAN_LABELS["left lung"]
    loc[right & lower] = code["right lower lung lobe"]
    loc[right & ~lower & low_z] = code["right middle lung lobe"]
    loc[right & ~lower & ~low_z] = code["right upper lung lobe"]
    loc[left_lung & lower] = code["left lower lung lobe"]
    loc[left_lung & ~lower] = code["left upper lung lobe"]
    return loc


def _tube_field(shape, points_xyz, radii, segments, max_radius: float) -> Tube:
    """Distance to a polyline centreline for the voxels of its bounding box (k-d tree query)."""
    pts = np.asarray(points_xyz, dtype=np.float64)
    rad = np.asarray(radii, dtype=np.float64)
    samples, sample_r, sample_seg = [], [], []
    for i in range(len(pts) - 1):
        n = max(2, int(np.ceil(np.linalg.norm(pts[i + 1] - pts[i]) / 0.01)))
        f = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
        samples.append(pts[i] + f * (pts[i + 1] - pts[i]))
        sample_r.append(rad[i] + f[:, 0] * (rad[i + 1] - rad[i]))
        sample_seg.append(np.full(n, -1 if segments[i] is None else segments[i], dtype=np.int16))
    samples.append(pts[-1:])
    sample_r.append(rad[-1:])
    sample_seg.append(np.array([-1 if segments[-1] is None else segments[-1]], dtype=np.int16))
    s = np.concatenate(samples)
    r = np.concatenate(sample_r)
    sg = np.concatenate(sample_seg)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(s, axis=0), axis=1))])
    t_of_sample = arc / arc[-1]

    # Bounding box in voxels (array order z, y, x).
    lo = s.min(axis=0) - max_radius * 1.6
    hi = s.max(axis=0) + max_radius * 1.6
    box = []
    for axis_xyz, n in zip((2, 1, 0), shape):
        a = int(np.clip(np.floor((lo[axis_xyz] + 1) / 2 * n - 0.5), 0, n))
        b = int(np.clip(np.ceil((hi[axis_xyz] + 1) / 2 * n + 0.5), 0, n))
        box.append(slice(a, max(a, b)))
    box_t = tuple(box)
    axes = [((np.arange(sl.start, sl.stop) + 0.5) / n) * 2 - 1 for sl, n in zip(box_t, shape)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    query = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    # Voxels farther than the bound are never part of the tube: skip their exact search.
    dist, idx = cKDTree(s).query(query, distance_upper_bound=max_radius * 1.6)
    far = idx >= len(s)
    idx[far] = 0
    dist[far] = np.inf
    local = zz.shape
    to_vox = np.stack([(s[:, 2] + 1) / 2 * shape[0] - 0.5, (s[:, 1] + 1) / 2 * shape[1] - 0.5,
                       (s[:, 0] + 1) / 2 * shape[2] - 0.5], axis=1)
    return Tube(
        box=box_t,
        t=np.where(far, -1.0, t_of_sample[idx]).reshape(local).astype(np.float32),
        dist=dist.reshape(local).astype(np.float32),
        radius=r[idx].reshape(local).astype(np.float32),
        segment=np.where(far, -1, sg[idx]).reshape(local).astype(np.int16),
        points_zyx_vox=to_vox.astype(np.float32),
        points_t=t_of_sample.astype(np.float32),
        points_segment=sg,
        length=float(arc[-1]),
    )
