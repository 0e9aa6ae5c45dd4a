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

   * exactly (``quote-exact``, score 1.0). In prose every occurrence is proposed (up to
     ``MAX_OCCURRENCES``): "drop the filler word 'basically'" means all three; an ordinal or, in code,
     the described line narrows it (below), and in prose the part of the output the critique describes
     ("in the sentence about the cafe, ..."). Word boundaries are respected so ``"i"`` does not match
     inside ``print``.
   * exactly up to whitespace (``quote-exact``): a quote of text the output wraps over a line break, or the
     other way round; a replacement after "should be" is recognised this way too;
   * then fuzzily (``quote-fuzzy``): case, accents, superscripts (``λ^4`` for ``λ⁴``), backticks,
     whitespace and typographic quotes normalised (score 0.95), then with
     all whitespace removed so ``range(i+1, n)`` finds ``range(i + 1, n)`` (0.9), then the best
     token-aligned window by edit similarity (the mean of a character-level and a word-level difflib
     ratio), accepted at ``FUZZY_THRESHOLD``. Only the best window is proposed.

   Quotes made only of ASCII punctuation (``'='``, ``'-'``) or of one letter or digit (``'0'``, ``'A'``;
   a backticked ``i`` is kept) are ignored: they name a character or a value, not a place.
   A quote that follows a suggestion cue ("use", "should be", "meant") is the annotator's replacement
   text, so it is only accepted if it occurs exactly. A quote ending in an ellipsis ("He also
   mentions...") is extended to the end of its sentence (or line, for code), a hard-wrapped sentence
   included; an ellipsis inside a quote ("The lantern room ... has been rebuilt", "[...]") spans the words
   it leaves out, each part found in order within ``quotes.ELLIPSIS_MAX_GAP`` characters. A quote may run
   over one line break of the critique (not a blank line). In prose, a quote found neither way that is not
   a suggestion and not text the output lacks ("it never mentions 'X'", "should also say 'Y'") is a
   paraphrase: the output sentence or clause nearest in MiniLM (plus a share of the quote's words it keeps)
   is proposed (``semantic``) at ``PARAPHRASE_THRESHOLD`` or above.

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

**Which occurrence** (``occurrences``): a quote found at several places is narrowed by what the critique
says: a sentence, line or item its sentence names ("In the last sentence, 'the tower' ...") keeps the
occurrences inside it; an ordinal right before it ("the second 'sin(x)'") picks that occurrence; a short quote inside a
longer quote of the same sentence ("In 'the treaty was signed', 'signed' should be ...") is only its
occurrences inside the longer one, which is the frame and proposes nothing (nor does the replacement after
"should be"); in prose, the longest run of the critique's own words around the quote that occurs once in
the output pins it down ("Noting that a dict has a `get` method" → that phrase); in code, the line the
sentence describes (MiniLM similarity plus construct, cue and co-quote hints) is the only one kept. In
code a quote stands for its whole line: a backticked expression (``len(xs) - 1``) or identifier is
proposed as its line without indentation, as a line reference would be, unless it was quoted from a
comment, docstring or string literal; a function named for what it does (```median` is wrong for even
lengths``) is the body line the sentence describes, not its def line, unless the sentence is about its
name, signature or arguments; in a sentence that names a line number the line reference stands for the
identifiers in it ("Line 4 fails on an empty `items`" → line 4 once, not every ``items``). Otherwise, in
prose, every occurrence stays.

**Corrected values** (``phrases`` and ``values``, ``phrase``, score 0.9): "twelve years, not twenty years"
proposes the wrong value ("twenty years") where the output says it, or its sentence when it is a predicate
rather than a value; after an article it is a noun ("keep it in the drawer, not the shelf" → "shelf"). A
noun the critique says the output calls someone ("Calling him a beekeeper is accurate", "never says he is
a firefighter") is the span, with its clause's polarity. A correction that names only the right value
("The ferry crossing takes an hour", "the fare stated is wrong: €22") proposes the output's differing
value of the same type (money, percent, temperature, score ("3-1", "7 to 2"), ordinal, year, weekday,
capitalised month, duration, count with its unit) in the sentence the critique echoes, preferring the one
after the same word ("open from June" → "from April"); one that says a job or title is wrong proposes the
output's role word nearest in MiniLM to the right one. Ordinals also count list items and questions
("step 4", "the second tip", "the final question"), without the ``1.``/``-`` marker.

**Polarity and scope** (``classifier``): two logistic regressions on MiniLM embeddings plus hashed word
n-grams, trained at first use on ``data/clauses.tsv`` (hand-written labelled critique clauses), read each
clause with its quotes replaced by "the phrase": P(praise), and P(the clause points at a part of the
output) as opposed to a remark on the whole output or a suggested fix, which get no semantic span. A
verdict within ``POLARITY_MARGIN`` of 0.5 defers to the sentence, then to cue words in the clause and
sentence, and only then to the critique as a whole (a critique that praises one thing and criticises
another has no single tone); cue words that all point one way in the clause overrule a verdict within
``CUE_OVERRIDE_MARGIN``. An undecided clause that "but" or "however" sets against a decided clause holding
another quote takes the other polarity ("'A' is a fun detail, but 'B' overstates it"). A clause with
no cue words followed by a bare verdict ("It says 'X'; that is right", "`with open(p)` closes the file;
good") takes the verdict's polarity, and an elliptical clause (", and 'B' is too") the clause before's. A sentence opening
with "Minor:" or "Nit:" is a criticism of one point: its best segment is proposed at the lower
``semantic.MINOR_THRESHOLD`` (as is a pronoun sentence that opens a new point, "It also covers ...", which
otherwise would continue the sentence before), and in code a backticked name that is not in the output (the fix) does not stop the
search for the line it describes. Without a
classifier (``semantic=False`` or a non-MiniLM embedder) cue words decide as before: "wrong", "missing"
versus "correct", "nice"; a negated positive is negative; no cue falls back to the sentence, the critique,
then *poor*. ``polarity_hint`` overrides all of it.

Overlapping proposals of the same polarity are merged keeping the highest score (ties: the more
trusted method, then the longer span). Proposals of opposite polarity may overlap; the reward engine
resolves such conflicts to the negative. The optional LLM pass (``LLMAligner``, an OpenAI-compatible
endpoint; per project in the studio) is merged by ``merge_llm``: rule-placed spans stand, LLM phrases
replace overlapping semantic guesses and fill places no pass found.

Evaluation: ``scripts/eval_alignment.py`` reports the dev set (``tests/data/alignment_dev.jsonl``, 292
cases) and the frozen test split (``tests/data/alignment_test_frozen.jsonl``, 139 cases on 46 outputs,
written before the issue-28 changes and never tuned on) per kind and per domain (span F1, one-to-one, IoU
≥ 0.5 with equal polarity, and label accuracy); the 81 original cases stay as a regression set.
``tests/unit/test_alignment_contamination.py`` fails if a critique of either split leaks into a file of
this package. Numbers: ``docs/benchmarks.md``.

Limitations: the classifier is small (a few hundred clauses) and reads long clauses about a specific
topic less surely than short verdicts; praise and criticism in one clause ("is fine, but it's called
EC 261") follow the clause; MiniLM is English-centred and weak on code; the semantic pass proposes
sentences or lines and cannot point at an omission; a phrase is proposed only for "X, not Y"
corrections, typed values, titles and quotes; a plural possessive (players') can close a straight
single quote opened earlier on the same line.

Example:
    >>> out = "def f(xs):\\n    return xs[0]\\n"
    >>> [(p.start, p.end, p.polarity, p.method) for p in align_critique(out, "Line 2 crashes on []")]
    [(15, 27, -1, 'line-ref')]
"""

from .align import CUE_OVERRIDE_MARGIN, DEFAULT_MIN_SCORE, POLARITY_MARGIN, SCOPE_THRESHOLD, align_critique
from .classifier import ClauseClassifier, classifier_for, configure_cache_dir
from .critique import infer_polarity
from .llm import LLMAligner, LLMAlignerError
from .proposals import GOOD, METHODS, POOR, SpanProposal, merge_llm
from .quotes import FUZZY_MIN_CHARS, FUZZY_THRESHOLD, MAX_OCCURRENCES, extract_quotes
from .semantic import SEMANTIC_THRESHOLD, Embedder, MiniLMEmbedder, default_embedder
from .text import looks_like_code

__all__ = [
    "CUE_OVERRIDE_MARGIN",
    "DEFAULT_MIN_SCORE",
    "POLARITY_MARGIN",
    "SCOPE_THRESHOLD",
    "ClauseClassifier",
    "classifier_for",
    "configure_cache_dir",
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
    "merge_llm",
]
