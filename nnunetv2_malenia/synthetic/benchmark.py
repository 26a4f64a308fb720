"""The benchmark definition: which knowledge table, which diseases are unseen, labels and sizes.

The default split keeps five diseases out of training. `split_problems` checks the property
zero-shot evaluation relies on: an unseen disease must not be a relabelled seen one, so it must
differ from every seen disease in at least `MIN_DIFFERING_TYPES` attribute types (types whose
allowed values are disjoint), while most of its values occur in some seen disease.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError, TableError
from nnunetv2_malenia.knowledge.knowledge_table import DiseaseRow, KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.synthetic.anatomy import LOCATION_ORGAN, ORGAN_LABELS
from nnunetv2_malenia.synthetic.presets import FULL, GeneratorPreset, available_presets, load_preset

DEFAULT_TABLE = FULL.table
MIN_DIFFERING_TYPES = 2
SPLITS = ("seen", "unseen", "all")

# Lesion radius range (voxels on the preset's reference axis) for diseases of tables the preset
# has no sizes for: by host organ.
ORGAN_RADIUS_RANGES: dict[int, tuple[float, float]] = {
    1: (3.0, 6.0), 2: (2.5, 4.5), 3: (2.5, 4.5), 4: (2.3, 3.5), 5: (2.2, 3.5),
    6: (2.0, 2.8), 7: (2.5, 4.0), 8: (2.5, 4.0), 9: (2.2, 3.2),
}

_LUNGS = {ORGAN_LABELS["right lung"], ORGAN_LABELS["left lung"]}
# Values that only make sense in some organs: (type, value) -> host organ labels.
VALUE_ORGANS: dict[tuple[str, str], set[int]] = {
    ("density", "low-density ground-glass opacity"): _LUNGS,
    ("shape", "irregular wall thickening"): {ORGAN_LABELS["colon"]},
    ("specific_features", "cavitation"): _LUNGS,
    ("specific_features", "pleural retraction"): _LUNGS,
    ("specific_features", "pancreatic duct dilatation"): {ORGAN_LABELS["pancreas"]},
}
# Every value the generator can draw, per attribute type.
RENDERED_VALUES: dict[str, set[str]] = {
    "location": set(LOCATION_ORGAN),
    "shape": {"round-like", "irregular", "lobulated", "irregular wall thickening"},
    "density": {"hypodense lesion", "low-density ground-glass opacity", "isodense lesion", "hyperdense lesion",
                "mixed-density lesion"},
    "density_variation": {"homogeneous", "heterogeneous"},
    "enhancement_status": {"non-contrast CT", "contrast-enhanced CT"},
    "surface_characteristics": {"well-defined margin", "ill-defined margin"},
    "relationship": {"no close relationship with adjacent organs", "close relationship with adjacent organs"},
    "specific_features": {"no specific features", "presence of decreased density areas",
                          "presence of increased density areas", "calcified foci", "thin cystic wall",
                          "spiculated margins", "cavitation", "pleural retraction", "pancreatic duct dilatation",
                          "surrounding fat stranding"},
}


def value_allowed_at(type_key: str, value: str, location: str) -> bool:
    organs = VALUE_ORGANS.get((type_key, value))
    return organs is None or LOCATION_ORGAN[location] in organs


def compatible_weights(row: DiseaseRow, type_key: str, location: str) -> dict[str, float]:
    """The row's values of one type that can be drawn at `location`, with their weights."""
    return {v: w for v, w in row.attributes[type_key].items() if value_allowed_at(type_key, v, location)}


@dataclass(frozen=True)
class Benchmark:
    table: KnowledgeTable
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    preset: GeneratorPreset = FULL

    def train_labels(self) -> dict[str, int]:
        """nnU-Net's labels: background, the organs, then one label per seen disease."""
        labels = {"background": 0, **ORGAN_LABELS}
        for disease in self.seen:
            labels[disease] = len(labels)
        return labels

    def test_labels(self) -> dict[str, int]:
        """The training labels followed by one label per unseen disease (test label maps use these)."""
        labels = self.train_labels()
        for disease in self.unseen:
            labels[disease] = len(labels)
        return labels

    def test_diseases(self, split: str) -> tuple[str, ...]:
        return {"seen": self.seen, "unseen": self.unseen, "all": self.seen + self.unseen}[split]

    def radius_range(self, disease: str) -> tuple[float, float]:
        if disease in self.preset.radius_ranges and is_preset_table(self.table, self.preset):
            return self.preset.radius_ranges[disease]
        organs = [LOCATION_ORGAN[loc] for loc in self.table.row(disease).attributes["location"]]
        lo = min(ORGAN_RADIUS_RANGES[o][0] for o in organs)
        hi = min(ORGAN_RADIUS_RANGES[o][1] for o in organs)
        return lo, hi


