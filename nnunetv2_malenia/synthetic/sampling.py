"""What goes into one case: which diseases, the contrast phase, and each disease's attribute values.

All lesions of one disease in a case share one set of values (lesion_attributes.json keeps one
record per case and label). Location is drawn first, then every other type among the values the
row allows that can be drawn there. Enhancement status is the scan's phase, so the diseases of a
case must share it: a second disease whose row excludes the phase is not added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunetv2_malenia.knowledge.knowledge_table import DiseaseRow
from nnunetv2_malenia.synthetic.benchmark import Benchmark, compatible_weights, value_allowed_at
from nnunetv2_malenia.synthetic.hu import PHASES



@dataclass
class DiseasePlan:
    disease: str
    label: int
    attributes: dict            # type -> phrase, specific_features -> [phrase]
    radii: list[float]          # one per lesion, voxels
    fallback_locations: list[str] = field(default_factory=list)   # if the drawn location has no room


@dataclass
class CasePlan:
    case_id: str
    phase: str
    diseases: list[DiseasePlan] = field(default_factory=list)


def _pick(weights: dict[str, float], rng: np.random.Generator) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_attributes(row: DiseaseRow, phase: str, rng: np.random.Generator) -> dict:
    """One value per type from the row (location first, the rest compatible with it)."""
    location = _pick(row.attributes["location"], rng)
    values: dict = {"location": location}
    for type_key in row.attributes:
        if type_key == "location":
            continue
        if type_key == "enhancement_status":
            values[type_key] = phase
            continue
        choice = _pick(compatible_weights(row, type_key, location), rng)
        values[type_key] = [choice] if type_key == "specific_features" else choice
    return values


def plan_case(benchmark: Benchmark, case_id: str, primary: str, labels: dict[str, int], candidates: tuple[str, ...],
              shape: tuple[int, int, int], rng: np.random.Generator) -> CasePlan:
    """Plan one case around its `primary` disease, maybe adding more from `candidates` (the
    preset's `extra_disease_probabilities`: one chance per further disease, in turn)."""
    table = benchmark.table
    preset = benchmark.preset
    diseases = [primary]
    common_phases = set(table.row(primary).attributes["enhancement_status"])
    for probability in preset.extra_disease_probabilities:
        others = [d for d in candidates if d not in diseases]
        if not others or rng.random() >= probability:
            break
        extra = others[int(rng.integers(len(others)))]
        phases = common_phases & set(table.row(extra).attributes["enhancement_status"])
        if phases:   # the diseases of a case share the scan's phase
            diseases.append(extra)
            common_phases = phases
    weights = {p: 1.0 for p in PHASES}
    for d in diseases:
        allowed = table.row(d).attributes["enhancement_status"]
        weights = {p: w * allowed[p] for p, w in weights.items() if p in allowed}
    phase = _pick(weights, rng)
    scale = preset.radius_scale(shape)
    plan = CasePlan(case_id, phase)
    for d in diseases:
        attributes = sample_attributes(table.row(d), phase, rng)
        lo, hi = benchmark.radius_range(d)
        n = 2 if rng.random() < preset.two_lesions_probability else 1
        radii = [max(1.4, float(rng.uniform(lo, hi)) * scale) for _ in range(n)]
        fallback = [loc for loc in table.row(d).attributes["location"] if loc != attributes["location"]
                    and all(value_allowed_at(t, v, loc) for t, vs in attributes.items() if t != "location"
                            for v in ([vs] if isinstance(vs, str) else vs))]
        fallback = [fallback[i] for i in rng.permutation(len(fallback))]
        plan.diseases.append(DiseasePlan(d, labels[d], attributes, radii, fallback))
    return plan
