"""The frozen text tower: open_clip's text-tower builder and tokenizers, weights loaded offline.

Only the text tower is built (open_clip's `_build_text_tower`), never the vision tower, so a
CLIP or BiomedCLIP checkpoint costs its text half in memory. The tower embeds the vocabulary's
value phrases once, outside training (see `embedding_bank.py`); it is frozen and in eval mode.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.text.sources import TowerSource, import_open_clip, resolve_tower_source
from nnunetv2_malenia.text.spec import DEFAULT_TOWER, TextTowerSpec

CLIP_ONLY_KEYS = ("logit_scale", "logit_bias")
# buffers older transformers saved in checkpoints and newer ones no longer keep
STALE_BUFFER_SUFFIXES = (".position_ids", ".token_type_ids")


class FrozenTextTower:
    """An open_clip text tower with its tokenizer: phrases in, L2-normalised float32 vectors out."""

    def __init__(self, module: torch.nn.Module, tokenizer, identity: dict, spec: TextTowerSpec,
                 device: str | torch.device = "cpu"):
        self.module = module.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.identity = dict(identity)
        self.spec = spec
        self.device = torch.device(device)

    @property
    def embed_dim(self) -> int:
        return int(self.identity["embed_dim"])

    def encode(self, phrases: Sequence[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Embed phrases as an [N, D] float32 tensor of unit vectors (batched, no grad)."""
        from tqdm.auto import tqdm

        phrases = list(phrases)
        out = []
        with torch.no_grad(), tqdm(total=len(phrases), unit="phrase", disable=not progress,
                                   desc=f"embedding with {self.identity['name']}") as bar:
            for start in range(0, len(phrases), batch_size):
                tokens = self.tokenizer(phrases[start:start + batch_size]).to(self.device)
                features = self.module(tokens)
                if isinstance(features, tuple):  # towers built with output_tokens
                    features = features[0]
                if features.shape[-1] != self.embed_dim:
                    raise MaleniaError(f"text tower {self.identity['name']} gives {features.shape[-1]}-d vectors, "
                                       f"its config says embed_dim {self.embed_dim}; fix embed_dim in the config")
                out.append(F.normalize(features.float(), dim=-1).cpu())
                bar.update(len(tokens))
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)


def tower_identity(spec: str | TextTowerSpec = DEFAULT_TOWER, cache_dir: str | os.PathLike | None = None) -> dict:
    """{name, weights_sha256, embed_dim} of a tower, from its files alone (nothing is built)."""
    return resolve_tower_source(spec).identity(cache_dir)


def load_text_tower(spec: str | TextTowerSpec = DEFAULT_TOWER, cache_dir: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> FrozenTextTower:
    """Build the text tower a spec names, offline, frozen and in eval mode.

    `cache_dir` only holds the remembered weights hashes (see `files.sha256_file`).
    """
    source = resolve_tower_source(spec)
    identity = source.identity(cache_dir)
    module = build_text_module(source)
    return FrozenTextTower(module, make_tokenizer(source), identity, source.spec, device)


def build_text_module(source: TowerSource) -> torch.nn.Module:
    """open_clip's text tower for the source's config, with the source's weights."""
    import_open_clip()
    from open_clip.model import _build_text_tower

    cfg = source.model_cfg
    try:
        with _seeded(source.init_seed), _quiet_transformers():
            module = _build_text_tower(cfg["embed_dim"], dict(cfg["text_cfg"]), quick_gelu=cfg.get("quick_gelu", False))
    except (TypeError, ValueError, OSError) as e:
        raise MaleniaError(f"cannot build text tower {source.name} (--tower {source.spec}): "
                           f"{type(e).__name__}: {_first_line(e)}") from None
    if source.checkpoint is not None:
        load_text_weights(module, source)
    return module


def make_tokenizer(source: TowerSource):
    """open_clip's tokenizer for the tower: HFTokenizer for HF towers (a local folder), else open_clip's choice."""
    import_open_clip()
    from open_clip import get_tokenizer
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer, SimpleTokenizer

    text_cfg = source.model_cfg["text_cfg"]
    context_length = text_cfg.get("context_length") or DEFAULT_CONTEXT_LENGTH
    kwargs = dict(text_cfg.get("tokenizer_kwargs") or {})
    try:
        if text_cfg.get("hf_tokenizer_name"):
            return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=context_length,
                               tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs)
        if source.open_clip_name:
            return get_tokenizer(source.open_clip_name, context_length=context_length)
        return SimpleTokenizer(context_length=context_length, **kwargs)
    except (OSError, ValueError) as e:
        raise MaleniaError(f"cannot load the tokenizer of text tower {source.name} offline (--tower {source.spec}): "
                           f"{_first_line(e)}; see docs/text_tower.md") from None


def text_tower_state_dict(state_dict: dict) -> dict:
    """The text-tower subset of a full checkpoint, keyed like open_clip's text tower module.

    CustomTextCLIP (HF text, BiomedCLIP) keeps the tower under `text.`; CLIP keeps its text
    weights at top level beside `visual.*` and the logit scale/bias.
    """
    if any(k.startswith("text.") for k in state_dict):
        return {k[len("text."):]: v for k, v in state_dict.items() if k.startswith("text.")}
    return {k: v for k, v in state_dict.items() if not k.startswith("visual.") and k not in CLIP_ONLY_KEYS}


def load_text_weights(module: torch.nn.Module, source: TowerSource) -> None:
    """Strictly load the checkpoint's text weights: a file of another model fails with the keys named."""
    import_open_clip()
    from open_clip.factory import load_state_dict

    path = source.checkpoint
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            full = load_state_dict(str(path))
    except RuntimeError as e:
        if "TorchScript" not in str(e):
            raise MaleniaError(f"{path}: cannot read as a weights file ({_first_line(e)}); supply a "
                               f".safetensors/.bin/.pt checkpoint of {source.name}") from None
        full = _torchscript_state_dict(path)
    except Exception as e:  # torch/safetensors raise many types for a file that is not a checkpoint
        raise MaleniaError(f"{path}: cannot read as a weights file ({type(e).__name__}: {_first_line(e)}); "
                           f"supply a .safetensors/.bin/.pt checkpoint of {source.name}") from None
    expected = set(module.state_dict())
    recomputed = {name for name, _ in module.named_buffers()} - expected  # e.g. the causal attn_mask
    state = {k: v for k, v in text_tower_state_dict(full).items()
             if k in expected or not (k in recomputed or k.endswith(STALE_BUFFER_SUFFIXES))}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        parts = [f"{len(keys)} {what} key(s), e.g. {', '.join(keys[:3])}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise MaleniaError(f"{path}: does not hold the text tower of {source.name} ({'; '.join(parts)}); check "
                           f"that the name before ':' in --tower {source.spec} matches the checkpoint")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        mismatches = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        detail = mismatches[0] if mismatches else _first_line(e)
        raise MaleniaError(f"{path}: does not fit the text tower of {source.name} ({detail}"
                           f"{f' and {len(mismatches) - 1} more' if len(mismatches) > 1 else ''}); check that the "
                           f"name before ':' in --tower {source.spec} matches the checkpoint") from None


def _torchscript_state_dict(path) -> dict:
    """OpenAI's original CLIP files are TorchScript archives, which torch.load(weights_only=True) refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):  # scalars OpenAI stored beside weights
        state.pop(key, None)
    return state


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Random towers are made from a fixed seed without touching the caller's RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers reports the (expected) unused pooler weights of MiniLM as a warning table; hide it."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
