"""Hybrid ranking: one score from a memory's meaning (cosine) and its words (text relevance).

Why a weighted sum of scores rather than reciprocal rank fusion: RRF throws the scores away,
so a leg that found nothing good still pushes its best (poor) rows up, and its output is not
a relevance a caller can put a ``min_score`` on. On LoCoMo (docs/guides/retrieval-quality.md)
plain RRF came out *below* BM25 alone, while this sum beat both legs by 6-20 points of
recall@10. Both inputs are on a 0-1 scale (cosine similarity of unit vectors, and the text
relevance each store scales by the search's best match, see ``store/sqlite/fulltext.py``),
so the fused score is too, and ``min_score`` keeps one meaning per mode: in ``vector`` mode it
is the cosine, in ``hybrid`` mode this sum.

Candidates are the best ``candidate_depth(k)`` rows of each leg, each scored on *both* legs
(a row one leg missed is scored by the other directly, not counted as zero: the text leg
returns its rows' vectors, and the text scores of its best thousand matches), so a memory
that is second-best on both legs is not lost behind one that is best on only one.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Share of the cosine in the hybrid score (the text score has the rest). On LoCoMo 0.4, 0.5
#: and 0.6 gave recall@10 0.686, 0.692 and 0.707 (MRR 0.510-0.516).
VECTOR_WEIGHT = 0.6

#: Fewest candidates taken from each leg. On LoCoMo, 20 per leg for a top 10 ranked exactly
#: as well as scoring every memory on both legs.
MIN_CANDIDATES = 20


def candidate_depth(k: int) -> int:
    """How many rows each leg contributes for a top ``k``."""
    return max(2 * k, MIN_CANDIDATES)


def fuse(
    similarities: Mapping[int, float],
    text_scores: Mapping[int, float],
    k: int,
    *,
    vector_weight: float = VECTOR_WEIGHT,
) -> list[tuple[int, float]]:
    """The best ``k`` candidates by ``w * cosine + (1 - w) * text`` (see :func:`fused_scores`),
    ties broken by row id."""
    return best(fused_scores(similarities, text_scores, vector_weight=vector_weight), k)


def best(scores: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """The ``k`` highest-scoring rows, best first, ties broken by row id."""
    return sorted(scores.items(), key=lambda hit: (-hit[1], hit[0]))[:k]


#: How much a memory's hybrid score is raised by its best-scoring stream neighbour (the memory
#: its agent wrote just before or after it in the namespace; ``aegis_memory.store.neighbours``).
#: On LoCoMo 0.1 / 0.2 / 0.3 gave recall@10 +2 / +3 / +4 points over none; 0.25 is the default.
NEIGHBOUR_WEIGHT = 0.25


def fused_scores(
    similarities: Mapping[int, float],
    text_scores: Mapping[int, float],
    *,
    vector_weight: float = VECTOR_WEIGHT,
) -> dict[int, float]:
    """Every candidate's ``w * cosine + (1 - w) * text``.

    The candidates are the rows of ``similarities`` (every candidate has a cosine: the text
    leg hands over its rows' vectors). ``text_scores`` may hold other rows too; a candidate
    absent from it did not match the query's words and scores 0 on that leg. A negative
    cosine counts as 0, so scores stay within 0-1.
    """
    text_weight = 1.0 - vector_weight
    return {
        row: vector_weight * max(0.0, cosine) + text_weight * text_scores.get(row, 0.0)
        for row, cosine in similarities.items()
    }


def with_neighbours(
    scores: Mapping[int, float],
    links: Mapping[int, tuple[int | None, int | None]],
    k: int,
    *,
    weight: float = NEIGHBOUR_WEIGHT,
) -> list[tuple[int, float]]:
    """The best ``k`` rows by ``(own + weight * best neighbour) / (1 + weight)``.

    ``links`` gives some rows' previous and next rows; the relation is symmetric, so a row
    named only as somebody's neighbour still gets that somebody as its own. A neighbour
    without a score counts as 0. Dividing by ``1 + weight`` keeps scores within 0-1.
    """
    adjacent: dict[int, set[int]] = {}
    for row, pair in links.items():
        for other in pair:
            if other is not None:
                adjacent.setdefault(row, set()).add(other)
                adjacent.setdefault(other, set()).add(row)
    scale = 1.0 + weight
    return best({
        row: (own + weight * max((scores.get(n, 0.0) for n in adjacent.get(row, ())),
                                 default=0.0)) / scale
        for row, own in scores.items()
    }, k)
