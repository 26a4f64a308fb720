"""How well free-text descriptions parse into knowledge-table rows (`--describe`, `tables from-text`).

For every disease of attribute_tables/synthetic_cpu_knowledge_table.yaml,
benchmarks/data/free_text_descriptions.yaml holds three plain-English paraphrases, each with the
attribute types it speaks of (`mentions`). Each is parsed (nnunetv2_malenia/knowledge/free_text.py)
and every (description, type) pair is scored against the disease's true row:

- correct: the parsed values are non-empty and all allowed by the row, or the type is empty and
  the description does not speak of it (an empty type is skipped in scoring: no harm done);
- exact: the parsed values equal the row's allowed values (reported for mentioned types);
- wrong: a parsed value the row does not allow (this one hurts: the row then points elsewhere);
- missed: the type is empty although the description speaks of it.

The sweep runs over the similarity threshold, the margin and the lexical-overlap weight (and span
length) and ranks settings by net = correct - wrong (a wrong value costs as much as a right one
gains: it points the row at other lesions, while an empty type is only skipped), then fewer
wrong; it prints the per-type table of the
best and of the shipped defaults. Needs only the text tower (CPU, about a minute for the default).

    PYTHONPATH=. python3 benchmarks/bench_free_text.py [--tower default] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nnunetv2_malenia.knowledge import load_knowledge_table  # noqa: E402
from nnunetv2_malenia.knowledge.free_text import (ParseSettings, analyse_description, normalise,  # noqa: E402
                                                  tower_embedder)

DATA = REPO / "benchmarks" / "data" / "free_text_descriptions.yaml"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.475, 0.5, 0.525, 0.55, 0.6, 0.65, 0.7)
MARGINS = (0.0, 0.01, 0.02, 0.05, 0.08)
LEXICAL = (0.0, 0.1, 0.2)
SPAN_WORDS = (0, 1, 2)


def load_descriptions(path: Path = DATA) -> dict[str, list[dict]]:
    return yaml.safe_load(path.read_text())["diseases"]


def copied_phrases(descriptions: dict[str, list[dict]], vocabulary) -> list[tuple[str, str]]:
    """Vocabulary phrases a description copies word for word (the data must paraphrase)."""
    from nnunetv2_malenia.knowledge.free_text import exact_mentions

    return [(d["text"], e.value) for items in descriptions.values() for d in items
                    for found in exact_mentions(d["text"], vocabulary)[0].values() for e in found
            if e.value not in table_locations(vocabulary)]


def table_locations(vocabulary) -> tuple[str, ...]:
    """Organ names are allowed to be copied: "spleen" or "left kidney" have no other plain word."""
    return vocabulary.type("location").values


def score(analyses: list, truth: list, settings: ParseSettings, type_keys) -> dict:
    """Counts per type of correct / exact / wrong / missed / spurious-empty over all descriptions."""
    counts = {k: dict(n=0, correct=0, exact=0, wrong=0, missed=0, empty=0, mentioned=0) for k in type_keys}
    for analysis, (row, mentions) in zip(analyses, truth):
        parsed = analysis.decide(settings).values
        for key in type_keys:
            c, values, allowed = counts[key], set(parsed[key]), set(row.attributes[key])
            c["n"] += 1
            c["mentioned"] += key in mentions
            c["empty"] += not values
            if values - allowed:
                c["wrong"] += 1
            elif values:
                c["correct"] += 1
                c["exact"] += key in mentions and values == allowed
            elif key in mentions:
                c["missed"] += 1
            else:
                c["correct"] += 1
    return counts


def totals(counts: dict) -> dict:
    return {f: sum(c[f] for c in counts.values()) for f in next(iter(counts.values()))}


def per_type_table(counts: dict) -> list[str]:
    lines = ["| type | correct | exact (of mentioned) | wrong | missed | left empty |", "|---|---|---|---|---|---|"]
    for key, c in [*counts.items(), ("all types", totals(counts))]:
        lines.append(f"| {key} | {c['correct'] / c['n']:.0%} | {c['exact']}/{c['mentioned']} | {c['wrong'] / c['n']:.0%} "
                     f"| {c['missed'] / c['n']:.0%} | {c['empty'] / c['n']:.0%} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tower", default="default")
    parser.add_argument("--table", default="synthetic_cpu_knowledge_table")
    parser.add_argument("--show", action="store_true", help="print every parsed description (best settings)")
    parser.add_argument("--json", type=Path, default=None, help="write the sweep and the per-type counts here")
    args = parser.parse_args()

    table = load_knowledge_table(args.table)
    descriptions = load_descriptions()
    copies = copied_phrases(descriptions, table.vocabulary)
    embed = tower_embedder(args.tower)
    analyses, truth = [], []
    for disease, items in descriptions.items():
        for item in items:
            analyses.append(analyse_description(disease, item["text"], table.vocabulary, embed, max(SPAN_WORDS)))
            truth.append((table.row(disease), set(item["mentions"])))
    type_keys = table.vocabulary.type_keys
    n_pairs = len(analyses) * len(type_keys)
    print(f"{len(analyses)} descriptions of {len(descriptions)} diseases, tower {args.tower}; "
          f"{len(copies)} exact vocabulary mentions in the data besides organ names"
          + (f": {sorted({v for _, v in copies})}" if copies else ""))

    sweep = []
    for threshold, margin, lexical, words, generic in itertools.product(THRESHOLDS, MARGINS, LEXICAL, SPAN_WORDS,
                                                                        (False, True)):
        settings = ParseSettings(threshold=threshold, margin=margin, lexical=lexical, max_span_words=words,
                                 skip_generic=generic)
        t = totals(score(analyses, truth, settings, type_keys))
        sweep.append(dict(threshold=threshold, margin=margin, lexical=lexical, span_words=words, skip_generic=generic,
                          correct=t["correct"] / n_pairs, net=(t["correct"] - t["wrong"]) / n_pairs, wrong=t["wrong"] / n_pairs, missed=t["missed"] / n_pairs,
                          empty=t["empty"] / n_pairs))
    ranked = sorted(sweep, key=lambda r: (-round(r["net"], 6), round(r["wrong"], 6), -r["threshold"]))
    print("\nsweep, best 15 (of %d settings), then per threshold, per margin, and per (lexical, span words, "
          "skip generic), the other settings as the best's:" % len(sweep))
    header = "| threshold | margin | lexical | span words | skip generic | net | correct | wrong | missed | left empty |"
    fmt = lambda r: (f"| {r['threshold']:.3f} | {r['margin']:.2f} | {r['lexical']:.1f} | {r['span_words']} | {r['skip_generic']} | "  # noqa: E731
                     f"{r['net']:.1%} | {r['correct']:.1%} | {r['wrong']:.1%} | {r['missed']:.1%} | {r['empty']:.1%} |")
    print(header + "\n|---|---|---|---|---|---|---|---|---|---|")
    for r in ranked[:15]:
        print(fmt(r))
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|---|---|")
    for threshold in THRESHOLDS:
        rows = [r for r in ranked if r["threshold"] == threshold and r["lexical"] == ranked[0]["lexical"]
                and r["span_words"] == ranked[0]["span_words"] and r["skip_generic"] == ranked[0]["skip_generic"]]
        print(fmt(rows[0]))
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|---|---|")
    for margin in MARGINS:
        print(fmt(next(r for r in ranked if r["margin"] == margin and all(
            r[k] == ranked[0][k] for k in ("threshold", "lexical", "span_words", "skip_generic")))))
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|---|---|")
    for lexical, words, generic in itertools.product(LEXICAL, SPAN_WORDS, (False, True)):
        rows = [r for r in ranked if r["lexical"] == lexical and r["span_words"] == words
                and r["skip_generic"] == generic]
        print(fmt(rows[0]))

    best = ranked[0]
    best_settings = ParseSettings(threshold=best["threshold"], margin=best["margin"], lexical=best["lexical"],
                                  max_span_words=best["span_words"], skip_generic=best["skip_generic"])
    result = {"tower": args.tower, "descriptions": len(analyses), "sweep": sweep, "best": best}
    for label, settings in (("best", best_settings), ("shipped defaults", ParseSettings())):
        counts = score(analyses, truth, settings, type_keys)
        result[f"per_type ({label})"] = counts
        print(f"\nper type, {label} {settings}:")
        print("\n".join(per_type_table(counts)))
    if args.show:
        for analysis, (row, mentions) in zip(analyses, truth):
            print(f"\n{analysis.name}: {analysis.text}")
            print("\n".join(analysis.decide(best_settings).table_lines()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
