"""Write a synthetic benchmark as an nnU-Net v2 raw dataset, all or nothing.

Layout of `$nnUNet_raw/DatasetXXX_NAME/`:
    imagesTr/, labelsTr/       training cases: seen diseases only (nnU-Net's dataset.json labels)
    imagesTs/, labelsTs/       test cases: lesions carry their true disease's label, seen or unseen
    dataset.json               nnU-Net's: CT channel, training labels, numTraining, file_ending
    dataset_test.json          the test split's label list (training labels + unseen diseases)
    lesion_attributes.json     case -> lesion label -> disease, attribute values, report (train and test)
    knowledge_table.yaml       copy of the knowledge table the data was drawn from (all rows)
    vocabulary.yaml            copy of the attribute vocabulary that table uses
    synthetic_config.json      the generator's settings, for provenance and `--force` re-runs

Each case draws from its own random stream, SeedSequence(seed, spawn_key=(split, index)), so the
bytes of a case depend on the seed and its index only: not on the number of cases, the worker
count or the order in which workers finish. Everything is built in a hidden sibling folder and
moved into place with one rename when complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from nnunetv2_malenia import __version__
from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.lesion_attributes import LESION_ATTRIBUTES_FILENAME, LesionAttributes, LesionRecord
from nnunetv2_malenia.synthetic.anatomy import ORGAN_LABELS
from nnunetv2_malenia.synthetic.benchmark import SPLITS, Benchmark, load_benchmark
from nnunetv2_malenia.synthetic.presets import DEFAULT_PRESET, load_preset

if TYPE_CHECKING:
    from nnunetv2_malenia.synthetic.case import CaseResult

FILE_ENDING = ".nii.gz"
TEST_LABELS_FILENAME = "dataset_test.json"
CONFIG_FILENAME = "synthetic_config.json"
TABLE_COPY_FILENAME = "knowledge_table.yaml"
VOCABULARY_COPY_FILENAME = "vocabulary.yaml"
MIN_AXIS, MAX_AXIS = 32, 256
MAX_SPACING_MM = 20.0
_SPLIT_KEYS = {"train": 0, "test": 1}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class SynthConfig:
    dataset_id: int
    name: str
    cases: int
    output_root: str
    seed: int = 0
    test_cases: int | None = None           # default: max(one per test disease, cases // 4)
    shape_xyz: tuple[int, int, int] | None = None         # None: the preset's
    spacing_xyz: tuple[float, float, float] | None = None   # None: the preset's (isotropic)
    split: str = "all"
    table: str | None = None                  # None: the preset's knowledge table
    unseen: tuple[str, ...] | None = None     # None: the preset's split (for the preset's table)
    force: bool = False
    workers: int = 1
    preset: str = DEFAULT_PRESET              # a shipped preset name or a preset .json path

    def resolved(self) -> "SynthConfig":
        """The config with every field the preset supplies filled in."""
        preset = load_preset(self.preset)
        return replace(self, shape_xyz=tuple(self.shape_xyz or preset.shape_xyz),
                       spacing_xyz=tuple(self.spacing_xyz or (preset.spacing_mm,) * 3),
                       table=self.table or preset.table)

    @property
    def folder_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"


@dataclass(frozen=True)
class CaseJob:
    split: str          # "train" or "test"
    index: int
    case_id: str
    primary: str        # the case's main disease
    candidates: tuple[str, ...]


def validate_config(cfg: SynthConfig) -> None:
    """Reject impossible requests before anything is written (one-line errors)."""
    if not 1 <= cfg.dataset_id <= 999:
        raise MaleniaError(f"dataset id {cfg.dataset_id} is out of range; nnU-Net ids are 1-999")
    if not _NAME.match(cfg.name):
        raise MaleniaError(f"dataset name {cfg.name!r} must be letters, digits, '_' or '-' (e.g. MaleniaSynth)")
    if cfg.cases < 1:
        raise MaleniaError(f"--cases {cfg.cases}: need at least 1 training case")
    if cfg.test_cases is not None and cfg.test_cases < 0:
        raise MaleniaError(f"--test-cases {cfg.test_cases}: must be 0 or more")
    if cfg.seed < 0:
        raise MaleniaError(f"--seed {cfg.seed}: must be a non-negative integer")
    if len(cfg.shape_xyz) != 3 or any(not MIN_AXIS <= int(n) <= MAX_AXIS for n in cfg.shape_xyz):
        raise MaleniaError(f"--shape {' '.join(map(str, cfg.shape_xyz))}: each of X Y Z must be {MIN_AXIS}-{MAX_AXIS} voxels "
                           f"(smaller volumes cannot hold the organs and lesions)")
    if len(cfg.spacing_xyz) != 3 or any(not (np.isfinite(s) and 0 < s <= MAX_SPACING_MM) for s in cfg.spacing_xyz):
        raise MaleniaError(f"--spacing {' '.join(map(str, cfg.spacing_xyz))}: each spacing must be a finite number "
                           f"in (0, {MAX_SPACING_MM:g}] mm")
    if cfg.split not in SPLITS:
        raise MaleniaError(f"--split {cfg.split!r}: choose one of {', '.join(SPLITS)}")
    if not 1 <= cfg.workers <= 2:
        raise MaleniaError(f"--workers {cfg.workers}: use 1 or 2")


def plan_jobs(cfg: SynthConfig, benchmark: Benchmark) -> list[CaseJob]:
    """Which disease each case is built around: round-robin, so every disease is covered."""
    jobs = [CaseJob("train", i, f"{cfg.name}_{i:04d}", benchmark.seen[i % len(benchmark.seen)], benchmark.seen)
            for i in range(cfg.cases)]
    test_diseases = benchmark.test_diseases(cfg.split)
    if not test_diseases:
        raise MaleniaError(f"--split {cfg.split}: the table has no {cfg.split} diseases; choose another split")
    n_test = cfg.test_cases if cfg.test_cases is not None else max(len(test_diseases), cfg.cases // 4)
    jobs += [CaseJob("test", j, f"{cfg.name}_test_{j:04d}", test_diseases[j % len(test_diseases)], test_diseases)
             for j in range(n_test)]
    return jobs


def case_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_KEYS[split], index)))


# A case whose anatomy leaves no room for any of its lesions is planned and drawn again, from the
# same stream (another anatomy, other lesion values): one unlucky draw must not fail a dataset
# (`malenia demo --seed 2` did, at case 25). A case that drew fine the first time is unchanged.
CASE_ATTEMPTS = 5


def draw_case(benchmark: Benchmark, job: CaseJob, labels: dict[str, int], shape_zyx: tuple[int, int, int],
              spacing_zyx: tuple[float, float, float], rng: np.random.Generator) -> "CaseResult":
    """Plan and render one case, drawing it again up to CASE_ATTEMPTS
    times when none of its lesions finds room."""
    from nnunetv2_malenia.synthetic.case import render_case
    from nnunetv2_malenia.synthetic.placement import PlacementError
    from nnunetv2_malenia.synthetic.sampling import plan_case

    for attempt in range(1, CASE_ATTEMPTS + 1):
        plan = plan_case(benchmark, job.case_id, job.primary, labels, job.candidates, shape_zyx, rng)
        try:
            return render_case(plan, shape_zyx, spacing_zyx, rng, preset=benchmark.preset)
        except PlacementError as error:
            if attempt == CASE_ATTEMPTS:
                raise PlacementError(f"{error} (in {CASE_ATTEMPTS} anatomies drawn)") from None


# -- worker side ------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(cfg: SynthConfig, folder: str) -> None:
    benchmark = load_benchmark(cfg.table, cfg.unseen, cfg.preset)
    _WORKER.update(benchmark=benchmark, cfg=cfg, folder=Path(folder))


def _run_job(job: CaseJob) -> tuple[str, str, dict[int, dict]]:
    """Build and write one case; returns (split, case id, label -> record dict) - small on purpose."""
    benchmark: Benchmark = _WORKER["benchmark"]
    cfg: SynthConfig = _WORKER["cfg"]
    folder: Path = _WORKER["folder"]
    labels = benchmark.train_labels() if job.split == "train" else benchmark.test_labels()
    rng = case_rng(cfg.seed, job.split, job.index)
    shape_zyx = tuple(int(n) for n in reversed(cfg.shape_xyz))
    spacing_zyx = tuple(float(s) for s in reversed(cfg.spacing_xyz))
    result = draw_case(benchmark, job, labels, shape_zyx, spacing_zyx, rng)
    suffix = "Tr" if job.split == "train" else "Ts"
    write_nifti(result.image, cfg.spacing_xyz, folder / f"images{suffix}" / f"{job.case_id}_0000{FILE_ENDING}")
    write_nifti(result.labels, cfg.spacing_xyz, folder / f"labels{suffix}" / f"{job.case_id}{FILE_ENDING}")
    return job.split, job.case_id, {label: asdict(rec) for label, rec in result.records.items()}


def write_nifti(array_zyx: np.ndarray, spacing_xyz: tuple[float, float, float], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetOrigin((0.0, 0.0, 0.0))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(path), useCompression=True)


def _results(jobs: list[CaseJob], cfg: SynthConfig, folder: Path) -> Iterator[tuple[str, str, dict]]:
    init_args = (cfg, str(folder))
    if cfg.workers <= 1 or len(jobs) < 2:
        _init_worker(*init_args)
        yield from map(_run_job, jobs)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cfg.workers, initializer=_init_worker, initargs=init_args) as pool:
        yield from pool.imap(_run_job, jobs, chunksize=1)


# -- driver -----------------------------------------------------------------------------------
def generate_dataset(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the dataset folder; returns its path. Raises MaleniaError before writing anything
    if the request is invalid, and leaves no partial folder behind if a case fails."""
    cfg = cfg.resolved()
    validate_config(cfg)
    benchmark = load_benchmark(cfg.table, cfg.unseen, cfg.preset)
    root = Path(cfg.output_root)
    target = root / cfg.folder_name
    _check_target(root, target, cfg)
    jobs = plan_jobs(cfg, benchmark)

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{cfg.folder_name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (staging / sub).mkdir(parents=True)
        attributes = LesionAttributes(benchmark.table.vocabulary.name,
                                      source=f"malenia synth: table {benchmark.table.name}, seed {cfg.seed}")
        for done, (split, case_id, records) in enumerate(_results(jobs, cfg, staging), start=1):
            for label, rec in records.items():
                attributes.add(case_id, label, LesionRecord(**rec))
            if progress is not None:
                progress(done, len(jobs))
        attributes.save(staging / LESION_ATTRIBUTES_FILENAME)
        _write_metadata(staging, cfg, benchmark, jobs)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_target(root: Path, target: Path, cfg: SynthConfig) -> None:
    if target.exists() and not cfg.force:
        raise MaleniaError(f"{target} already exists; pass --force to replace it or choose another -d/--name")
    if root.is_dir():
        for other in root.glob(f"Dataset{cfg.dataset_id:03d}_*"):
            if other.name != target.name and other.is_dir():
                raise MaleniaError(f"dataset id {cfg.dataset_id} is already used by {other}; nnU-Net needs unique ids: "
                                   f"choose another -d or remove that folder")


def _move_into_place(staging: Path, target: Path) -> None:
    """One rename publishes the dataset; an old one (--force) is renamed away first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_metadata(folder: Path, cfg: SynthConfig, benchmark: Benchmark, jobs: list[CaseJob]) -> None:
    train_labels = benchmark.train_labels()
    test_labels = benchmark.test_labels()
    n_train = sum(j.split == "train" for j in jobs)
    n_test = len(jobs) - n_train
    write_json_atomic(folder / "dataset.json", {
        "channel_names": {"0": "CT"},
        "labels": train_labels,
        "numTraining": n_train,
        "file_ending": FILE_ENDING,
        "name": cfg.name,
        "description": "Attribute-controlled synthetic CT lesion benchmark generated by `malenia synth` "
                       "(nnunetv2-malenia). Labels: organs, then one per seen lesion disease.",
        "licence": "synthetic data, no patient information",
        "malenia": {
            "organ_labels": list(ORGAN_LABELS.values()),
            "lesion_labels": [train_labels[d] for d in benchmark.seen],
            "knowledge_table": TABLE_COPY_FILENAME,
            "lesion_attributes": LESION_ATTRIBUTES_FILENAME,
            "test_labels": TEST_LABELS_FILENAME,
        },
    })
    write_json_atomic(folder / TEST_LABELS_FILENAME, {
        "labels": test_labels,
        "numTest": n_test,
        "file_ending": FILE_ENDING,
        "images": "imagesTs",
        "label_maps": "labelsTs",
        "split": cfg.split,
        "organ_labels": {name: test_labels[name] for name in ORGAN_LABELS},
        "seen_diseases": {d: test_labels[d] for d in benchmark.seen},
        "unseen_diseases": {d: test_labels[d] for d in benchmark.unseen},
        "test_diseases": list(benchmark.test_diseases(cfg.split)),
    })
    _copy_tables(benchmark, folder)
    config = asdict(cfg)
    config.pop("force")
    config.pop("workers")
    config.pop("output_root")
    config["unseen"] = list(benchmark.unseen)
    config["test_cases"] = n_test
    config["preset"] = benchmark.preset.as_dict()
    config["generator"] = f"nnunetv2-malenia {__version__}"
    write_json_atomic(folder / CONFIG_FILENAME, config)


def _copy_tables(benchmark: Benchmark, folder: Path) -> None:
    """Copy the knowledge table and its vocabulary beside the data, so the dataset is self-contained
    (the table copy's `vocabulary:` points at the copied vocabulary)."""
    shutil.copyfile(benchmark.table.vocabulary.source, folder / VOCABULARY_COPY_FILENAME)
    text = Path(benchmark.table.source).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^vocabulary:.*$", f"vocabulary: {VOCABULARY_COPY_FILENAME}", text, count=1)
    (folder / TABLE_COPY_FILENAME).write_text(text, encoding="utf-8")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
