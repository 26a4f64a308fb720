"""Every attribute value of the synthetic benchmark changes the image in a measurable way.

Each test renders a case with one lesion whose attribute values are fixed (everything else held
at a plain default) and measures the property the value must produce, on the final noisy image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_malenia.synthetic.anatomy import LOCATIONS, ORGAN_LABELS
from nnunetv2_malenia.synthetic.case import CaseResult, render_case
from nnunetv2_malenia.synthetic.hu import CONTRAST, NON_CONTRAST
from nnunetv2_malenia.synthetic.sampling import CasePlan, DiseasePlan
from nnunetv2_malenia.synthetic.shapes import lesion_outline, sphericity, surface_faces

SHAPE = (64, 64, 64)
LABEL = 10
DEFAULT = {
    "location": "right hepatic lobe",
    "shape": "round-like",
    "density": "hypodense lesion",
    "density_variation": "homogeneous",
    "enhancement_status": NON_CONTRAST,
    "surface_characteristics": "well-defined margin",
    "relationship": "no close relationship with adjacent organs",
    "specific_features": ("no specific features",),
}


@lru_cache(maxsize=None)
def _render(items: tuple, radius: float, seed: int) -> CaseResult:
    attrs = dict(items)
    attrs["specific_features"] = list(attrs["specific_features"])
    plan = CasePlan("t", attrs["enhancement_status"], [DiseasePlan("test disease", LABEL, attrs, [radius])])
    return render_case(plan, SHAPE, (2.5, 2.5, 2.5), np.random.default_rng(seed), keep_anatomy=True)


def lesion(radius: float = 5.0, seed: int = 3, **overrides) -> CaseResult:
    attrs = {**DEFAULT, **overrides}
    if isinstance(attrs["specific_features"], str):
        attrs["specific_features"] = (attrs["specific_features"],)
    return _render(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attrs.items())), radius, seed)


def masks(result: CaseResult):
    """(lesion mask, interior: 1 voxel in from the edge, rim: the outer voxel layer)."""
    m = result.labels == LABEL
    interior = ndimage.binary_erosion(m)
    return m, interior, m & ~interior


def host_ring(result: CaseResult, lo: int = 2, hi: int = 4) -> np.ndarray:
    """Host-organ voxels 2-4 voxels outside the lesion."""
    m = result.labels == LABEL
    host = result.lesions[0][1].host
    ring = ndimage.binary_dilation(m, iterations=hi) & ~ndimage.binary_dilation(m, iterations=lo)
    return ring & (result.labels == host)


def contrast_to_host(result: CaseResult) -> float:
    _, interior, _ = masks(result)
    return float(result.image[interior].mean() - result.image[host_ring(result)].mean())


# ---- density -----------------------------------------------------------------------------------
def test_hypodense_is_darker_than_the_host():
    assert contrast_to_host(lesion(density="hypodense lesion")) < -20


def test_hyperdense_is_brighter_than_the_host():
    assert contrast_to_host(lesion(density="hyperdense lesion")) > 20


def test_isodense_matches_the_host_but_its_capsule_shows():
    r = lesion(density="isodense lesion")
    assert abs(contrast_to_host(r)) < 10
    _, _, rim = masks(r)
    assert r.image[rim].mean() < r.image[host_ring(r)].mean() - 10


def test_mixed_density_has_darker_and_brighter_parts():
    r = lesion(density="mixed-density lesion")
    _, interior, _ = masks(r)
    host = r.image[host_ring(r)].mean()
    values = r.image[interior]
    assert (values < host - 20).mean() > 0.2 and (values > host + 20).mean() > 0.2


def test_ground_glass_is_between_lung_and_soft_tissue():
    r = lesion(location="right upper lung lobe", density="low-density ground-glass opacity", radius=3.5)
    _, interior, _ = masks(r)
    lung = r.image[host_ring(r)]
    assert -700 < r.image[interior].mean() < -400
    assert np.median(lung) < -750


# ---- density variation, surface, phase -------------------------------------------------------
def test_heterogeneous_texture_raises_the_spread_inside():
    hom = lesion(density_variation="homogeneous")
    het = lesion(density_variation="heterogeneous")
    std_hom = hom.image[masks(hom)[1]].std()
    std_het = het.image[masks(het)[1]].std()
    assert std_hom < 14 and std_het > std_hom + 8


def _edge_step(r: CaseResult) -> float:
    """HU step across the lesion edge (outer voxel layer vs first voxel outside) as a fraction of
    the full lesion-host contrast: near 1 for a sharp edge, small for a blurred one."""
    m, _, rim = masks(r)
    outside = ndimage.binary_dilation(m) & ~m & (r.labels == r.lesions[0][1].host)
    deep = ndimage.binary_erosion(m, iterations=3)
    far = host_ring(r, 3, 5)
    full = r.image[far].mean() - r.image[deep].mean()
    return float((r.image[outside].mean() - r.image[rim].mean()) / full)


def test_ill_defined_margin_is_blurrier_than_well_defined():
    kw = dict(enhancement_status=CONTRAST, radius=5.5)
    well = lesion(surface_characteristics="well-defined margin", **kw)
    ill = lesion(surface_characteristics="ill-defined margin", **kw)
    assert _edge_step(well) > 1.5 * _edge_step(ill)


def test_contrast_phase_enhances_organs_and_lesions():
    nc = lesion(enhancement_status=NON_CONTRAST)
    ce = lesion(enhancement_status=CONTRAST)
    for organ, rise in (("liver", 30), ("right kidney", 80), ("spleen", 40)):
        assert ce.image[ce.labels == ORGAN_LABELS[organ]].mean() > nc.image[nc.labels == ORGAN_LABELS[organ]].mean() + rise
    assert ce.image[masks(ce)[1]].mean() > nc.image[masks(nc)[1]].mean() + 10
    assert contrast_to_host(ce) < contrast_to_host(nc) - 8      # a hypodense lesion stands out more


# ---- location, relationship, shape ------------------------------------------------------------
@pytest.mark.parametrize("location", ["left kidney", "right kidney", "pancreatic head", "pancreatic tail",
                                      "left hepatic lobe", "spleen", "gallbladder", "sigmoid colon",
                                      "right middle lung lobe", "left lower lung lobe"])
def test_lesion_sits_in_its_location(location):
    r = lesion(location=location, radius=2.5, seed=5, relationship="close relationship with adjacent organs")
    record = r.records[LABEL]
    placed = r.lesions[0][1]
    assert record.attributes["location"] == location
    assert r.anatomy.location[placed.centre] == LOCATIONS.index(location) + 1


def _distance_to_neighbours(r: CaseResult) -> float:
    placed = r.lesions[0][1]
    a = r.anatomy
    other = ((a.organs != 0) & (a.organs != placed.host)) | a.structures()
    m = r.labels == LABEL
    return float(ndimage.distance_transform_edt(~other)[m].min())


@pytest.mark.parametrize("location", ["right kidney", "right hepatic lobe", "left upper lung lobe"])
def test_close_lesions_touch_a_neighbour_and_distant_ones_do_not(location):
    close = lesion(location=location, relationship="close relationship with adjacent organs", radius=3.0)
    distant = lesion(location=location, relationship="no close relationship with adjacent organs", radius=3.0)
    assert _distance_to_neighbours(close) <= 1.5
    assert _distance_to_neighbours(distant) >= 2.0
    m = distant.labels == LABEL   # a distant lesion is wrapped in its host organ
    shell = ndimage.binary_dilation(m) & ~m
    assert (distant.labels[shell] == distant.lesions[0][1].host).mean() > 0.9


def test_irregular_and_lobulated_outlines_are_less_spherical_than_round():
    def mean_sphericity(shape):
        return np.mean([sphericity(lesion_outline(shape, 5.0, np.random.default_rng(s))) for s in range(8)])
    round_ = mean_sphericity("round-like")
    assert mean_sphericity("irregular") < round_ - 0.05
    assert mean_sphericity("lobulated") < round_ - 0.05


def test_rendered_shape_follows_the_attribute():
    round_ = lesion(shape="round-like")
    lobulated = lesion(shape="lobulated")
    assert sphericity(round_.labels == LABEL) > sphericity(lobulated.labels == LABEL) + 0.03


def test_colon_wall_thickening_surrounds_the_lumen():
    r = lesion(location="descending colon", shape="irregular wall thickening", density="isodense lesion",
               relationship="close relationship with adjacent organs", radius=3.0)
    m = r.labels == LABEL
    assert m.sum() > 50
    assert r.anatomy.location[r.lesions[0][1].centre] == LOCATIONS.index("descending colon") + 1


# ---- specific features -------------------------------------------------------------------------
KIDNEY_SOLID = dict(location="right kidney", density="hyperdense lesion", radius=3.5)


def test_calcified_foci_give_calcium_numbers():
    calc = lesion(specific_features="calcified foci", **KIDNEY_SOLID)
    plain = lesion(**KIDNEY_SOLID)
    assert calc.image[calc.labels == LABEL].max() > 300
    assert plain.image[plain.labels == LABEL].max() < 200


def _core_minus_periphery(r: CaseResult) -> float:
    m = r.labels == LABEL
    depth = ndimage.distance_transform_edt(m)
    core = depth > 0.6 * depth.max()
    periphery = m & (depth <= 2) & (depth > 1)
    return float(r.image[core].mean() - r.image[periphery].mean())


def test_necrotic_core_is_darker_than_the_periphery():
    nec = lesion(specific_features="presence of decreased density areas", density="hyperdense lesion", radius=5.5)
    plain = lesion(density="hyperdense lesion", radius=5.5)
    assert _core_minus_periphery(nec) < -25
    assert abs(_core_minus_periphery(plain)) < 12


def test_cystic_wall_rim_is_brighter_than_its_fluid_centre():
    r = lesion(location="left hepatic lobe", specific_features="thin cystic wall", radius=4.5, seed=4)
    m, interior, rim = masks(r)
    centre = ndimage.binary_erosion(interior, iterations=1)
    assert r.image[rim].mean() > r.image[centre].mean() + 20
    assert r.image[centre].mean() < 30          # fluid


def test_increased_density_areas_add_bright_patches():
    inc = lesion(specific_features="presence of increased density areas", radius=5.5)
    plain = lesion(radius=5.5)

    def spread(r):
        v = r.image[masks(r)[1]]
        return float(np.percentile(v, 95) - np.median(v))
    assert spread(inc) > spread(plain) + 25


def test_spiculated_margins_raise_surface_to_volume():
    def ratio(spiculated):
        return np.mean([surface_faces(m) / m.sum() for m in
                        (lesion_outline("round-like", 5.0, np.random.default_rng(s), spiculated) for s in range(6))])
    assert ratio(True) > 1.2 * ratio(False)
    r = lesion(location="right lower lung lobe", density="hyperdense lesion", specific_features="spiculated margins",
               radius=3.0)
    plain = lesion(location="right lower lung lobe", density="hyperdense lesion", radius=3.0)
    m, p = r.labels == LABEL, plain.labels == LABEL
    assert surface_faces(m) / m.sum() > surface_faces(p) / p.sum()


def test_cavitation_puts_gas_inside():
    r = lesion(location="right lower lung lobe", density="hyperdense lesion", specific_features="cavitation", radius=3.5)
    assert r.image[r.labels == LABEL].min() < -500


def test_fat_stranding_raises_the_surrounding_fat():
    kw = dict(location="descending colon", shape="irregular wall thickening", density="isodense lesion",
              relationship="close relationship with adjacent organs", radius=3.0)
    strand = lesion(specific_features="surrounding fat stranding", **kw)
    plain = lesion(**kw)

    def fat_ring(r):
        m = r.labels == LABEL
        ring = ndimage.binary_dilation(m, iterations=3) & ~ndimage.binary_dilation(m) & (r.anatomy.tissue == 10)
        return float(r.image[ring].mean())
    assert fat_ring(strand) > fat_ring(plain) + 20


def test_duct_dilatation_and_pleural_retraction_draw_outside_the_lesion():
    # Neither feature draws random numbers, so with the same seed the only change is the feature.
    kw = dict(location="pancreatic head", relationship="close relationship with adjacent organs",
              enhancement_status=CONTRAST, radius=2.5)
    duct = lesion(specific_features="pancreatic duct dilatation", **kw)
    plain = lesion(**kw)
    changed = np.abs(duct.image.astype(int) - plain.image) > 20
    assert changed.sum() > 3
    assert (duct.labels[changed] == ORGAN_LABELS["pancreas"]).mean() > 0.6
    assert duct.image[changed].mean() < plain.image[changed].mean() - 40      # fluid in enhancing pancreas

    kw = dict(location="right lower lung lobe", density="hyperdense lesion", radius=2.5)
    pleural = lesion(specific_features="pleural retraction", **kw)
    plain = lesion(**kw)
    changed = np.abs(pleural.image.astype(int) - plain.image) > 50
    assert changed.sum() > 1
    assert (pleural.labels[changed] == ORGAN_LABELS["right lung"]).mean() > 0.6
    assert (pleural.image.astype(int) - plain.image).max() > 300     # a soft-tissue strand across aerated lung


def test_no_specific_features_means_plain_lesion():
    r = lesion()
    m, interior, rim = masks(r)
    assert r.image[m].max() < 200
    assert abs(_core_minus_periphery(r)) < 12
    assert abs(r.image[rim].mean() - r.image[interior].mean()) < 25
