"""One nnU-Net raw dataset from several partially labelled ones (`malenia merge-datasets`).

The paper trains one model on MSD Liver, Lung, Pancreas, Colon and KiTS23 together; each labels
only its own organ and lesions. Merging:
- unites the labels by name (case and "_" ignored, the trainer's own matching: `normalise_name`),
  background 0, then every new name in order of appearance (datasets in the order given);
- renumbers every label map into that union with nnU-Net's reader/writer for the file ending, so
  spacing, origin and direction are the source's;
- links (or copies) the images under the merged case ids; a case id that several datasets use is
  prefixed with its dataset's name (`Liver_case_001`);
- merges the `lesion_attributes.json` files (case ids and label keys renumbered);
- writes `annotated_labels.json`: per case, the labels its source dataset annotates.
Only training cases (imagesTr/labelsTr, or dataset.json's "dataset" list) are merged. Everything
is built in a hidden folder beside the target and renamed into place at the end, so an
interrupted merge leaves no half dataset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.datasets.annotated_labels import ANNOTATED_LABELS_FILENAME, AnnotatedLabels
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.builtin import DEFAULT_KNOWLEDGE_TABLE
from nnunetv2_malenia.knowledge.lesion_attributes import LESION_ATTRIBUTES_FILENAME
from nnunetv2_malenia.training.dataset_knowledge import normalise_name

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
# dataset.json fields that every merged dataset must share (nnU-Net reads one value per dataset)
SHARED_FIELDS = ("channel_names", "file_ending", "overwrite_image_reader_writer")
DECLARED_LABEL_LISTS = ("lesion_labels", "organ_labels")  # dataset.json "malenia" entries holding label values


@dataclass
class SourceDataset:
    """One dataset to merge: its folder, dataset.json, nnU-Net's case list and its label renumbering."""

    name: str  # DatasetXXX_Name
    folder: Path
    dataset_json: dict
    cases: dict[str, dict]  # nnU-Net's {case: {"images": [...], "label": path}}
    lut: dict[int, int] = field(default_factory=dict)  # source label value -> merged value
    new_ids: dict[str, str] = field(default_factory=dict)  # source case id -> merged case id

    @property
    def short_name(self) -> str:
        return self.name.split("_", 1)[1] if "_" in self.name else self.name

    @property
    def malenia(self) -> dict:
        return self.dataset_json.get("malenia") or {}


# ------------------------------------------------------------------------------------ sources
def resolve_dataset(spec: str | int, raw_root: Path) -> Path:
    """$nnUNet_raw/DatasetXXX_Name from an id (3 or "003") or a full folder name."""
    text = str(spec)
    if text.startswith("Dataset"):
        folder = raw_root / text
        if not folder.is_dir():
            raise MaleniaError(f"-d {text}: no folder {folder}")
        return folder
    if not text.isdigit():
        raise MaleniaError(f"-d {text}: expected a dataset id (e.g. 3) or a folder name (e.g. Dataset003_Liver)")
    found = sorted(p for p in raw_root.glob(f"Dataset{int(text):03d}_*") if p.is_dir())
    if len(found) != 1:
        what = "no dataset" if not found else f"{len(found)} datasets ({', '.join(p.name for p in found)})"
        raise MaleniaError(f"-d {text}: {what} with id {int(text):03d} in {raw_root}; give an id that names exactly "
                           "one raw dataset")
    return found[0]


def load_source(folder: Path) -> SourceDataset:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    path = folder / "dataset.json"
    try:
        dataset_json = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaleniaError(f"{path}: missing; every merged dataset needs nnU-Net's dataset.json") from None
    except ValueError as e:
        raise MaleniaError(f"{path}: not valid JSON ({e})") from None
    for key in ("labels", "channel_names", "file_ending"):
        if key not in dataset_json:
            raise MaleniaError(f"{path}: no {key!r} field; it is not an nnU-Net v2 dataset.json")
    cases = get_filenames_of_train_images_and_targets(str(folder), dataset_json)
    if not cases:
        raise MaleniaError(f"{folder}: no training cases (imagesTr is empty)")
    return SourceDataset(folder.name, folder, dataset_json, cases)


def check_compatible(sources: Sequence[SourceDataset]) -> None:
    """Channels, file ending and reader must agree: the merged dataset has one of each."""
    first = sources[0]
    for field_name in SHARED_FIELDS:
        ours = first.dataset_json.get(field_name)
        for other in sources[1:]:
            theirs = other.dataset_json.get(field_name)
            if field_name == "channel_names":
                ours_, theirs_ = ({str(k): v for k, v in (d or {}).items()} for d in (ours, theirs))
                if ours_ != theirs_:
                    raise MaleniaError(f"{other.name}: channel_names {theirs_} differ from {first.name}'s {ours_}; "
                                       "merged datasets need the same input channels in the same order (edit "
                                       f"{other.name}/dataset.json or leave it out)")
            elif theirs != ours:
                hint = (f"convert {other.name}'s images and labels to {ours!r} first" if field_name == "file_ending"
                        else "use the same reader for every dataset")
                raise MaleniaError(f"{other.name}: {field_name} {theirs!r} differs from {first.name}'s {ours!r}; "
                                   f"{hint}")


