"""The unit every pass produces, a proposed span, and how overlapping proposals are merged."""

from __future__ import annotations

from dataclasses import dataclass

POOR = -1
GOOD = +1

METHODS = ("quote-exact", "quote-fuzzy", "line-ref", "phrase", "semantic", "llm")
# Higher is more trusted; breaks score ties when overlapping proposals are merged.
_METHOD_TRUST = {"quote-exact": 6, "line-ref": 5, "quote-fuzzy": 4, "phrase": 3, "llm": 2, "semantic": 1}


@dataclass(frozen=True)
class SpanProposal:
    """A proposed span of the output, ``[start, end)`` in code points.

    Example:
        >>> p = SpanProposal(4, 9, -1, 1.0, "quote-exact", '"quick"')
        >>> p.text_in("the quick fox")
        'quick'
    """

    start: int
    end: int
    polarity: int
    score: float
    method: str
    evidence: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")
        if self.polarity not in (POOR, GOOD):
            raise ValueError(f"polarity must be -1 or +1, got {self.polarity}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}")

    def text_in(self, output: str) -> str:
        """The proposed span's text in ``output``."""
        return output[self.start : self.end]


def _merge(proposals: list[SpanProposal]) -> list[SpanProposal]:
    """Drop same-polarity proposals that overlap a better one; sort by start."""
    ranked = sorted(
        proposals, key=lambda p: (-p.score, -_METHOD_TRUST[p.method], -(p.end - p.start), p.start)
    )
    kept: list[SpanProposal] = []
    for proposal in ranked:
        if any(
            k.polarity == proposal.polarity and k.start < proposal.end and proposal.start < k.end
            for k in kept
        ):
            continue
        kept.append(proposal)
    return sorted(kept, key=lambda p: (p.start, p.end, p.polarity))


def merge_llm(found: list[SpanProposal], llm: list[SpanProposal]) -> list[SpanProposal]:
    """Merge the LLM pass's proposals into the other passes' ones.

    Where a quote, line reference or phrase rule placed a span, it stands: an LLM proposal overlapping one
    of those is dropped whatever its label (the rules read the critique's own words). The LLM outranks
    the semantic pass (MiniLM similarity of whole sentences, the weakest evidence): a semantic proposal
    overlapping a kept LLM span is dropped, so an exactly located phrase replaces a guessed sentence. An
    LLM span where nothing else was proposed is added.

    Example:
        >>> rule = SpanProposal(0, 5, -1, 1.0, "quote-exact", "'x = 1'")
        >>> guess = SpanProposal(10, 30, -1, 0.4, "semantic", "fine")
        >>> llm = [SpanProposal(1, 4, 1, 1.0, "llm", "= 1"), SpanProposal(12, 20, 1, 1.0, "llm", "y")]
        >>> [(p.start, p.end, p.polarity, p.method) for p in merge_llm([rule, guess], llm)]
        [(0, 5, -1, 'quote-exact'), (12, 20, 1, 'llm')]
    """

    def overlaps(p: SpanProposal, others: list[SpanProposal]) -> bool:
        return any(o.start < p.end and p.start < o.end for o in others)

    ruled = [p for p in found if p.method != "semantic"]
    kept_llm = _merge([p for p in llm if not overlaps(p, ruled)])
    semantic = [p for p in found if p.method == "semantic" and not overlaps(p, kept_llm)]
    return sorted(ruled + kept_llm + semantic, key=lambda p: (p.start, p.end, p.polarity))
