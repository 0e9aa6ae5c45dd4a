"""What a critique clause says: praise or criticism, and whether it points at a part of the output.

Two logistic regressions on MiniLM sentence embeddings (plus hashed word n-grams), trained at first use on the labelled clauses in
``data/clauses.tsv`` (a few hundred hand-written critique clauses; no weights are shipped or written to
disk by default: training is a Newton fit of seconds, most of it embedding the clauses, and the result is
kept in memory per embedder; ``configure_cache_dir`` lets the worker keep it under the var dir). Cue words miss praise that uses no cue ("matches the report", "an important safety note") and
read "fine" or "not" too literally; an embedding of the whole clause sees the construction.

* ``polarity`` — P(praise) of a clause, where quoted output text has been replaced by "the phrase" (what
  the aligner does before asking), so the quote's own words do not tint the verdict.
* ``scope`` — P(the clause points at a part of the output) as opposed to a remark about the whole output
  ("A solid summary overall") or a suggested fix ("Use parameterised queries"), which get no span.

Example:
    >>> classifier = ClauseClassifier(default_embedder())
    >>> [round(p) for p in classifier.polarity(["the phrase is wrong", "the phrase matches the report"])]
    [0, 1]
    >>> [round(p) for p in classifier.scope(["the loop never terminates", "add a docstring"])]
    [1, 0]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: each process trains for itself
    fcntl = None

import numpy as np

from .semantic import Embedder, default_embedder  # noqa: F401 (the doctest uses it)

CLAUSES_PATH = Path(__file__).resolve().parent / "data" / "clauses.tsv"
# L2 penalty of both regressions: with ~300 examples in 384 dimensions an unpenalised fit memorises them.
L2_PENALTY = 0.3
QUOTE_PLACEHOLDER = "the phrase"
# Hashed word uni- and bigrams beside the embedding: mean-pooled MiniLM vectors are dominated by what a
# clause is about ("the 2024 contribution limit"), while its verdict sits in a few words ("is correct",
# "should be"), which the regression learns from the labelled clauses.
NGRAM_DIMS = 512
# The n-gram block is scaled up against the unit-length embedding; 2 and L2 0.3 were the best of a small
# grid (n-gram scale 0.5-3, L2 0.03-1), scored on the dev cases' critique polarity.
NGRAM_SCALE = 2.0
_WORD = re.compile(r"[\w']+|[^\w\s]")


def ngram_features(texts: list[str], dims: int = NGRAM_DIMS) -> np.ndarray:
    """L2-normalised binary hashed word uni- and bigrams (stable across processes: crc32, not hash()).

    Example:
        >>> f = ngram_features(["is correct", "is not correct"])
        >>> f.shape, bool(f[0] @ f[1] > 0)
        ((2, 512), True)
    """
    matrix = np.zeros((len(texts), dims), dtype=np.float32)
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for gram in grams:
            matrix[row, zlib.crc32(gram.encode("utf-8")) % dims] = 1.0
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def load_clauses(path: Path = CLAUSES_PATH) -> list[tuple[int, str, str]]:
    """(polarity ±1, scope, text) rows of the labelled-clauses file; comments and blank lines skipped."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        polarity, scope, text = line.split("\t")
        if polarity not in ("+", "-") or scope not in ("span", "whole", "fix") or not text.strip():
            raise ValueError(f"{path}:{number}: bad row {line!r}")
        rows.append((1 if polarity == "+" else -1, scope, text.strip()))
    return rows


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, l2: float = L2_PENALTY) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method; returns weights with the bias last.

    Example:
        >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> w = fit_logistic(x, np.array([0, 0, 1, 1]), l2=0.1)
        >>> bool(w[0] > 0), predict_logistic(w, np.array([[0.2], [2.8]])).round().tolist()
        (True, [0.0, 1.0])
    """
    design = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    weights = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        probabilities = 1.0 / (1.0 + np.exp(-(design @ weights)))
        gradient = design.T @ (probabilities - labels) + penalty * weights
        curvature = probabilities * (1.0 - probabilities)
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-6:
            break
    return weights


def predict_logistic(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """P(label 1) for each row of ``features``."""
    return 1.0 / (1.0 + np.exp(-(features @ weights[:-1] + weights[-1])))


class ClauseClassifier:
    """Polarity and scope of critique clauses (see the module docstring); trains on first use."""

    def __init__(self, embedder: Embedder, clauses_path: Path = CLAUSES_PATH) -> None:
        self.embedder = embedder
        self.clauses_path = clauses_path
        self._weights: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def _trained(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._weights is None:
                with self._cache_lock():
                    self._weights = self._cached() or self._train()
            return self._weights

    @contextlib.contextmanager
    def _cache_lock(self) -> Iterator[None]:
        """Across processes: the first to need the weights trains them, the others wait and load its file
        (two pool children warming up at once would otherwise both train, each at half the CPU)."""
        path = self._cache_file()
        if path is None or fcntl is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _cache_file(self) -> Path | None:
        if _cache_dir is None:
            return None
        key = hashlib.sha256(self.clauses_path.read_bytes())
        key.update(
            f"{getattr(self.embedder, 'model_path', type(self.embedder).__name__)}|{L2_PENALTY}|{NGRAM_DIMS}|{NGRAM_SCALE}".encode()
        )
        return _cache_dir / f"clause-classifier-{key.hexdigest()[:16]}.npz"

    def _cached(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self._cache_file()
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as stored:
                return stored["polarity"], stored["scope"]
        except (OSError, KeyError, ValueError):
            return None  # a damaged cache file is retrained and rewritten

    def _train(self) -> tuple[np.ndarray, np.ndarray]:
        rows = load_clauses(self.clauses_path)
        features = self._features([text for _, _, text in rows])
        polarity = np.array([1.0 if p > 0 else 0.0 for p, _, _ in rows])
        scope = np.array([1.0 if s == "span" else 0.0 for _, s, _ in rows])
        weights = (fit_logistic(features, polarity), fit_logistic(features, scope))
        path = self._cache_file()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(partial, polarity=weights[0], scope=weights[1])
            os.replace(partial, path)  # readers never see a half-written file
        return weights

    def _features(self, texts: list[str]) -> np.ndarray:
        return np.hstack([self.embedder.encode(texts), NGRAM_SCALE * ngram_features(texts)])

    def read(self, texts: list[str]) -> tuple[list[float], list[float]]:
        """(P(praise), P(about one part)) per clause, from one embedding call."""
        if not texts:
            return [], []
        polarity, scope = self._trained()
        features = self._features(texts)
        return predict_logistic(polarity, features).tolist(), predict_logistic(scope, features).tolist()

    def polarity(self, texts: list[str]) -> list[float]:
        """P(praise) per clause."""
        if not texts:
            return []
        weights, _ = self._trained()
        return predict_logistic(weights, self._features(texts)).tolist()

    def scope(self, texts: list[str]) -> list[float]:
        """P(the clause is about one part of the output) per clause."""
        if not texts:
            return []
        _, weights = self._trained()
        return predict_logistic(weights, self._features(texts)).tolist()


_cache_dir: Path | None = None


def configure_cache_dir(path: Path | str | None) -> None:
    """Keep trained weights under ``path`` (e.g. the app's var dir) so a new process skips training."""
    global _cache_dir
    _cache_dir = Path(path) if path is not None else None


_classifiers: dict[int, ClauseClassifier] = {}
_classifiers_lock = threading.Lock()


def classifier_for(embedder: Embedder) -> ClauseClassifier:
    """The process-wide classifier trained on ``embedder``'s vectors (trained once per embedder)."""
    with _classifiers_lock:
        found = _classifiers.get(id(embedder))
        if found is None or found.embedder is not embedder:
            found = _classifiers[id(embedder)] = ClauseClassifier(embedder)
        return found
