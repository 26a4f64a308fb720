"""A short radiology-style sentence from a lesion's attribute values (the record's `report`)."""

from __future__ import annotations


def report_sentence(attributes: dict, count: int, diameter_cm: float) -> str:
    """E.g. 'Two lesions, up to 2.1 cm: lobulated hypodense lesion in the right hepatic lobe; ...'."""
    location = attributes["location"]
    density = attributes["density"]
    if attributes["shape"] == "irregular wall thickening":
        what = f"irregular wall thickening of the {location}, {density}"
    else:
        what = f"{attributes['shape']} {density} in the {location}"
    size = f"{diameter_cm:.1f} cm" if count == 1 else f"{_count_word(count)} lesions, up to {diameter_cm:.1f} cm"
    features = attributes["specific_features"]
    features = [features] if isinstance(features, str) else list(features)
    return (f"{size}: {what}; {attributes['density_variation']}, {attributes['surface_characteristics']}, "
            f"{attributes['relationship']}; {', '.join(features)} ({attributes['enhancement_status']}).")


def _count_word(n: int) -> str:
    return {2: "Two", 3: "Three", 4: "Four"}.get(n, str(n))