@lru_cache(maxsize=None)
def _table_name(table: str) -> str:
    return load_knowledge_table(table).name


def is_preset_table(table: KnowledgeTable, preset: GeneratorPreset) -> bool:
    """Whether `table` is the preset's own (by the table's name, so a dataset's copy counts too)."""
    return table.name == _table_name(preset.table)


def load_benchmark(table: str | Path | None = None, unseen: tuple[str, ...] | None = None,
                   preset: str | GeneratorPreset = FULL) -> Benchmark:
    """Load a knowledge table (default: the preset's), check the generator can draw every row, and
    split it (default: the preset's unseen diseases when the table is the preset's own)."""
    preset = preset if isinstance(preset, GeneratorPreset) else load_preset(preset)
    kt = load_knowledge_table(preset.table if table is None else table)
    check_renderable(kt)
    names = kt.disease_names
    if unseen is None:
        unseen = tuple(d for d in preset.unseen if d in names) if is_preset_table(kt, preset) else ()
    for disease in unseen:
        if disease not in names:
            raise MaleniaError(f"unknown disease {disease!r} in --unseen; {kt.source} has: {', '.join(names)}")
    seen = tuple(d for d in names if d not in unseen)
    if not seen:
        raise MaleniaError(f"every disease of {kt.source} is unseen; keep at least one for training")
    clash = sorted(set(names) & (set(ORGAN_LABELS) | {"background"}))
    if clash:
        raise TableError(kt.source, f"disease name {clash[0]!r} is also an organ label name; rename the row", row=clash[0])
    return Benchmark(kt, seen, tuple(d for d in names if d in unseen), preset)


def check_renderable(table: KnowledgeTable) -> None:
    """Every value of every row must be drawable, at least at one of the row's locations."""
    for row in table.diseases:
        for type_key in row.unspecified_types():
            raise TableError(table.source, "unspecified ([]): a synthetic lesion needs a value of every type to be "
                             "drawn", row=row.name, field=type_key)
        for type_key, weights in row.attributes.items():
            for value in weights:
                if value not in RENDERED_VALUES.get(type_key, set()):
                    raise TableError(table.source, f"value {value!r} has no synthetic rendering; "
                                     f"use one of: {', '.join(sorted(RENDERED_VALUES.get(type_key, [])))}",
                                     row=row.name, field=type_key)
                if not any(value_allowed_at(type_key, value, loc) for loc in row.attributes["location"]):
                    organs = sorted(n for n, lab in ORGAN_LABELS.items() if lab in VALUE_ORGANS[(type_key, value)])
                    raise TableError(table.source, f"value {value!r} is drawn only in {', '.join(organs)}, "
                                     f"but the row's locations are {', '.join(row.attributes['location'])}",
                                     row=row.name, field=type_key)
        for loc in row.attributes["location"]:
            for type_key in row.attributes:
                if not compatible_weights(row, type_key, loc):
                    raise TableError(table.source, f"no value of this type can be drawn in location {loc!r}; "
                                     "add one that fits", row=row.name, field=type_key)


def differing_types(a: DiseaseRow, b: DiseaseRow) -> list[str]:
    """Attribute types in which two rows allow no common value."""
    return [t for t in a.attributes if not set(a.attributes[t]) & set(b.attributes[t])]


def split_problems(benchmark: Benchmark) -> list[str]:
    """Unseen/seen pairs closer than MIN_DIFFERING_TYPES types (empty list = a sound split)."""
    problems = []
    for u in benchmark.unseen:
        for s in benchmark.seen:
            diff = differing_types(benchmark.table.row(u), benchmark.table.row(s))
            if len(diff) < MIN_DIFFERING_TYPES:
                problems.append(f"unseen {u!r} differs from seen {s!r} only in {', '.join(diff) or 'no type'}")
    return problems


def new_unseen_values(benchmark: Benchmark) -> set[tuple[str, str]]:
    """(type, value) pairs used by unseen diseases but by no seen one."""
    seen_values = {(t, v) for d in benchmark.seen for t, w in benchmark.table.row(d).attributes.items() for v in w}
    unseen_values = {(t, v) for d in benchmark.unseen for t, w in benchmark.table.row(d).attributes.items() for v in w}
    return unseen_values - seen_values
