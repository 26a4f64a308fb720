"""Generator presets: the tiers of the synthetic benchmark, kept as data (presets/*.json).

One generator, several sizes of the same experiment. A preset fixes what makes a tier hard or
easy for a given compute budget: volume size and spacing, the knowledge table and its split,
lesion sizes (per disease, in voxels), organ sizes, how many diseases and lesions a case holds, the lesions'
contrast against their host organ and the image noise. `full` is the benchmark as it always was
(its numbers reproduce earlier datasets byte for byte); `cpu` is sized so that the supervised
upper bound learns every lesion class in about 20 minutes on 2 CPU cores (docs/benchmarks.md).
Adding a tier means adding a JSON file, not code; a tier that differs from another in a few fields
names it in `inherits_from` and lists only those.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

PRESET_FOLDER = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "full"


@dataclass(frozen=True)
class GeneratorPreset:
    name: str
    description: str
    table: str
    unseen: tuple[str, ...]
    shape_xyz: tuple[int, int, int]
    spacing_mm: float
    # Lesion radii in voxels per disease. With `radius_reference_axis` set, they are given on an
    # axis of that many voxels and shrink or grow with the volume; None means absolute voxels.
    radius_ranges: dict[str, tuple[float, float]]
    radius_reference_axis: int | None
    min_lesion_voxels: int                      # a lesion smaller than this is not placed
    shrink_steps: tuple[float, ...]             # sizes the first lesion of a disease may try
    extra_disease_probabilities: tuple[float, ...]   # chance of a 2nd, 3rd, ... disease per case
    two_lesions_probability: float              # chance that a disease shows two lesions
    hypodense_drop_hu: dict[str, float]         # per phase, below the host organ
    hyperdense_rise_hu: dict[str, float]        # per phase, above the host organ
    heterogeneous_std_hu: float                 # texture inside heterogeneous lesions
    noise_std_hu: float                         # image noise
    organ_scale: dict[str, float] = field(default_factory=dict)   # organ name -> size factor
    default_cases: int | None = None            # training cases when --cases is not given
    default_test_cases: int | None = None
    source: str = field(default="", compare=False)

    def radius_scale(self, shape_zyx: tuple[int, ...]) -> float:
        return 1.0 if self.radius_reference_axis is None else min(shape_zyx) / self.radius_reference_axis

    def as_dict(self) -> dict:
        """What synthetic_config.json records about the preset (everything but the file path)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "source"}


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_FOLDER.glob("*.json"))


def load_preset(name_or_path: str | Path = DEFAULT_PRESET) -> GeneratorPreset:
    """A shipped preset by name (`full`, `cpu`) or a preset JSON file by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PRESET_FOLDER / f"{name_or_path}.json"
    if not path.is_file():
        raise MaleniaError(f"unknown synthetic preset {str(name_or_path)!r}; choose one of "
                           f"{', '.join(available_presets())} or give a preset .json file")
    raw = _read_fields(path, ())
    known = set(GeneratorPreset.__dataclass_fields__) - {"source"}
    unknown = sorted(set(raw) - known)
    missing = sorted(k for k, f in GeneratorPreset.__dataclass_fields__.items()
                     if f.default is MISSING and f.default_factory is MISSING and k not in raw)
    if unknown:
        raise MaleniaError(f"{path}: unknown preset field {unknown[0]!r}; fields are {', '.join(sorted(known))}")
    if missing:
        raise MaleniaError(f"{path}: preset field {missing[0]!r} is missing")
    return GeneratorPreset(
        name=str(raw["name"]), description=str(raw["description"]), table=str(raw["table"]),
        unseen=tuple(raw["unseen"]), shape_xyz=tuple(int(n) for n in raw["shape_xyz"]),
        spacing_mm=float(raw["spacing_mm"]),
        radius_ranges={d: (float(lo), float(hi)) for d, (lo, hi) in raw["radius_ranges"].items()},
        radius_reference_axis=raw["radius_reference_axis"], min_lesion_voxels=int(raw["min_lesion_voxels"]),
        shrink_steps=tuple(float(f) for f in raw["shrink_steps"]),
        extra_disease_probabilities=tuple(float(p) for p in raw["extra_disease_probabilities"]),
        two_lesions_probability=float(raw["two_lesions_probability"]),
        hypodense_drop_hu={k: float(v) for k, v in raw["hypodense_drop_hu"].items()},
        hyperdense_rise_hu={k: float(v) for k, v in raw["hyperdense_rise_hu"].items()},
        heterogeneous_std_hu=float(raw["heterogeneous_std_hu"]), noise_std_hu=float(raw["noise_std_hu"]),
        organ_scale={k: float(v) for k, v in raw.get("organ_scale", {}).items()},
        default_cases=raw.get("default_cases"), default_test_cases=raw.get("default_test_cases"),
        source=str(path))


def _read_fields(path: Path, children: tuple[Path, ...]) -> dict:
    """The preset file's fields, over those of the preset it names in `inherits_from` (a shipped
    preset's name or a .json path relative to the file), as nnU-Net's plans configurations inherit:
    a tier that changes one thing (the varied tier: its table) is that one thing, not a copy that
    can drift from its parent."""
    if path.resolve() in children:
        chain = " -> ".join(str(p) for p in (*children, path.resolve()))
        raise MaleniaError(f"{path}: inherits_from makes a cycle ({chain}); one of them must not inherit")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MaleniaError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise MaleniaError(f"{path}: a preset is a JSON object of fields, got {type(raw).__name__}")
    parent_name = raw.pop("inherits_from", None)
    if parent_name is None:
        return raw
    parent = Path(str(parent_name))
    parent = path.parent / parent if parent.suffix == ".json" else PRESET_FOLDER / f"{parent_name}.json"
    if not parent.is_file():
        raise MaleniaError(f"{path}: inherits_from {parent_name!r} is not a preset; give one of "
                           f"{', '.join(available_presets())} or a .json path relative to the file")
    return {**_read_fields(parent, (*children, path.resolve())), **raw}


FULL = load_preset("full")
