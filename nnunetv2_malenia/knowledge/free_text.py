"""Free-text lesion descriptions -> knowledge-table rows (referring lesion segmentation).

A user describes a lesion in plain English ("round, hypodense, homogeneous lesion with a thin
cystic wall in the pancreatic body"); Malenia only reads knowledge-table rows, so the text is
turned into one row over the closed attribute vocabulary, in two stages:

1. Exact mentions. A vocabulary phrase written in the text (case-insensitive, hyphens and spaces
   alike, a plural "s" on any word, and a trailing generic noun "lesion"/"margin" optional, so
   "hypodense" mentions "hypodense lesion") always wins: the phrase's type takes exactly the
   phrases mentioned, similarity is not asked. Longer phrases are matched first, so "no close
   relationship with adjacent organs" is not also read as "close relationship ...".
2. Similarity, for the types no phrase was mentioned for. What is left of the text is split
   into clauses (at , ; : . ( ) / and the words and, with, without, in, but, while, whose, which,
   that, at, on: these mostly start a new attribute in a radiology sentence), and each clause
   and each of its words (runs of up to `max_span_words` words: "spans") is embedded with the
   text tower, the same tower that embedded the vocabulary for the model (optionally,
   `skip_generic`, short spans made only of words two values of a type share, "margins",
   "adjacent", are not asked: measured worse, since with the negation rule below they still
   carry the value). A span's score for a value is its cosine plus `lexical` x the share of the
   value's words it repeats (the tower alone finds "right lobe of the liver" as close to "left
   hepatic lobe" as to "right hepatic lobe"). A span speaks only of the type of its single
   most similar value (so "in the right lobe of the liver" gives a location and nothing else). Per
   type, each value scores the best cosine similarity of the spans that speak of the type; the
   values taken are the top k (k = 1, 2 or 3, never all of the type's values) whose scores are at
   least `threshold` and lie at least `margin` above the next value's: "clearly above the rest"
   (the measured best margin is 0, i.e. the best value alone, see docs/free_text.md).
   A type with no such values is left empty, and table scoring counts an empty type as chance
   (DiseaseHead: any value of the type, equally likely, whatever the token reads).

Negation: a clause holding no, not, without, none, nothing, away, separate, apart or free is
negated; it (and its spans) can only speak for values that are negations themselves ("no specific
features", "no close relationship ..."), and a positive clause only for positive values. Exact
mentions in a negated clause are dropped ("without calcified foci"). The small text tower cannot
tell "touching" from "away from" by similarity alone; this rule does.

The threshold and margin were measured on paraphrases of the synthetic benchmark's rows for the
default tower (benchmarks/bench_free_text.py, docs/free_text.md); another tower may want others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import numpy as np

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.knowledge_table import DiseaseRow, KnowledgeTable
from nnunetv2_malenia.knowledge.vocabulary import Vocabulary

# measured with benchmarks/bench_free_text.py on the default tower (docs/free_text.md)
SIMILARITY_THRESHOLD = 0.5
SIMILARITY_MARGIN = 0.0
LEXICAL_WEIGHT = 0.1
SKIP_GENERIC_SPANS = False
MAX_SPAN_WORDS = 1
MAX_VALUES_PER_TYPE = 3

NEGATION_CUES = ("no", "not", "without", "none", "nothing", "away", "separate", "apart", "free")
SPLIT_WORDS = ("and", "with", "in", "but", "while", "whose", "which", "that", "at", "on")
OPTIONAL_TRAILING_NOUNS = ("lesion", "margin")
STOPWORDS = frozenset({
    "a", "an", "the", "its", "it", "their", "is", "are", "was", "be", "of", "to", "as", "from", "by", "like", "some",
    "very", "small", "large", "few", "seen", "shows", "showing", "lesion", "mass", "nodule", "tumor", "tumour",
    "spot", "inside", "within", "other", "else", "any", "than", "into", "after", "or", "and", "for",
})
DESCRIPTION_SOURCE = "free-text description"

Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ParseSettings:
    """How clearly a value must stand out to be taken by similarity (see the module docstring)."""

    threshold: float = SIMILARITY_THRESHOLD
    margin: float = SIMILARITY_MARGIN
    lexical: float = LEXICAL_WEIGHT  # bonus x share of the phrase's words the span repeats
    skip_generic: bool = SKIP_GENERIC_SPANS  # do not ask short spans made only of words values share
    max_span_words: int = MAX_SPAN_WORDS
    max_values: int = MAX_VALUES_PER_TYPE


@dataclass(frozen=True)
class Evidence:
    """Why a value was taken: the text that mentions it, and the similarity (None: an exact mention)."""

    value: str
    text: str
    similarity: float | None = None

    def describe(self) -> str:
        if self.similarity is None:
            return f'exact: "{self.text}"'
        return f'"{self.text}" (cos {self.similarity:.2f})'


@dataclass(frozen=True)
class ParsedDescription:
    """A description turned into a row: per type the values taken (empty: the text does not say)."""

    name: str
    text: str
    values: dict[str, tuple[str, ...]]
    evidence: dict[str, tuple[Evidence, ...]] = field(default_factory=dict)

    def row(self) -> DiseaseRow:
        """The knowledge-table row: equal weights over the values of each type, empty types kept empty."""
        attributes = {key: {v: 1.0 / len(vals) for v in vals} if vals else {} for key, vals in self.values.items()}
        return DiseaseRow(self.name, DESCRIPTION_SOURCE, attributes, self.text)

    def yaml_row(self) -> dict:
        """The row as written in attribute_tables/*.yaml (`[]`: type left empty, scored as chance)."""
        attributes = {key: (vals[0] if len(vals) == 1 else list(vals)) for key, vals in self.values.items()}
        return {"name": self.name, "source": DESCRIPTION_SOURCE, "description": self.text, "attributes": attributes}

    def table_lines(self) -> list[str]:
        """The parsed row as a small text table (printed before predicting, so the user can check it)."""
        width = max(len(k) for k in self.values) + 2
        value_width = max([len(", ".join(v)) for v in self.values.values()] + [len("(empty)")]) + 2
        lines = [f"{'type'.ljust(width)}{'value(s)'.ljust(value_width)}from"]
        for key, vals in self.values.items():
            why = "; ".join(e.describe() for e in self.evidence.get(key, ()))
            lines.append(f"{key.ljust(width)}{(', '.join(vals) or '(empty)').ljust(value_width)}"
                         f"{why or 'not mentioned: scored as chance'}")
        return lines


def normalise(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, single spaces: what exact matching compares."""
    return re.sub(r"\s+", " ", re.sub(r"[-_]", " ", text.lower())).strip()


def _phrase_pattern(phrase: str) -> re.Pattern:
    """A vocabulary phrase as a regex over normalised text: any word may take or drop a plural s,
    a trailing generic noun (lesion, margin) is optional."""
    words = normalise(phrase).split(" ")
    parts = [re.escape(w[:-1]) + "s?" if w.endswith("s") and len(w) > 3 else re.escape(w) + "(?:e?s)?" for w in words]
    body = r"\s+".join(parts)
    if len(words) > 1 and words[-1] in OPTIONAL_TRAILING_NOUNS:
        body = r"\s+".join(parts[:-1]) + r"(?:\s+" + parts[-1] + ")?"
    return re.compile(r"\b" + body + r"\b")


def _content_words(text: str) -> set[str]:
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in normalise(text).split() if w not in STOPWORDS}


def _generic_words(vocabulary: Vocabulary) -> set[str]:
    """Words shared by two or more values of one type ("margin", "density", "lobe", "adjacent"):
    a short span made only of them says which type, not which value, so it is not asked."""
    generic: set[str] = set()
    for attr_type in vocabulary.types:
        seen: set[str] = set()
        for phrase in attr_type.values:
            words = _content_words(phrase)
            generic |= words & seen
            seen |= words
    return generic


def is_negative(phrase: str) -> bool:
    """A value that is itself a negation ("no specific features")."""
    return normalise(phrase).split(" ")[0] in ("no", "not", "without")


def _negated(text: str) -> bool:
    return any(word in NEGATION_CUES for word in normalise(text).split(" "))


_CLAUSE_BREAK = re.compile(r"[,;:.()/]|\b(?:" + "|".join(SPLIT_WORDS) + r")\b|(?=\bwithout\b)")


def split_clauses(text: str) -> list[str]:
    """Clauses of a (normalised) text: split at punctuation and at SPLIT_WORDS; "without" stays at
    the start of its clause so the clause is read as negated. Empty and stopword-only clauses go."""
    clauses = []
    for piece in _CLAUSE_BREAK.split(normalise(text)):
        words = (piece or "").split()
        if any(w not in STOPWORDS for w in words):
            clauses.append(" ".join(words))
    return clauses


def _spans(clause: str, max_words: int) -> list[str]:
    """The clause and its runs of up to max_words words that hold a word other than a stopword."""
    words = [w for w in clause.split() if w not in STOPWORDS or w in NEGATION_CUES]
    spans = [" ".join(words)] if words else []
    for n in range(1, max_words + 1):
        for start in range(len(words) - n + 1):
            span = " ".join(words[start:start + n])
            if span not in spans and not all(w in NEGATION_CUES for w in words[start:start + n]):
                spans.append(span)
    return spans


def exact_mentions(text: str, vocabulary: Vocabulary) -> tuple[dict[str, list[Evidence]], str]:
    """Vocabulary phrases named in the text (longest first), and the text with them cut out.

    A mention inside a negated clause ("without calcified foci") is cut out but not taken, unless
    the phrase is itself a negation."""
    rest = normalise(text)
    found: dict[str, list[Evidence]] = {}
    candidates = sorted(((t.key, v) for t in vocabulary.types for v in t.values),
                        key=lambda kv: len(normalise(kv[1])), reverse=True)
    for type_key, phrase in candidates:
        for match in list(_phrase_pattern(phrase).finditer(rest)):
            clause_start = max([m.end() for m in _CLAUSE_BREAK.finditer(rest[:match.start()]) if m.end() > 0] + [0])
            negated = _negated(rest[clause_start:match.start()])
            if not negated or is_negative(phrase):
                if all(e.value != phrase for e in found.get(type_key, [])):
                    found.setdefault(type_key, []).append(Evidence(phrase, match.group(0)))
        rest = _phrase_pattern(phrase).sub(" , ", rest)
    return found, rest


@dataclass
class DescriptionAnalysis:
    """Everything the decision needs, computed once (the benchmark sweeps settings over it)."""

    name: str
    text: str
    vocabulary: Vocabulary
    exact: dict[str, list[Evidence]]
    spans: list[str]
    span_negated: np.ndarray  # [S] bool
    similarity: np.ndarray  # [S, V] cosine of each span with each vocabulary phrase
    clause_rows: frozenset[int] = frozenset()  # which spans are whole clauses (kept at any span length)

    @cached_property
    def overlap(self) -> np.ndarray:
        """[S, V] share of each phrase's content words the span repeats: the tower alone scores
        "right lobe of the liver" as close to "left hepatic lobe" as to "right hepatic lobe"."""
        phrase_words = [_content_words(p) for p in self.vocabulary.phrases]
        return np.asarray([[len(_content_words(s) & w) / max(len(w), 1) for w in phrase_words] for s in self.spans],
                          dtype=np.float32).reshape(len(self.spans), len(phrase_words))

    def decide(self, settings: ParseSettings = ParseSettings()) -> ParsedDescription:
        vocab = self.vocabulary
        phrases = vocab.phrases
        value_type = np.asarray(vocab.value_type)
        negative = np.asarray([is_negative(p) for p in phrases])
        generic = _generic_words(vocab) if settings.skip_generic else set()
        keep = np.asarray([i in self.clause_rows or (len(s.split()) <= settings.max_span_words
                                                     and not (generic and _content_words(s) <= generic))
                           for i, s in enumerate(self.spans)], dtype=bool).reshape(len(self.spans))
        # polarity: a negated span speaks only for negations, a positive span only for positive values
        allowed = self.span_negated[:, None] == negative[None, :]
        score = self.similarity + settings.lexical * self.overlap if settings.lexical else self.similarity
        sims = np.where(allowed & keep[:, None], score, -np.inf)
        best_type = value_type[sims.argmax(1)] if len(self.spans) else np.zeros(0, int)
        values: dict[str, tuple[str, ...]] = {}
        evidence: dict[str, tuple[Evidence, ...]] = {}
        for t, attr_type in enumerate(vocab.types):
            if attr_type.key in self.exact:
                chosen = [e.value for e in self.exact[attr_type.key]]
                values[attr_type.key] = tuple(v for v in attr_type.values if v in chosen)
                evidence[attr_type.key] = tuple(self.exact[attr_type.key])
                continue
            columns = np.flatnonzero(value_type == t)
            rows = np.flatnonzero((best_type == t) & np.isfinite(sims.max(1))) if len(self.spans) else []
            taken: list[Evidence] = []
            if len(rows):
                block = sims[np.ix_(rows, columns)]
                score, where = block.max(0), block.argmax(0)
                order = np.argsort(-score, kind="stable")
                for k in range(1, min(settings.max_values, len(columns) - 1) + 1):
                    kth, following = score[order[k - 1]], score[order[k]]
                    if kth < settings.threshold:
                        break
                    if kth - following >= settings.margin:
                        taken = [Evidence(phrases[columns[j]], self.spans[rows[where[j]]],
                                          float(self.similarity[rows[where[j]], columns[j]]))
                                 for j in order[:k]]
                        break
            taken_values = {e.value for e in taken}
            values[attr_type.key] = tuple(v for v in attr_type.values if v in taken_values)
            evidence[attr_type.key] = tuple(sorted(taken, key=lambda e: attr_type.values.index(e.value)))
        for attr_type in vocab.types:  # a none value stands alone: other evidence for the type wins
            vals = values[attr_type.key]
            if attr_type.none_value in vals and len(vals) > 1:
                values[attr_type.key] = tuple(v for v in vals if v != attr_type.none_value)
                evidence[attr_type.key] = tuple(e for e in evidence[attr_type.key] if e.value != attr_type.none_value)
        return ParsedDescription(self.name, self.text, values, evidence)


def analyse_description(name: str, text: str, vocabulary: Vocabulary, embed: Embedder,
                        max_span_words: int = MAX_SPAN_WORDS) -> DescriptionAnalysis:
    """Exact mentions, clauses and spans of a description, and the spans' similarity to every phrase."""
    if not text.strip():
        raise MaleniaError(f"description {name!r} is empty; write what the lesion looks like after '='")
    exact, rest = exact_mentions(text, vocabulary)
    spans: list[str] = []
    negated: list[bool] = []
    clause_rows: list[int] = []
    for clause in split_clauses(rest):
        for i, span in enumerate(_spans(clause, max_span_words)):
            if i == 0:
                clause_rows.append(len(spans))
            spans.append(span)
            negated.append(_negated(clause))
    if spans:
        vectors = np.asarray(embed(list(spans) + list(vocabulary.phrases)), dtype=np.float32)
        similarity = vectors[:len(spans)] @ vectors[len(spans):].T
    else:
        similarity = np.zeros((0, len(vocabulary.phrases)), dtype=np.float32)
    return DescriptionAnalysis(name, text, vocabulary, exact, spans, np.asarray(negated, dtype=bool), similarity,
                               frozenset(clause_rows))


def parse_description(name: str, text: str, vocabulary: Vocabulary, embed: Embedder,
                      settings: ParseSettings = ParseSettings()) -> ParsedDescription:
    """One description -> a ParsedDescription (its `.row()` is the knowledge-table row)."""
    parsed = analyse_description(name, text, vocabulary, embed, settings.max_span_words).decide(settings)
    if not any(parsed.values.values()):
        raise MaleniaError(f"description {name!r}: no attribute of the vocabulary could be read from {text!r}; "
                           f"name values such as {', '.join(t.values[0] for t in vocabulary.types[:3])}")
    return parsed


def tower_embedder(tower_spec: str, cache_dir=None) -> Embedder:
    """Unit vectors of texts from a text tower (embed_phrases: cached per tower and text)."""
    def embed(texts: Sequence[str]) -> np.ndarray:
        from nnunetv2_malenia.text import embed_phrases

        vectors, _, _ = embed_phrases(list(texts), tower_spec, cache_dir, progress=False)
        return vectors.numpy()
    return embed


def split_describe_option(option: str) -> tuple[str, str]:
    """`--describe "NAME=TEXT"` -> (NAME, TEXT), or a one-line error saying what is wrong."""
    name, sep, text = option.partition("=")
    if not sep:
        raise MaleniaError(f"--describe {option!r}: expected NAME=TEXT, e.g. --describe \"cystic pancreas lesion="
                           "round, hypodense lesion with a thin cystic wall in the pancreatic body\"")
    if not name.strip():
        raise MaleniaError(f"--describe {option!r}: the NAME before '=' is empty; it becomes the output label name")
    if not text.strip():
        raise MaleniaError(f"--describe {option!r}: the TEXT after '=' is empty; describe the lesion there")
    return name.strip(), text.strip()


def check_new_names(names: Sequence[str], taken: dict[str, str]) -> None:
    """A description's NAME must not be a label or row name already in use (`taken`: name -> whose)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise MaleniaError(f"--describe {name!r} is given twice; give each description its own NAME")
        if name in taken:
            raise MaleniaError(f"--describe {name!r}: the name is already {taken[name]}; choose another NAME "
                               "(it becomes the output label name)")
        seen.add(name)


def table_with_descriptions(table: KnowledgeTable, parsed: Sequence[ParsedDescription],
                            only: bool = False) -> KnowledgeTable:
    """`table` with one row per description appended (or, with `only`, the descriptions alone),
    over the table's vocabulary; output labels follow table order, so the descriptions come last."""
    rows = tuple(p.row() for p in parsed)
    check_new_names([r.name for r in rows], {} if only else {d: f"a row of table {table.name!r}" for d in table.disease_names})
    name = "descriptions" if only else f"{table.name}+descriptions"
    return KnowledgeTable(name, table.vocabulary, rows if only else table.diseases + rows, table.source)
