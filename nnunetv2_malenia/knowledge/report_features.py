"""Specific Features read from a radiology report sentence.

The released workbook codes 7 attribute types; the 8th (Specific Features) is only in the report
text. These keyword rules turn the report into vocabulary phrases. A clause (text between
punctuation) that also holds a negation ("no", "not", "without") contributes nothing, so
"No pancreatic ductal dilatation is observed" is not read as dilatation.
"""

from __future__ import annotations

import re

# vocabulary phrase -> pattern, searched clause by clause, case-insensitively
SPECIFIC_FEATURE_PATTERNS: dict[str, str] = {
    "presence of decreased density areas": (
        r"(hypodense|hypoattenuating|low[- ]attenuation|low[- ]density|necrotic|cystic) "
        r"(areas?|foci|focus|regions?|components?|changes?|portions?)"
        r"|areas of (low|decreased) (attenuation|density)|necrosis"
    ),
    "calcified foci": r"calcif",
    "presence of increased density areas": (
        r"(hyperdens\w*|high[- ](attenuation|density)|hyperattenuating) (foci|focus|areas?|structures?|spots?|shadows?)"
        r"|(punctate|linear|tubular) hyperdens|foci of high"
    ),
    "spiculated margins": r"spicul",
    "cavitation": r"cavit",
    "pleural retraction": r"pleural (retraction|traction|indentation)",
    "pancreatic duct dilatation": (
        r"pancreatic duct\w* (is |are )?(mildly |markedly |slightly )?(dilat|widen)|pancreatic duct(al)? dilatation"
    ),
    "surrounding fat stranding": r"strand|exudat",
}
_NEGATION = re.compile(r"\b(no|not|without|absent)\b", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[.;,:]")


def specific_features_from_report(report: str, none_value: str = "no specific features") -> list[str]:
    """Vocabulary phrases of the Specific Features the report mentions (in pattern order)."""
    found: list[str] = []
    for clause in _CLAUSE_BREAK.split(report or ""):
        if _NEGATION.search(clause):
            continue
        for phrase, pattern in SPECIFIC_FEATURE_PATTERNS.items():
            if phrase not in found and re.search(pattern, clause, re.IGNORECASE):
                found.append(phrase)
    order = list(SPECIFIC_FEATURE_PATTERNS)
    return sorted(found, key=order.index) or [none_value]