# ------------------------------------------------------------------------------------ labels
def unite_labels(sources: Sequence[SourceDataset]) -> dict[str, int]:
    """The merged "labels" {name: value}; fills each source's `lut`. Names match as the trainer
    matches lesion labels (case and "_" ignored); the first spelling met is kept."""
    merged: dict[str, int] = {}
    value_of: dict[str, int] = {}  # normalised name -> merged value
    for source in sources:
        seen: dict[str, str] = {}
        items = []
        for name, value in source.dataset_json["labels"].items():
            if isinstance(value, (list, tuple)) or isinstance(value, bool) or not isinstance(value, int):
                raise MaleniaError(f"{source.name}/dataset.json: label {name!r} has value {value!r}; merging needs "
                                   "plain integer labels, not regions (see docs/real_data.md, section 2)")
            key = normalise_name(name)
            if key in seen:
                raise MaleniaError(f"{source.name}/dataset.json: labels {seen[key]!r} and {name!r} have the same name "
                                   "once case and '_' are ignored; rename one")
            seen[key] = name
            items.append((int(value), key, name))
        items.sort()
        if not items or items[0][0] != 0:
            raise MaleniaError(f"{source.name}/dataset.json: no label with value 0 (background)")
        background = items[0][1]
        for value, key, name in items:
            if value == 0:
                source.lut[0] = 0
                continue
            if key in (background, "background"):
                raise MaleniaError(f"{source.name}/dataset.json: label {name!r} ({value}) has the background's name")
            if key not in value_of:
                value_of[key] = len(value_of) + 1
                merged[name] = value_of[key]
            source.lut[value] = value_of[key]
    return {"background": 0, **merged}


# ------------------------------------------------------------------------------------ case ids
def assign_case_ids(sources: Sequence[SourceDataset]) -> None:
    """Fill each source's `new_ids`: ids stay unless several datasets use one; then every user of it
    gets its dataset's name as prefix (the full folder name if the short names collide too)."""
    owners: dict[str, int] = {}
    for source in sources:
        for case in source.cases:
            owners[case] = owners.get(case, 0) + 1
    for prefix in (lambda s: s.short_name, lambda s: s.name):
        for source in sources:
            source.new_ids = {case: (f"{prefix(source)}_{case}" if owners[case] > 1 else case) for case in source.cases}
        all_ids = [i for s in sources for i in s.new_ids.values()]
        if len(set(all_ids)) == len(all_ids):
            return
    duplicates = sorted({i for i in all_ids if all_ids.count(i) > 1})
    raise MaleniaError(f"case id {duplicates[0]} stays ambiguous even with dataset-name prefixes; rename it in one "
                       "of the datasets")


# ------------------------------------------------------------------------------------ malenia metadata
def _table_identity(source: SourceDataset) -> tuple[str, Any]:
    """What knowledge table a source trains with: ("files", contents) for a table beside the data,
    ("ref", name or path) for a shipped or external one."""
    import yaml

    ref = source.malenia.get("knowledge_table", DEFAULT_KNOWLEDGE_TABLE)
    table = source.folder / ref
    if not table.is_file():
        return "ref", ref
    files = {ref: table.read_bytes()}
    vocab_ref = (yaml.safe_load(files[ref]) or {}).get("vocabulary")
    if isinstance(vocab_ref, str) and (table.parent / vocab_ref).is_file():
        files[str(Path(ref).parent / vocab_ref)] = (table.parent / vocab_ref).read_bytes()
    return "files", tuple(sorted(files.items()))


