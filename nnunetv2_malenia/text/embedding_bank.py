"""The embedding bank: one unit vector per vocabulary value phrase, and the cache behind it.

Why a bank: the text tower is frozen and never runs in a training step, so each phrase is
embedded once; the trainer loads the bank and stores it in the checkpoint, with the tower's
identity, so inference never needs the tower. Why a per-phrase cache keyed by tower identity:
editing a vocabulary (or switching between vocabularies) only embeds the new phrases, and a
second `malenia embed` computes nothing and does not even build the tower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia._atomic import atomic_write
from nnunetv2_malenia.text.files import resolve_cache_dir, sha256_text, slug
from nnunetv2_malenia.text.sources import resolve_tower_source
from nnunetv2_malenia.text.spec import DEFAULT_TOWER, TextTowerSpec, parse_tower_spec
from nnunetv2_malenia.text.tower import load_text_tower

BANK_FORMAT = "malenia-text-embedding-bank"
CACHE_FORMAT = "malenia-text-embedding-cache"
FORMAT_VERSION = 1


def identity_key(identity: dict) -> str:
    """A short stable key of a tower identity (file names, quick comparisons)."""
    return sha256_text(repr(sorted(identity.items())))[:16]


def describe_identity(identity: dict) -> str:
    return (f"{identity.get('name')} (weights sha256 {str(identity.get('weights_sha256'))[:12]}..., "
            f"{identity.get('embed_dim')}-d)")


def spec_hint(identity: dict) -> str:
    """A --tower value that rebuilds a tower known only by its identity (for "re-run" hints)."""
    name = str(identity.get("name"))
    if name == "all-MiniLM-L6-v2":
        return "default"
    if name == "tiny-random" and identity == resolve_tower_source("tiny-random").identity():
        return name
    if name.startswith("hf-hub:"):
        return name
    if name.startswith("local-dir:"):
        return f"local-dir:/path/to/{name[len('local-dir:'):]}"
    return f"{name}:/path/to/weights.safetensors"


@dataclass(frozen=True, eq=False)
class EmbeddingBank:
    """Phrases and their embeddings [V, D] (row i is phrase i), with what made them."""

    phrases: tuple[str, ...]
    embeddings: torch.Tensor
    tower: dict  # tower identity: {name, weights_sha256, embed_dim}
    vocabulary_fingerprint: str
    vocabulary_name: str = ""
    tower_spec: str = ""  # the --tower value used, quoted back in "re-run" hints
    vocabulary_ref: str = ""  # the --vocabulary value that loads the vocabulary (shipped name or path)
    n_computed: int = field(default=0, compare=False)  # phrases embedded by the call that made it (not saved)

    def __post_init__(self) -> None:
        if tuple(self.embeddings.shape) != (len(self.phrases), int(self.tower["embed_dim"])):
            raise ValueError(f"embeddings of shape {tuple(self.embeddings.shape)} do not fit "
                             f"{len(self.phrases)} phrases of a {self.tower['embed_dim']}-d tower")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingBank):
            return NotImplemented
        fields = ("phrases", "tower", "vocabulary_fingerprint", "vocabulary_name", "tower_spec", "vocabulary_ref")
        return (all(getattr(self, f) == getattr(other, f) for f in fields)
                and torch.equal(self.embeddings, other.embeddings))

    __hash__ = None  # mutable tensor inside

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def cache_hit(self) -> bool:
        return self.n_computed == 0

    def to_dict(self) -> dict:
        """Plain content (lists, str, one tensor): what `save` writes and checkpoints can store."""
        return {"format": BANK_FORMAT, "version": FORMAT_VERSION, "phrases": list(self.phrases),
                "embeddings": self.embeddings.detach().cpu().float().contiguous(), "tower": dict(self.tower),
                "tower_spec": self.tower_spec, "vocabulary_name": self.vocabulary_name,
                "vocabulary_ref": self.vocabulary_ref, "vocabulary_fingerprint": self.vocabulary_fingerprint}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<memory>") -> "EmbeddingBank":
        if not isinstance(data, dict) or data.get("format") != BANK_FORMAT:
            raise MaleniaError(f"{source}: not a Malenia text embedding bank; write one with "
                               "`malenia embed --out FILE`")
        if data.get("version") != FORMAT_VERSION:
            raise MaleniaError(f"{source}: embedding bank version {data.get('version')!r}, this version reads "
                               f"{FORMAT_VERSION}; re-run `malenia embed --out {source}`")
        try:
            return cls(tuple(data["phrases"]), data["embeddings"], dict(data["tower"]), data["vocabulary_fingerprint"],
                       data.get("vocabulary_name", ""), data.get("tower_spec", ""), data.get("vocabulary_ref", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MaleniaError(f"{source}: damaged embedding bank ({type(e).__name__}: {e}); "
                               f"re-run `malenia embed --out {source}`") from None

    def save(self, path: str | os.PathLike) -> Path:
        """One file, written atomically (temp file in the same folder, then os.replace)."""
        data = self.to_dict()
        return atomic_write(Path(path), lambda tmp: torch.save(data, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike, tower: dict | str | TextTowerSpec | None = None, vocabulary=None,
             cache_dir: str | os.PathLike | None = None) -> "EmbeddingBank":
        """Read a bank; with `tower` (identity or spec) and/or `vocabulary`, check it was made for them."""
        path = Path(path)
        if not path.is_file():
            raise MaleniaError(f"embedding bank not found: {path}; write it with `malenia embed --out {path}`")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise MaleniaError(f"{path}: cannot read as an embedding bank ({type(e).__name__}); "
                               f"re-run `malenia embed --out {path}`") from None
        bank = cls.from_dict(data, str(path))
        if tower is not None:
            bank.check_tower(tower, path, cache_dir)
        if vocabulary is not None:
            bank.check_vocabulary(vocabulary, path)
        return bank

    def check_tower(self, tower: dict | str | TextTowerSpec, where: object = "embedding bank",
                    cache_dir: str | os.PathLike | None = None) -> None:
        """Raise if the bank was embedded by another tower than `tower` (an identity dict or a spec)."""
        spec = None
        if not isinstance(tower, dict):
            spec = parse_tower_spec(tower)
            tower = resolve_tower_source(spec).identity(cache_dir)
        if dict(tower) != self.tower:
            rerun = f"malenia embed --tower {spec or spec_hint(tower)}{_vocabulary_option(self.vocabulary_ref)} " \
                    f"--out {where}"
            raise MaleniaError(f"{where} was embedded with text tower {describe_identity(self.tower)}, but tower "
                               f"{describe_identity(tower)} is expected; re-run `{rerun}`")

    def check_vocabulary(self, vocabulary, where: object = "embedding bank") -> None:
        """Raise if the bank's phrases are not exactly the vocabulary's (same order = same indices)."""
        if vocabulary.fingerprint != self.vocabulary_fingerprint or tuple(vocabulary.phrases) != self.phrases:
            raise MaleniaError(
                f"{where} was embedded for vocabulary {self.vocabulary_name!r} (fingerprint "
                f"{self.vocabulary_fingerprint}), but vocabulary {vocabulary.name!r} (fingerprint "
                f"{vocabulary.fingerprint}) is in use; re-run `malenia embed"
                f"{_vocabulary_option(vocabulary_ref(vocabulary))} --tower {self.tower_spec or 'SPEC'} --out {where}`")


class EmbeddingCache:
    """All phrases ever embedded by one tower: one file per tower identity under the cache folder.

    Entries are only added; concurrent writers each replace the file atomically, so the worst
    case is a lost entry that is recomputed next time, never a damaged file.
    """

    def __init__(self, cache_dir: str | os.PathLike | None, identity: dict):
        self.identity = dict(identity)
        self.path = resolve_cache_dir(cache_dir) / f"{slug(identity['name'])}-{identity_key(identity)}.pt"

    def read(self) -> dict[str, torch.Tensor]:
        if not self.path.is_file():
            return {}
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:
            return {}  # a damaged cache only costs a recomputation
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("tower") != self.identity:
            return {}
        return dict(zip(data["phrases"], data["embeddings"]))

    def lookup(self, phrases: Sequence[str]) -> dict[str, torch.Tensor]:
        stored = self.read()
        return {p: stored[p] for p in phrases if p in stored}

    def add(self, phrases: Sequence[str], embeddings: torch.Tensor) -> None:
        stored = self.read()
        stored.update(zip(phrases, embeddings))
        names = list(stored)
        data = {"format": CACHE_FORMAT, "version": FORMAT_VERSION, "tower": self.identity, "phrases": names,
                "embeddings": torch.stack([stored[p] for p in names]).float().contiguous()}
        atomic_write(self.path, lambda tmp: torch.save(data, tmp))


def embed_phrases(phrases: Sequence[str], tower_spec: str | TextTowerSpec = DEFAULT_TOWER,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[torch.Tensor, dict, int]:
    """Embeddings [N, D] of phrases, their tower identity, and how many had to be computed.

    The identity comes from the weights files alone; the tower is built only for phrases the
    cache lacks.
    """
    spec = parse_tower_spec(tower_spec)
    identity = resolve_tower_source(spec).identity(cache_dir)
    cache = EmbeddingCache(cache_dir, identity)
    found = cache.lookup(phrases)
    missing = list(dict.fromkeys(p for p in phrases if p not in found))
    if missing:
        tower = load_text_tower(spec, cache_dir)
        computed = tower.encode(missing, progress=progress)
        cache.add(missing, computed)
        found.update(zip(missing, computed))
    rows = [found[p] for p in phrases]
    embeddings = torch.stack(rows).float() if rows else torch.empty(0, identity["embed_dim"])
    return embeddings, identity, len(missing)


def embed_vocabulary(vocabulary, tower_spec: str | TextTowerSpec = DEFAULT_TOWER,
                     cache_dir: str | os.PathLike | None = None, progress: bool = True) -> EmbeddingBank:
    """The bank of a vocabulary (a `Vocabulary`, or a shipped name / file path) for a tower."""
    if isinstance(vocabulary, (str, os.PathLike)):
        from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary

        vocabulary = load_vocabulary(vocabulary)
    spec = parse_tower_spec(tower_spec)
    embeddings, identity, n_computed = embed_phrases(vocabulary.phrases, spec, cache_dir, progress)
    return EmbeddingBank(tuple(vocabulary.phrases), embeddings, identity, vocabulary.fingerprint, vocabulary.name,
                         spec.text, vocabulary_ref(vocabulary), n_computed)


def vocabulary_ref(vocabulary) -> str:
    """What to pass to `--vocabulary` to load this vocabulary again: a shipped table's name, else its path."""
    from nnunetv2_malenia.knowledge.builtin import builtin_tables_dir

    source = Path(vocabulary.source)
    if source.suffix == ".yaml" and source.parent.resolve() == builtin_tables_dir().resolve():
        return source.stem
    return str(vocabulary.source)


def _vocabulary_option(ref: str) -> str:
    from nnunetv2_malenia.knowledge.builtin import DEFAULT_VOCABULARY

    return f" --vocabulary {ref}" if ref and ref != DEFAULT_VOCABULARY else ""
