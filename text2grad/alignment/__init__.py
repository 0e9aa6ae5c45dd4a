"""Feedback alignment: turn a free-text critique into proposed spans of the model output.

TEXT2GRAD (arXiv 2505.22338) needs every critique tied to the characters it talks about, because those
spans become per-token rewards. Annotators often write a critique without highlighting anything; this
module proposes the spans, and the UI lets them accept or reject each proposal.

Pure package: no Django import, so it runs in a worker, a notebook or a test. The only heavy dependency,
the MiniLM sentence embedder, is loaded lazily and only by the semantic pass. One module per pass:
``quotes`` (1), ``references`` (2), ``semantic`` (3) and ``llm`` (optional); ``critique`` reads polarity
and clauses, ``text`` holds the shared text helpers, ``proposals`` the result type and the merge, and
``align`` runs them all.

Offsets are Python code points, ``[start, end)`` into ``output`` (the project-wide span convention).

The passes, in order of trust:

1. **Quotes** — straight ``"..."`` / ``'...'`` (an apostrophe inside a word, as in *don't* or *it's*, is
   never a quote mark), curly ``“...”`` / ``‘...’``, guillemets ``«...»``, inline backticks and fenced
   triple-backtick blocks (a language tag on the fence is dropped). Each quoted phrase is located:

   * exactly (``quote-exact``, score 1.0). *Every* occurrence is proposed (up to ``MAX_OCCURRENCES``): a
     critique quoting a phrase that occurs three times ("drop the filler word 'basically'") means all
     three. Word boundaries are respected so ``"i"`` does not match inside ``print``.
   * then fuzzily (``quote-fuzzy``): case/whitespace/typographic-quote normalised (score 0.95), then with
     all whitespace removed so ``range(i+1, n)`` finds ``range(i + 1, n)`` (0.9), then the best
     token-aligned window by edit similarity (the mean of a character-level and a word-level difflib
     ratio), accepted at ``FUZZY_THRESHOLD``. Only the best window is proposed.

   Quotes made only of ASCII punctuation (``'='``, ``'-'``) or of one letter or digit (``'0'``, ``'A'``;
   a backticked ``i`` is kept) are ignored: they name a character or a value, not a place.
   A quote that follows a suggestion cue ("use", "should be", "meant") is the annotator's replacement
   text, so it is only accepted if it occurs exactly. A quote ending in an ellipsis ("He also
   mentions...") is extended to the end of its sentence (or line, for code).

2. **Structural references** (``line-ref``, score 1.0) — "line 3", "on line 7", "(line 6)",
   "lines 3-5" / "lines 4–5" / "lines 2 to 4", "L12", "L3-L5", and ordinals: "the second sentence",
   "the last line", "the opening sentence". A line is proposed without its leading indentation and
   trailing whitespace (the indentation is shared by the whole block, so penalising its tokens would
   punish the wrong thing); a range runs from the first line's first non-blank character to the last
   line's last one. Lines are 1-based and counted on ``output.split("\\n")``. Ordinal sentence
   references are skipped in a sentence that already quoted the output ("X contradicts the first
   sentence" points at X, not at the first sentence).

3. **Semantic** (``semantic``) — only for critique sentences where passes 1 and 2 found nothing. The
   output is cut into segments (sentences for prose, non-blank lines for code), the critique sentence
   and the segments are embedded with all-MiniLM-L6-v2, and each critique sentence gets at most one
   segment: (sentence, segment) pairs are assigned one-to-one, best cosine similarity first, down to
   ``SEMANTIC_THRESHOLD`` (distinct sentences of a critique usually talk about distinct segments). A
   sentence whose clauses disagree in polarity ("X is right, but Y is wrong") is split into clauses
   first. For code, MiniLM reads code poorly, so lines are embedded with identifiers split into words,
   a line gets a bonus when the critique names its construct ("loop", "comparison", "return",
   "default argument"...) or one of its identifiers, and the signature and docstring lines get a
   penalty unless the critique names them (they resemble every critique of the function). A sentence
   that opens with a pronoun right after a sentence that quoted or referenced something continues it
   and is not aligned on its own.

Polarity: each proposal takes the polarity of the clause that produced it, from cue words ("wrong",
"missing", "unnecessary" versus "correct", "clear", "nice"; a negated positive such as "not accurate" is
negative). A clause without cues falls back to its sentence, then to the critique as a whole, then to
*poor*, since critiques mostly point at problems. ``polarity_hint`` overrides all of it.

Overlapping proposals of the same polarity are merged keeping the highest score (ties: the more
trusted method, then the longer span). Proposals of opposite polarity may overlap; the reward engine
resolves such conflicts to the negative.

Evaluation: ``scripts/eval_alignment.py`` over ``tests/data/alignment_cases.jsonl`` (span F1, IoU ≥ 0.5
with equal polarity). The thresholds were set on those cases; a small held-out set written afterwards
scored similarly.

Limitations: cue-word polarity is English-only and misses sarcasm and subtle praise; the semantic pass
proposes whole sentences or lines, never a phrase inside one, and cannot point at an omission; MiniLM
is English-centred (a French output sentence is rarely matched) and weak on code, where the construct
hints help only for the constructs they name; a plural possessive (players') can close a straight
single quote opened earlier on the same line.

Example:
    >>> out = "def f(xs):\\n    return xs[0]\\n"
    >>> [(p.start, p.end, p.polarity, p.method) for p in align_critique(out, "Line 2 crashes on []")]
    [(15, 27, -1, 'line-ref')]
"""

from .align import DEFAULT_MIN_SCORE, align_critique
from .critique import infer_polarity
from .llm import LLMAligner, LLMAlignerError
from .proposals import GOOD, METHODS, POOR, SpanProposal
from .quotes import FUZZY_MIN_CHARS, FUZZY_THRESHOLD, MAX_OCCURRENCES, extract_quotes
from .semantic import SEMANTIC_THRESHOLD, Embedder, MiniLMEmbedder, default_embedder
from .text import looks_like_code

__all__ = [
    "DEFAULT_MIN_SCORE",
    "FUZZY_MIN_CHARS",
    "FUZZY_THRESHOLD",
    "GOOD",
    "MAX_OCCURRENCES",
    "METHODS",
    "POOR",
    "SEMANTIC_THRESHOLD",
    "Embedder",
    "LLMAligner",
    "LLMAlignerError",
    "MiniLMEmbedder",
    "SpanProposal",
    "align_critique",
    "default_embedder",
    "extract_quotes",
    "infer_polarity",
    "looks_like_code",
]