def merged_malenia_section(sources: Sequence[SourceDataset], staging: Path) -> dict:
    """dataset.json's "malenia" entry of the merged dataset: one knowledge table for all (copied
    beside the data if the sources keep it there), declared label lists renumbered."""
    identities = [_table_identity(s) for s in sources]
    for source, identity in zip(sources[1:], identities[1:]):
        if identity != identities[0]:
            describe = {s.name: (s.malenia.get("knowledge_table", DEFAULT_KNOWLEDGE_TABLE) +
                                 (" (a file beside the data)" if i[0] == "files" else ""))
                        for s, i in ((sources[0], identities[0]), (source, identity))}
            raise MaleniaError(f"{source.name} trains with knowledge table {describe[source.name]}, {sources[0].name} "
                               f"with {describe[sources[0].name]}: one model needs one table; give every dataset the "
                               "same dataset.json malenia.knowledge_table")
    section: dict[str, Any] = {}
    kind, value = identities[0]
    if kind == "files":
        for relative, content in value:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(content)
        section["knowledge_table"] = sources[0].malenia["knowledge_table"]
    elif any("knowledge_table" in s.malenia for s in sources):
        section["knowledge_table"] = value
    for key in DECLARED_LABEL_LISTS:
        declaring = [s for s in sources if key in s.malenia]
        if declaring and len(declaring) < len(sources):
            missing = next(s for s in sources if key not in s.malenia)
            raise MaleniaError(f"{declaring[0].name}/dataset.json declares malenia.{key}, {missing.name}/dataset.json "
                               "does not: declare it in every dataset or in none")
        if declaring:
            section[key] = sorted({s.lut[int(v)] for s in sources for v in s.malenia[key]})
    return section


def merge_lesion_attributes(sources: Sequence[SourceDataset]) -> dict | None:
    """The sources' lesion_attributes.json as one document (merged case ids and label values), or
    None when no source has one. Cases that were not merged (e.g. test cases) are left out."""
    merged: dict[str, dict] = {}
    vocabulary, parts = None, []
    for source in sources:
        path = source.folder / source.malenia.get("lesion_attributes", LESION_ATTRIBUTES_FILENAME)
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise MaleniaError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("cases"), dict):
            raise MaleniaError(f"{path}: expected {{'schema_version': 1, 'vocabulary': ..., 'cases': {{...}}}}; "
                               "check it with malenia tables check")
        if vocabulary is None:
            vocabulary, first = data.get("vocabulary"), source.name
        elif data.get("vocabulary") != vocabulary:
            raise MaleniaError(f"{path}: written for vocabulary {data.get('vocabulary')!r}, {first}'s for "
                               f"{vocabulary!r}; re-import both with the same --vocabulary")
        parts.append(f"{source.name} ({data.get('source') or path.name})")
        for case, labels in data["cases"].items():
            if case not in source.new_ids:
                continue
            if not isinstance(labels, dict):
                raise MaleniaError(f"{path}: case {case!r}: expected a mapping label -> lesion record")
            renumbered = {}
            for label, record in labels.items():
                if not str(label).isdigit() or int(label) not in source.lut:
                    raise MaleniaError(f"{path}: case {case!r} has a record for label {label!r}, which "
                                       f"{source.name}/dataset.json 'labels' does not name; fix the file")
                renumbered[str(source.lut[int(label)])] = record
            merged[source.new_ids[case]] = renumbered
    if vocabulary is None:
        return None
    return {"schema_version": 1, "vocabulary": vocabulary, "source": "malenia merge-datasets: " + "; ".join(parts),
            "cases": dict(sorted(merged.items()))}


# ------------------------------------------------------------------------------------ files
def _link_or_copy(source: Path, target: Path, copy: bool) -> None:
    """Hard links cost no space (nnU-Net never writes into raw images); across file systems, a copy."""
    if not copy:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def renumber_label_map(reader_writer, source_file: str, target_file: Path, lut: dict[int, int], dataset: str) -> None:
    """Read with nnU-Net's reader for the file type, renumber, write with its writer: the label map
    keeps the source's geometry (spacing, origin, direction) through nnU-Net's properties."""
    seg, properties = reader_writer.read_seg(source_file)
    values = np.unique(seg).astype(np.int64)
    unknown = [int(v) for v in values if int(v) not in lut]
    if unknown:
        raise MaleniaError(f"{source_file}: holds label value {unknown[0]}, which {dataset}/dataset.json 'labels' does "
                           "not name; fix the label map or add the label")
    table = np.zeros(int(values.max()) + 1 if values.size else 1, dtype=np.int64)
    for old, new in lut.items():
        if old < table.size:
            table[old] = new
    reader_writer.write_seg(table[seg[0].astype(np.int64)], str(target_file), properties)


def write_case(source: SourceDataset, case: str, reader_writer, staging: Path, file_ending: str, copy: bool) -> None:
    new_id = source.new_ids[case]
    files = source.cases[case]
    for channel, image in enumerate(files["images"]):
        _link_or_copy(Path(image), staging / "imagesTr" / f"{new_id}_{channel:04d}{file_ending}", copy)
    renumber_label_map(reader_writer, files["label"], staging / "labelsTr" / f"{new_id}{file_ending}", source.lut,
                       source.name)


