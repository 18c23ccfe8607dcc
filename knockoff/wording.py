"""Numbers and statuses as analysts read them: the review pages (Jinja filters, serve/app.py),
the evidence packs and the CLI say them the same way.

Similarity is the cosine of two photos' embeddings shown as a percentage: 100% is the same
photo, about 90% the same product in another photo, and anything at or under 0 is "unlike"
(a cosine below 0 says no more than one at 0, so it is never printed bare). A region's
distance is 1 - cosine to the nearest genuine detail, shown the same way.
"""

from __future__ import annotations


def similarity(cosine: float | None) -> str:
    if cosine is None or cosine != cosine:
        return "—"
    if cosine <= 0:
        return "unlike (0% similar)"
    return f"{min(cosine, 1.0) * 100:.0f}% similar"


def distance(value: float | None) -> str:
    if value is None or value != value:
        return "—"
    return f"{min(max(value, 0.0), 1.0) * 100:.0f}% unlike the closest genuine detail"


def probability(value: float | None) -> str:
    """A score or threshold to three places, never two equal-looking numbers that compare unequal."""
    return "—" if value is None or value != value else f"{value:.3f}"


def chance(value: float | None) -> str:
    """A probability as a percentage that never claims certainty: 'over 99%', 'under 1%'."""
    if value is None or value != value:
        return "—"
    if value >= 0.995:
        return "over 99%"
    if value < 0.005:
        return "under 1%"
    return f"{value * 100:.0f}%"


STATUS_WORDS = {"scored": "judged", "unsupported": "needs references", "no_match": "no catalogued product",
                "copy": "copy of a genuine reference", "error": "failed to screen"}


def status(value: str | None) -> str:
    return STATUS_WORDS.get(value or "", value or "—")


def apart(*values: float) -> list[str]:
    """The values with as few decimals (2 to 4) as keep unequal ones unequal: a reason never
    reads "0.68, below the 0.68"."""
    for decimals in (2, 3, 4):
        shown = [f"{v:.{decimals}f}" for v in values]
        if all(shown[i] != shown[j] or values[i] == values[j] for i in range(len(values)) for j in range(i)):
            return shown
    return shown