# ------------------------------------------------------------------------------------ driver
def check_target(raw_root: Path, dataset_id: int, name: str) -> Path:
    """The new dataset's folder; errors if its id or name is taken (nnU-Net needs unique ids)."""
    if not 1 <= dataset_id <= 999:
        raise MaleniaError(f"-o {dataset_id}: dataset ids run from 1 to 999")
    if not NAME_PATTERN.fullmatch(name):
        raise MaleniaError(f"--name {name!r}: use letters, digits, '_' and '-' only (nnU-Net folder names)")
    target = raw_root / f"Dataset{dataset_id:03d}_{name}"
    if target.exists():
        raise MaleniaError(f"{target} already exists; choose another -o/--name or remove that folder")
    roots = [raw_root] + [Path(os.environ[v]) for v in ("nnUNet_preprocessed", "nnUNet_results") if os.environ.get(v)]
    for root in roots:
        for other in (root.glob(f"Dataset{dataset_id:03d}_*") if root.is_dir() else ()):
            if other.name != target.name:
                raise MaleniaError(f"dataset id {dataset_id} is already used by {other}; nnU-Net needs unique ids: "
                                   "choose another -o or remove that folder")
    return target


def merge_datasets(datasets: Sequence[str | int], dataset_id: int, name: str, raw_root: str | Path | None = None,
                   copy: bool = False, progress: bool = True,
                   log: Callable[[str], None] = lambda message: None) -> Path:
    """Merge the raw datasets `datasets` (ids or folder names) into $nnUNet_raw/DatasetID_NAME.

    Returns the new folder. Raises MaleniaError before writing anything for incompatible inputs,
    and leaves nothing behind when interrupted.
    """
    from tqdm import tqdm
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    raw_root = Path(raw_root or os.environ.get("nnUNet_raw") or "")
    if not str(raw_root) or not raw_root.is_dir():
        raise MaleniaError(f"$nnUNet_raw is not set or not a folder ({raw_root}); export nnUNet_raw=/path/to/nnUNet_raw")
    folders = [resolve_dataset(d, raw_root) for d in datasets]
    if len(folders) < 2 or len(set(folders)) < len(folders):
        raise MaleniaError(f"-d: give at least two different datasets, got {', '.join(f.name for f in folders)}")
    target = check_target(raw_root, dataset_id, name)
    sources = [load_source(f) for f in folders]
    check_compatible(sources)
    labels = unite_labels(sources)
    assign_case_ids(sources)
    file_ending = sources[0].dataset_json["file_ending"]
    attributes = merge_lesion_attributes(sources)

    staging = raw_root / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "imagesTr").mkdir(parents=True)
        (staging / "labelsTr").mkdir()
        section = merged_malenia_section(sources, staging)
        total = sum(len(s.cases) for s in sources)
        with tqdm(total=total, desc="merge", unit="case", disable=not progress) as bar:
            for source in sources:
                example = source.cases[next(iter(source.cases))]["label"]
                reader_writer = determine_reader_writer_from_dataset_json(source.dataset_json, example,
                                                                          verbose=False)()
                for case in source.cases:
                    write_case(source, case, reader_writer, staging, file_ending, copy)
                    bar.update(1)
        if attributes is not None:
            write_json_atomic(staging / LESION_ATTRIBUTES_FILENAME, attributes)
            section["lesion_attributes"] = LESION_ATTRIBUTES_FILENAME
        AnnotatedLabels(
            {s.new_ids[c]: frozenset(v for v in s.lut.values() if v) for s in sources for c in s.cases},
            {s.name: {"labels": sorted(v for v in s.lut.values() if v), "num_cases": len(s.cases)} for s in sources},
        ).save(staging / ANNOTATED_LABELS_FILENAME)
        dataset_json = {
            "channel_names": sources[0].dataset_json["channel_names"],
            "labels": labels,
            "numTraining": total,
            "file_ending": file_ending,
            "name": name,
            "description": f"Merged by malenia merge-datasets from {', '.join(s.name for s in sources)}; each case "
                           f"annotates only its source's labels ({ANNOTATED_LABELS_FILENAME}).",
            **({"overwrite_image_reader_writer": sources[0].dataset_json["overwrite_image_reader_writer"]}
               if "overwrite_image_reader_writer" in sources[0].dataset_json else {}),
            **({"malenia": section} if section else {}),
        }
        write_json_atomic(staging / "dataset.json", dataset_json)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for source in sources:
        renamed = sum(case != new for case, new in source.new_ids.items())
        log(f"{source.name}: {len(source.cases)} cases, labels " +
            ", ".join(f"{old}->{new}" for old, new in sorted(source.lut.items()) if old) +
            (f"; {renamed} case ids prefixed with {source.short_name!r} (shared with another dataset)" if renamed else ""))
    return target
