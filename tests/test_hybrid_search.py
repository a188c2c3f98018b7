"""Hybrid retrieval: the ``mode`` of a query (``hybrid``, ``vector``, ``text``) and its
neighbour expansion, from the pure ranking functions up to the HTTP API on both backends.

The first part checks :mod:`aegis_memory.index.fusion` and :mod:`aegis_memory.index.text` as
plain functions. Everything after it talks HTTP to the session's real servers (SQLite and
PostgreSQL, see tests/conftest.py): what each mode finds and how it scores, that the text leg
and the neighbour boost obey the same access rules as vector search (agents, shares, projects,
TTL, deprecation, deletion, updates), and that the stream neighbours do what they claim.

Rankings that depend on BM25's corpus statistics (SQLite's FTS5 computes IDF over the whole
database) use :func:`populated`, which makes sure the database holds a realistic number of
unrelated memories first, so that the assertions do not depend on which tests ran before.

Tests named ``..._bug_...`` pin defects found while writing this file; they fail until the fix
described in their docstring is made.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from aegis_memory import AegisClient
from aegis_memory.index.fusion import (
    MIN_CANDIDATES,
    NEIGHBOUR_WEIGHT,
    VECTOR_WEIGHT,
    candidate_depth,
    fuse,
    fused_scores,
    with_neighbours,
)
from aegis_memory.index.text import MAX_QUERY_TERMS, STOPWORDS, query_terms
from aegis_memory.store.postgres import fulltext as pg_fulltext
from aegis_memory.store.sqlite import fulltext as sqlite_fulltext
from tests.conftest import ServerProcess, new_project

#: How far a vector-mode score may be from the cosine computed here: SQLite's in-process index
#: scores float16 copies of the vectors, PostgreSQL float32; the API rounds to 6 places.
COSINE_TOLERANCE = 2e-3
#: How far two scores the server computed from the same inputs may differ (6-place rounding).
ROUNDING = 2e-6


# --------------------------------------------------------------------------- helpers


def add(http: httpx.Client, **body) -> str:
    r = http.post("/memories/add", json=body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def query(http: httpx.Client, path: str = "/memories/query", **body) -> list[dict]:
    r = http.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()["memories"]


def ids(found: list[dict]) -> list[str]:
    return [m["id"] for m in found]


def scores(found: list[dict]) -> dict[str, float]:
    return {m["id"]: m["score"] for m in found}


def rank(found: list[dict], memory_id: str) -> int:
    """1-based position of ``memory_id`` in ``found`` (len + 1 when absent)."""
    order = ids(found)
    return order.index(memory_id) + 1 if memory_id in order else len(order) + 1


def rare_word() -> str:
    """A word no other memory contains (letters and digits, ending in a letter that no
    stemmer rule strips)."""
    return "zq" + uuid.uuid4().hex[:10] + "x"


def client_for(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {key}"})


_POPULATED: set[str] = set()

FILLER_TOPICS = (
    "the quarterly budget review", "a broken coffee machine", "onboarding a new designer",
    "renewing the office lease", "the staging database migration", "a customer survey",
    "planning the summer party", "rotating the on-call schedule", "printer toner orders",
    "the mobile app release", "a security training session", "parking permits",
)


def populated(server: ServerProcess, http: httpx.Client) -> None:
    """Make sure the server's database holds at least 60 unrelated memories (in a namespace
    of their own), as any database in use does: FTS5's BM25 weighs a word by how rare it is in
    the whole table, and in a nearly empty table every word is common."""
    if server.base_url in _POPULATED:
        return
    items = [{"content": f"Note {i}: we talked about {topic} again", "namespace": "filler",
              "agent_id": f"filler-{i % 3}"}
             for i, topic in enumerate(FILLER_TOPICS * 5)]
    r = http.post("/memories/add_batch", json={"items": items})
    assert r.status_code == 200, r.text
    _POPULATED.add(server.base_url)


# =========================================================================== pure functions


def test_candidate_depth_is_twice_k_but_never_below_the_minimum():
    m = MIN_CANDIDATES
    assert m >= 1
    assert candidate_depth(1) == m and candidate_depth(m // 2) == m
    assert candidate_depth(m) == 2 * m and candidate_depth(1000) == 2000


def test_fuse_is_the_weighted_sum_and_a_missing_text_score_counts_zero():
    similarities = {1: 0.8, 2: 0.2, 4: 0.0}
    text = {2: 0.9, 3: 0.5}
    fused = fuse(similarities, text, 10, vector_weight=0.5)
    assert [row for row, _ in fused] == [2, 1, 4]
    assert dict(fused) == pytest.approx({
        1: 0.5 * 0.8,              # no text match: that leg counts 0
        2: 0.5 * 0.2 + 0.5 * 0.9,
        4: 0.0,
    })
    # The candidates are the rows with a cosine (the service gives the text leg's best rows
    # one from their vectors before fusing): a text score alone does not make a candidate.
    assert 3 not in dict(fused)
    # Without vector_weight, the module's VECTOR_WEIGHT applies.
    assert 0.0 < VECTOR_WEIGHT < 1.0
    assert dict(fuse(similarities, text, 10)) == pytest.approx({
        r: VECTOR_WEIGHT * max(0.0, c) + (1 - VECTOR_WEIGHT) * text.get(r, 0.0)
        for r, c in similarities.items()})


def test_fuse_clamps_negative_cosines_and_honours_the_vector_weight():
    # A negative cosine must not pull a word match below a row that matches nothing.
    assert fuse({1: -0.9, 2: 0.0}, {1: 0.4}, 2, vector_weight=0.5) == [
        (1, pytest.approx(0.2)), (2, 0.0)]
    assert dict(fuse({1: 0.6}, {1: 0.2}, 1, vector_weight=1.0)) == pytest.approx({1: 0.6})
    assert dict(fuse({1: 0.6}, {1: 0.2}, 1, vector_weight=0.0)) == pytest.approx({1: 0.2})
    assert dict(fuse({1: 0.6}, {1: 0.2}, 1, vector_weight=0.25)) == pytest.approx(
        {1: 0.25 * 0.6 + 0.75 * 0.2})


def test_fuse_breaks_ties_by_row_id_and_cuts_at_k():
    similarities = {9: 0.4, 3: 0.4, 7: 0.4, 1: 0.1}
    assert fuse(similarities, {}, 2, vector_weight=0.5) == [(3, 0.2), (7, 0.2)]
    assert [row for row, _ in fuse(similarities, {}, 10)] == [3, 7, 9, 1]
    assert fuse({}, {}, 5) == []
    assert fuse(similarities, {}, 0) == []


def test_fused_scores_scores_every_row_the_way_fuse_does():
    rng = random.Random(5)
    similarities = {r: rng.uniform(-1, 1) for r in range(1, 40)}
    text = {r: rng.uniform(0, 0.999) for r in range(20, 70)}
    everything = fused_scores(similarities, text)
    assert set(everything) == set(similarities)  # every candidate, and only those
    assert everything == dict(fuse(similarities, text, 1000))
    top = fuse(similarities, text, 7)
    assert [everything[r] for r, _ in top] == [s for _, s in top]
    assert all(0.0 <= s <= 1.0 for s in everything.values())


def test_with_neighbours_scores_own_plus_weighted_best_neighbour():
    scores = {1: 0.2, 2: 0.8, 3: 0.5, 4: 0.1}
    links = {2: (1, 3), 3: (2, 4)}
    w = 0.5
    got = dict(with_neighbours(scores, links, 10, weight=w))
    assert got == pytest.approx({
        1: (0.2 + w * 0.8) / (1 + w),            # row 1 is only named as 2's neighbour
        2: (0.8 + w * max(0.2, 0.5)) / (1 + w),  # the *best* neighbour counts
        3: (0.5 + w * max(0.8, 0.1)) / (1 + w),
        4: (0.1 + w * 0.5) / (1 + w),
    })
    assert 0.0 < NEIGHBOUR_WEIGHT <= 1.0
    default = dict(with_neighbours(scores, links, 10))
    assert default[1] == pytest.approx((0.2 + NEIGHBOUR_WEIGHT * 0.8) / (1 + NEIGHBOUR_WEIGHT))


def test_with_neighbours_links_are_symmetric():
    """A row that appears only as somebody's neighbour still gets that somebody as its own."""
    scores = {10: 0.9, 20: 0.1, 30: 0.3}
    only_forward = dict(with_neighbours(scores, {10: (None, 20)}, 10, weight=1.0))
    only_backward = dict(with_neighbours(scores, {20: (10, None)}, 10, weight=1.0))
    assert only_forward == only_backward
    assert only_forward[20] == pytest.approx((0.1 + 0.9) / 2)
    assert only_forward[10] == pytest.approx((0.9 + 0.1) / 2)
    assert only_forward[30] == pytest.approx(0.3 / 2)  # no neighbour at all


def test_with_neighbours_missing_neighbour_scores_zero_and_is_not_returned():
    scores = {1: 0.6, 2: 0.4}
    got = with_neighbours(scores, {1: (99, None), 2: (None, None)}, 10, weight=0.5)
    assert dict(got) == pytest.approx({1: 0.6 / 1.5, 2: 0.4 / 1.5})
    assert 99 not in dict(got)  # a neighbour is a boost, not a result of its own


def test_with_neighbours_zero_weight_keeps_scores_and_ties_break_by_row_id():
    scores = {5: 0.3, 2: 0.7, 8: 0.3, 1: 0.05}
    links = {2: (1, 5), 5: (2, 8)}
    # Weight 0: the scores as they were; 5 and 8 tie and the lower row id comes first.
    assert with_neighbours(scores, links, 10, weight=0.0) == [(2, 0.7), (5, 0.3), (8, 0.3),
                                                               (1, 0.05)]
    # A pair that are each other's best neighbour at weight 1 tie too.
    tied = with_neighbours({4: 0.2, 3: 0.6}, {3: (None, 4)}, 10, weight=1.0)
    assert tied == [(3, pytest.approx(0.4)), (4, pytest.approx(0.4))]
    assert with_neighbours(scores, links, 2, weight=0.25) == with_neighbours(
        scores, links, 10, weight=0.25)[:2]


def test_with_neighbours_keeps_scores_in_the_unit_interval():
    rng = random.Random(11)
    for _ in range(200):
        rows = rng.sample(range(1, 60), 25)
        scores = {r: rng.random() for r in rows}
        links = {r: (rng.choice([None, *rows]), rng.choice([None, *rows])) for r in rows[:10]}
        weight = rng.choice([0.0, 0.1, 0.25, 1.0])
        ranked = with_neighbours(scores, links, 25, weight=weight)
        assert {r for r, _ in ranked} == set(rows)
        assert all(0.0 <= s <= 1.0 for _, s in ranked)
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


@pytest.mark.parametrize(("text", "terms"), [
    ("What did Caroline research?", ["caroline", "research"]),
    ("Paris paris PARIS, and pAris!", ["paris"]),                 # dedup after case folding
    ("THE Cat sat ON the MAT", ["cat", "sat", "mat"]),            # upper-case stop words too
    ("order_total_v2 ZX-48213 jdoe@example.com", ["order", "total", "v2", "zx", "48213",
                                                   "jdoe", "example", "com"]),
    ("version 3.14, 2024-05-01", ["version", "3", "14", "2024", "05", "01"]),
    ("Café naïve Zürich", ["café", "naïve", "zürich"]),          # letters of any script
    ('title:foo OR "bar" NOT baz* NEAR(x y)', ["title", "foo", "bar", "baz", "near", "x",
                                                "y"]),
    ("beta alpha beta gamma alpha", ["beta", "alpha", "gamma"]),  # order of first appearance
])
def test_query_terms(text, terms):
    assert query_terms(text) == terms


@pytest.mark.parametrize("text", [
    "what is the", "Who are YOU and where were they?", "???", "   ", "_ _ __", "",
])
def test_query_terms_of_stop_words_and_punctuation_are_empty(text):
    assert query_terms(text) == []


def test_query_terms_are_capped():
    words = [f"w{i}" for i in range(100)]
    text = " the ".join(words)
    assert 1 < MAX_QUERY_TERMS < len(words)
    assert query_terms(text) == words[:MAX_QUERY_TERMS]
    # Repeats and stop words do not count towards the cap.
    assert query_terms("a a a " + "x " * 50 + " ".join(words)) == [
        "x", *words[:MAX_QUERY_TERMS - 1]]
    assert all(w not in STOPWORDS for w in query_terms(" ".join(sorted(STOPWORDS)) + " keep"))


def test_match_expressions_quote_or_join_plain_words():
    """Every word is a quoted FTS5 string / a bare tsquery lexeme OR-ed with the others, so
    none of them can act as an operator (the words are letters and digits only)."""
    assert sqlite_fulltext.match_expression(["near", "or", "x"]) == '"near" OR "or" OR "x"'
    assert pg_fulltext.tsquery_expression(["a1", "b"]) == "a1 | b"


# =========================================================================== over HTTP


def test_text_mode_finds_a_rare_word_whatever_its_meaning(http, ns):
    """The word "quokka" is in a memory about a software release, not about animals: text
    mode finds it by the word alone; vector mode prefers the memory about animals."""
    banner = add(http, content="The deploy banner for sprint quokka is shown on the dashboard",
                 namespace=ns)
    animals = add(http, content="Kangaroos and wombats live in the Australian bush",
                  namespace=ns)
    add(http, content="Standup moved to ten o'clock on Thursdays", namespace=ns)
    question = "Which animal family is the quokka related to?"
    by_words = query(http, query=question, namespace=ns, mode="text")
    assert ids(by_words) == [banner]  # the only memory sharing a (non stop) word
    assert 0 < by_words[0]["score"] <= 1
    by_meaning = query(http, query=question, namespace=ns, mode="vector")
    assert rank(by_meaning, animals) < rank(by_meaning, banner)
    # Stemming: the singular finds the plural, on both backends.
    assert ids(query(http, query="wombat kangaroo", namespace=ns, mode="text")) == [animals]


def test_text_mode_ranks_more_shared_words_first_and_cuts_at_top_k(server, http, ns):
    populated(server, http)
    both = add(http, content="Lisbon trip: flights to Lisbon booked for the Algarve",
               namespace=ns)
    one = add(http, content="The Algarve has nice beaches", namespace=ns)
    other = add(http, content="Flights are cheaper on Tuesdays", namespace=ns)
    add(http, content="Nothing in common here at all", namespace=ns)
    found = query(http, query="Lisbon Algarve", namespace=ns, mode="text", top_k=10)
    assert ids(found) == [both, one]
    assert found[0]["score"] > found[1]["score"]
    assert ids(query(http, query="Lisbon Algarve", namespace=ns, mode="text", top_k=1)) == [both]
    assert other not in ids(found)


def test_vector_mode_score_is_the_cosine(http, ns):
    texts = [
        "The billing service retries webhooks three times",
        "Grandma turned ninety and we threw her a party",
        "Use exponential backoff when the API answers 429",
        "Tomatoes ripen faster in a paper bag",
    ]
    by_text = {add(http, content=t, namespace=ns): t for t in texts}
    question = "How often are failed webhooks retried?"
    # The query's own vector: the same model embeds it as a memory in another namespace.
    add(http, content=question, namespace=ns + "-q")

    def vectors(namespace: str) -> dict[str, np.ndarray]:
        r = http.post("/memories/export", json={"namespace": namespace,
                                               "include_embeddings": True})
        assert r.status_code == 200, r.text
        rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        return {row["content"]: np.asarray(row["embedding"], np.float64) for row in rows}

    stored, asked = vectors(ns), vectors(ns + "-q")[question]
    found = query(http, query=question, namespace=ns, mode="vector", top_k=10)
    assert set(ids(found)) == set(by_text)
    for m in found:
        v = stored[by_text[m["id"]]]
        cosine = float(v @ asked / (np.linalg.norm(v) * np.linalg.norm(asked)))
        assert -1.0 <= m["score"] <= 1.0
        assert m["score"] == pytest.approx(cosine, abs=COSINE_TOLERANCE), by_text[m["id"]]
    assert by_text[found[0]["id"]] == texts[0]


def test_hybrid_ranks_shared_distinctive_words_above_meaning_alone(server, http, ns):
    """A product code and a person's name: vector search prefers the memory that only means
    something close; hybrid search puts the one that shares the distinctive word first."""
    populated(server, http)
    code = add(http, content="Okonkwo asked us to change the delivery address on ZQ4471",
               namespace=ns)
    parcel = add(http, content="The package should reach the customer's home by Friday",
                 namespace=ns)
    name = add(http, content="Adaeze Okonkwo keeps the spare office keys", namespace=ns)
    add(http, content="Standup moved to ten o'clock on Thursdays", namespace=ns)

    question = "When will parcel ZQ4471 arrive?"
    by_meaning = query(http, query=question, namespace=ns, mode="vector")
    assert rank(by_meaning, parcel) < rank(by_meaning, code)
    hybrid = query(http, query=question, namespace=ns)  # hybrid is the default
    assert rank(hybrid, code) == 1 and rank(hybrid, parcel) == 2
    assert ids(query(http, query=question, namespace=ns, mode="text")) == [code]

    # "Okonkwo" is in two memories; the one that also shares "Adaeze" wins on words.
    who = "Can Adaeze Okonkwo let me in?"
    by_words = query(http, query=who, namespace=ns, mode="text")
    assert ids(by_words) == [name, code]
    assert ids(query(http, query=who, namespace=ns))[0] == name


def test_hybrid_score_is_the_fused_sum_of_both_modes(server, http, ns):
    """End to end, with the neighbour boost off: hybrid = w * max(0, cosine) + (1 - w) * text
    (w = ``VECTOR_WEIGHT``), where cosine and text are exactly what vector and text mode
    return."""
    populated(server, http)
    for content in (
        "Caroline researched adoption agencies in March",
        "Melanie painted a sunrise over the lake",
        "Caroline and Melanie went camping with the kids",
        "The research grant was approved last week",
        "Tax forms are due in April",
    ):
        add(http, content=content, namespace=ns, agent_id="conv")
    for question in ("What did Caroline research?", "Who painted the lake at sunrise?"):
        body = {"query": question, "namespace": ns, "top_k": 20}
        vector = scores(query(http, **body, mode="vector"))
        text = scores(query(http, **body, mode="text"))
        hybrid = scores(query(http, **body, mode="hybrid", neighbour_weight=0))
        assert set(hybrid) == set(vector)  # all five: every vector candidate is a result
        assert text and set(text) < set(hybrid)
        for mid, score in hybrid.items():
            expected = VECTOR_WEIGHT * max(0.0, vector[mid]) + (1 - VECTOR_WEIGHT) * text.get(
                mid, 0.0)
            assert score == pytest.approx(expected, abs=COSINE_TOLERANCE)
            assert 0.0 <= score <= 1.0


def test_neighbour_boost_follows_each_agents_stream(http, ns):
    """End to end: with weight w, a memory scores (own + w * best neighbour) / (1 + w), where
    ``own`` is its hybrid score without the boost and its neighbours are the memories its
    agent wrote just before and after it in the namespace; another agent's memories in
    between do not break a stream, and a memory without agent has no neighbours."""
    written = []
    for agent, content in [
        ("conv", "I went to a pottery workshop and made a bowl"),
        ("kb", "Pottery kilns need to reach 1200 degrees"),
        ("conv", "What did you make at the pottery class?"),
        (None, "The kiln in the basement is broken"),
        ("conv", "A blue bowl for my mother"),
        ("kb", "Glazes change colour when fired"),
        ("conv", "The train was late again this morning"),
    ]:
        body = {"content": content, "namespace": ns}
        if agent:
            body |= {"agent_id": agent, "scope": "global"}
        written.append((agent, add(http, **body)))
    c0, k0, c1, g, c2, k1, c3 = (mid for _, mid in written)
    neighbours = {c0: [c1], c1: [c0, c2], c2: [c1, c3], c3: [c2], k0: [k1], k1: [k0], g: []}
    question = "What did I make at the pottery workshop?"
    own = scores(query(http, query=question, namespace=ns, top_k=20, neighbour_weight=0))
    assert set(own) == set(neighbours)
    for w in (0.25, 1.0):
        boosted = query(http, query=question, namespace=ns, top_k=20, neighbour_weight=w)
        assert set(ids(boosted)) == set(neighbours)
        for m in boosted:
            best = max((own[n] for n in neighbours[m["id"]]), default=0.0)
            assert m["score"] == pytest.approx((own[m["id"]] + w * best) / (1 + w),
                                               abs=ROUNDING * 3), (w, m["content"])
            assert 0.0 <= m["score"] <= 1.0
        listed = [m["score"] for m in boosted]
        assert listed == sorted(listed, reverse=True)
    # Leaving neighbour_weight out is the server's default weight.
    default = scores(query(http, query=question, namespace=ns, top_k=20))
    explicit = scores(query(http, query=question, namespace=ns, top_k=20,
                            neighbour_weight=NEIGHBOUR_WEIGHT))
    assert default == explicit


def test_neighbour_expansion_lifts_the_answer_turn(server, http, ns):
    """The answer ("a sprain, two weeks of rest") shares no word with the question and means
    something else; the turn before it, where the question was asked, shares its words. The
    neighbour boost lifts the answer from below other agents' memories about vets and dogs
    (which are semantically closer) into the top 3."""
    populated(server, http)
    turns = [
        "I went to a pottery workshop last weekend and made a bowl",
        "What did the vet say about Biscuit's leg?",
        "He said it's only a sprain and she must rest for two weeks",
        "My brother started learning to play the cello",
        "The train to work was cancelled twice this week",
        "Grandma turned ninety and we threw her a party",
    ]
    turn_ids = [add(http, content=t, namespace=ns, agent_id="conv") for t in turns]
    for content in (
        "Annual check-ups are recommended for every dog",
        "Our cat hates going to the veterinary clinic",
        "Dogs sometimes limp after running on hard ground",
        "My dog hurt her paw at the park yesterday",
        "The animal doctor checked our puppy's injured knee",
        "A limping dog should see a veterinarian",
    ):
        add(http, content=content, namespace=ns, agent_id="kb", scope="global")
    asked, answer = turn_ids[1], turn_ids[2]
    question = "How is Biscuit's leg doing after the vet visit?"
    body = {"query": question, "namespace": ns, "agent_id": "conv", "top_k": 12}
    assert ids(query(http, **body, mode="text")) == [asked]  # only the question turn

    without = query(http, **body, neighbour_weight=0)
    with_default = query(http, **body)
    assert rank(without, asked) == 1 and rank(with_default, asked) == 1
    assert rank(without, answer) >= 4
    assert rank(with_default, answer) <= 3
    assert rank(query(http, **body, neighbour_weight=0.5), answer) == 2
    top3 = {**body, "top_k": 3}
    assert answer not in ids(query(http, **top3, neighbour_weight=0))
    assert answer in ids(query(http, **top3))
    # At weight 1 the two turns share one score: (asked + answer) / 2, each being the
    # other's best neighbour.
    full = scores(query(http, **body, neighbour_weight=1.0))
    assert full[asked] == pytest.approx(full[answer], abs=ROUNDING)
    own = scores(without)
    assert full[answer] == pytest.approx((own[asked] + own[answer]) / 2, abs=ROUNDING * 3)


def test_scores_in_range_and_min_score_filters_on_each_modes_own_score(server, http, ns):
    populated(server, http)
    for content in (
        "Webhooks are retried three times with exponential backoff",
        "The webhook signing secret rotates monthly",
        "Retry budgets stop runaway retries",
        "Grandma turned ninety and we threw her a party",
        "Tomatoes ripen faster in a paper bag",
    ):
        add(http, content=content, namespace=ns, agent_id="ops")
    body = {"query": "how are failed webhooks retried", "namespace": ns, "top_k": 20}
    full = {mode: query(http, **body, mode=mode) for mode in ("vector", "text", "hybrid")}
    assert all(-1.0 <= m["score"] <= 1.0 for m in full["vector"])
    assert all(0.0 <= m["score"] <= 1.0 for m in full["text"])
    assert all(0.0 <= m["score"] <= 1.0 for m in full["hybrid"])
    for mode, found in full.items():
        listed = [m["score"] for m in found]
        assert listed == sorted(listed, reverse=True), mode
        for threshold in (listed[1] - 1e-4, listed[-1] + 1e-4, 0.0):
            kept = query(http, **body, mode=mode, min_score=threshold)
            assert ids(kept) == [m["id"] for m in found if m["score"] >= threshold], mode
    # The same threshold means each mode's own score. Take the memory whose cosine and hybrid
    # score (a weighted sum with its text score) differ most; halfway between the two, a
    # threshold keeps it in one mode and drops it in the other.
    plain = {**body, "neighbour_weight": 0}
    cosines = scores(full["vector"])
    fused = scores(query(http, **plain, mode="hybrid"))
    memory = max(cosines.keys() & fused.keys(), key=lambda m: abs(cosines[m] - fused[m]))
    cosine, hybrid = cosines[memory], fused[memory]
    assert abs(cosine - hybrid) > 0.05
    threshold = (cosine + hybrid) / 2
    kept = {mode: memory in ids(query(http, **plain, mode=mode, min_score=threshold))
            for mode in ("vector", "hybrid")}
    assert kept == {"vector": cosine > hybrid, "hybrid": hybrid > cosine}
    # neighbour_weight only concerns hybrid mode.
    for mode in ("vector", "text"):
        assert query(http, **body, mode=mode, neighbour_weight=1.0) == full[mode]


@pytest.mark.parametrize("path", ["/memories/query", "/memories/query_cross_agent"])
@pytest.mark.parametrize(("field", "value", "says"), [
    ("mode", "semantic", "'hybrid', 'vector' or 'text'"),
    ("mode", "HYBRID", "'hybrid', 'vector' or 'text'"),
    ("mode", None, "mode"),
    ("mode", 1, "mode"),
    ("neighbour_weight", 1.5, "less than or equal to 1"),
    ("neighbour_weight", -0.1, "greater than or equal to 0"),
    ("neighbour_weight", "lots", "neighbour_weight"),
])
def test_bad_mode_or_neighbour_weight_is_a_readable_422(http, ns, path, field, value, says):
    r = http.post(path, json={"query": "anything", "namespace": ns, field: value})
    assert r.status_code == 422, r.text
    data = r.json()
    assert field in data["detail"] and says in data["detail"], data
    assert data["detail"][0].isupper() and data["code"] == "validation_error"


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_words_never_reveal_memories_the_agent_may_not_see(server, http, ns, mode):
    """Private, shared and global memories that all match the query's words exactly: each
    agent (by agent_id or by its own agent key) gets exactly the ones it may see."""
    word = rare_word()
    private = add(http, content=f"alice private {word} payroll note", agent_id="alice",
                  namespace=ns)
    shared = add(http, content=f"alice shared {word} payroll note", agent_id="alice",
                 shared_with_agents=["bob"], namespace=ns)
    public = add(http, content=f"alice global {word} payroll note", agent_id="alice",
                 scope="global", namespace=ns)
    mine = add(http, content=f"carol private {word} payroll note", agent_id="carol",
               namespace=ns)
    expected = {
        "alice": {private, shared, public},
        "bob": {shared, public},
        "carol": {public, mine},
        "dave": {public},
    }
    for agent, visible in expected.items():
        found = query(http, query=f"{word} payroll", namespace=ns, agent_id=agent, mode=mode)
        assert set(ids(found)) == visible, agent
        # The exact content of a memory the agent may not see finds nothing more.
        exact = query(http, query=f"alice private {word} payroll note", namespace=ns,
                      agent_id=agent, mode=mode)
        assert set(ids(exact)) <= visible, agent
    assert set(ids(query(http, query=word, namespace=ns, mode=mode))) == {
        private, shared, public, mine}  # the project key acting as no agent sees everything
    dave_key = http.post("/keys", json={"agent_id": "dave", "name": "dave"}).json()["key"]
    with client_for(server, dave_key) as dave:
        assert set(ids(query(dave, query=word, namespace=ns, mode=mode))) == {public}
        assert ids(query(dave, query=word, namespace=ns, mode=mode, scope="agent-private")) == []
    # Narrowing filters apply to the text leg as well.
    assert set(ids(query(http, query=word, namespace=ns, mode=mode, agent_id="alice",
                         target_agent_ids=["carol"]))) == set()
    assert set(ids(query(http, query=word, namespace=ns, mode=mode, agent_id="carol",
                         target_agent_ids=["carol"]))) == {mine}
    assert ids(query(http, query=word, namespace=ns, mode=mode, agent_id="alice",
                     scope="agent-shared")) == [shared]
    assert ids(query(http, query=word, namespace=ns, mode=mode,
                     memory_types=["strategy"])) == []


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_words_never_cross_projects(server, http, ns, mode):
    word = rare_word()
    here = add(http, content=f"Roadmap {word} lives in the wiki", namespace=ns, scope="global")
    _, other_key = new_project(server)
    with client_for(server, other_key) as other:
        there = add(other, content=f"Roadmap {word} lives in the wiki", namespace=ns,
                    scope="global")
        there_private = add(other, content=f"Secret {word} acquisition", namespace=ns,
                            agent_id="alice")
        assert set(ids(query(other, query=f"roadmap {word}", namespace=ns, mode=mode))) == {
            there, there_private}
        assert here not in ids(query(other, query=f"Roadmap {word} lives in the wiki",
                                     namespace=ns, mode=mode, agent_id="alice"))
    body = {"query": f"Secret {word} acquisition roadmap", "namespace": ns, "mode": mode}
    assert ids(query(http, **body)) == [here]
    assert ids(query(http, **body, agent_id="alice")) == [here]
    cross = "/memories/query_cross_agent"
    assert ids(query(http, cross, **body)) == [here]
    assert ids(query(http, cross, **body, requesting_agent_id="alice")) == [here]


def test_text_leg_follows_ttl_deprecation_deletion_and_updates(http, ns):
    words = {name: rare_word() for name in ("expiring", "deprecated", "deleted", "old", "new")}
    expiring = add(http, content=f"Maintenance window {words['expiring']} tonight",
                   namespace=ns, agent_id="ops", ttl_seconds=1)
    written_at = time.monotonic()
    deprecated = add(http, content=f"Old runbook {words['deprecated']} for restarts",
                     namespace=ns, agent_id="ops")
    deleted = add(http, content=f"Scratch note {words['deleted']} to throw away",
                  namespace=ns, agent_id="ops")
    updated = add(http, content=f"Standup booked in room {words['old']}", namespace=ns,
                  agent_id="ops")

    def text(word: str) -> list[str]:
        return ids(query(http, query=word, namespace=ns, agent_id="ops", mode="text"))

    def hybrid() -> set[str]:
        return set(ids(query(http, query=" ".join(words.values()), namespace=ns,
                             agent_id="ops", top_k=50)))

    # Before: every one is found by its word (so the checks below can fail).
    for name, mid in (("expiring", expiring), ("deprecated", deprecated),
                      ("deleted", deleted), ("old", updated)):
        assert text(words[name]) == [mid], name
    r = http.post("/memories/ace/delta", json={"agent_id": "ops", "namespace": ns, "operations": [
        {"type": "deprecate", "memory_id": deprecated, "reason": "superseded"}]})
    assert r.status_code == 200 and r.json()["results"][0]["ok"], r.text
    assert http.delete(f"/memories/{deleted}", params={"agent_id": "ops"}).status_code == 200
    r = http.patch(f"/memories/{updated}",
                   json={"agent_id": "ops", "content": f"Standup booked in room {words['new']}"})
    assert r.status_code == 200, r.text

    assert text(words["deprecated"]) == []
    assert text(words["deleted"]) == []
    assert text(words["old"]) == []
    assert text(words["new"]) == [updated]
    # The updated memory keeps no trace of its old words in the hybrid score either: for the
    # old word it scores on meaning alone (half its cosine).
    body = {"query": words["old"], "namespace": ns, "agent_id": "ops", "top_k": 50}
    cosine = scores(query(http, **body, mode="vector"))[updated]
    fused = scores(query(http, **body, neighbour_weight=0))[updated]
    assert fused == pytest.approx(VECTOR_WEIGHT * max(0.0, cosine), abs=COSINE_TOLERANCE)
    assert hybrid() == {expiring, updated}

    time.sleep(max(0.0, 1.2 - (time.monotonic() - written_at)))
    assert text(words["expiring"]) == []
    assert hybrid() == {updated}


HIDDEN_BY = ["private", "memory_type", "deprecated"]


def hidden_between(http: httpx.Client, ns: str, hidden_by: str) -> dict:
    """alice writes a global memory, then one a search will not be allowed to return, then
    another global one, into ``ns``; and the two global ones alone into ``ns``-control. The
    middle one matches the query's words exactly; the others match none. Returns the ids,
    the query and the searcher (bob, or alice with a filter that excludes the middle one)."""
    word = rare_word()
    first, last = ("Weekly sync: nothing notable happened",
                   "Lunch order placed for the whole team")
    middle = f"The launch codename is {word} and its budget is four million"
    extra: dict[str, object] = {"scope": "global"}
    if hidden_by == "private":
        extra = {"scope": "agent-private"}
    elif hidden_by == "memory_type":
        extra = {"scope": "global", "memory_type": "reflection"}
    control = ns + "-control"
    w = {
        "g1": add(http, content=first, agent_id="alice", scope="global", namespace=ns),
        "hidden": add(http, content=middle, agent_id="alice", namespace=ns, **extra),
        "g2": add(http, content=last, agent_id="alice", scope="global", namespace=ns),
        "c1": add(http, content=first, agent_id="alice", scope="global", namespace=control),
        "c2": add(http, content=last, agent_id="alice", scope="global", namespace=control),
        "control": control,
        "question": f"What is the budget of {word}?",
    }
    if hidden_by == "deprecated":
        r = http.post("/memories/ace/delta", json={
            "agent_id": "alice", "namespace": ns,
            "operations": [{"type": "deprecate", "memory_id": w["hidden"]}]})
        assert r.status_code == 200 and r.json()["results"][0]["ok"], r.text
    w["searcher"] = {"agent_id": "bob"} if hidden_by == "private" else {"agent_id": "alice"}
    if hidden_by == "memory_type":
        w["searcher"]["memory_types"] = ["standard"]
    return w


@pytest.mark.parametrize("hidden_by", HIDDEN_BY)
def test_neighbours_never_bring_in_hidden_memories(http, ns, hidden_by):
    """Searching as bob (or with a filter that excludes it), the middle memory never comes
    back, whatever the neighbour weight: exactly the two others do, in text mode nothing."""
    w = hidden_between(http, ns, hidden_by)
    for weight in (None, 0.0, 0.5, 1.0):
        extra = {} if weight is None else {"neighbour_weight": weight}
        found = query(http, query=w["question"], namespace=ns, top_k=10, **w["searcher"],
                      **extra)
        assert set(ids(found)) == {w["g1"], w["g2"]}, weight
        assert all(0.0 <= m["score"] <= 1.0 for m in found)
    assert query(http, query=w["question"], namespace=ns, mode="text", **w["searcher"]) == []
    # The setup is sensitive: when the middle memory may be seen, it is found first and lifts
    # its neighbours above their scores in the control namespace.
    if hidden_by != "deprecated":
        body = {"query": w["question"], "agent_id": "alice", "neighbour_weight": 0.5}
        visible = query(http, **body, namespace=ns)
        control = scores(query(http, **body, namespace=w["control"]))
        assert ids(visible)[0] == w["hidden"]
        assert scores(visible)[w["g1"]] > control[w["c1"]] + 0.01


@pytest.mark.parametrize("hidden_by", HIDDEN_BY)
def test_a_hidden_memory_leaves_no_trace_in_its_neighbours_scores(http, ns, hidden_by):
    """A memory the searcher may not see must look exactly like one that does not exist
    (SPEC 2, tests/test_access_matrix.py). Here alice writes three memories; bob may not see
    the middle one. His scores for the other two must equal those of the same two memories
    in a namespace where the middle one was never written: a stream closes over what the
    filter hides (deprecated and filtered-out memories too), leaving no gap to notice."""
    w = hidden_between(http, ns, hidden_by)
    differing = {}
    for weight in (None, 0.5, 1.0):
        extra = {} if weight is None else {"neighbour_weight": weight}
        got = scores(query(http, query=w["question"], namespace=ns, top_k=10,
                           **w["searcher"], **extra))
        same = scores(query(http, query=w["question"], namespace=w["control"], top_k=10,
                            **w["searcher"], **extra))
        for mine, theirs in (("g1", "c1"), ("g2", "c2")):
            if abs(got[w[mine]] - same[w[theirs]]) > ROUNDING:
                differing[(weight, mine)] = (got[w[mine]], same[w[theirs]])
    assert differing == {}, "score with a hidden neighbour vs without it: " + repr(differing)


def test_cross_agent_query_honours_mode(http, ns):
    word = rare_word()
    bob_note = add(http, content=f"Bob filed ticket {word} about the login page",
                   agent_id="bob", scope="global", namespace=ns)
    bob_private = add(http, content=f"Bob's private {word} draft", agent_id="bob",
                      namespace=ns)
    alice_note = add(http, content="Alice reviewed the authentication page layout",
                     agent_id="alice", scope="global", namespace=ns)
    cross = "/memories/query_cross_agent"
    base = {"query": f"ticket {word} sign-in screen", "namespace": ns,
            "requesting_agent_id": "carol"}
    text = query(http, cross, **base, mode="text")
    assert ids(text) == [bob_note]  # bob's private one matches too, but carol may not see it
    same = query(http, query=base["query"], namespace=ns, agent_id="carol", mode="text")
    assert scores(text) == scores(same)
    vector = query(http, cross, **base, mode="vector")
    assert set(ids(vector)) == {bob_note, alice_note}
    assert scores(vector) == pytest.approx(scores(query(
        http, query=base["query"], namespace=ns, agent_id="carol", mode="vector")),
        abs=ROUNDING)
    hybrid = query(http, cross, **base, neighbour_weight=0)
    assert set(ids(hybrid)) == {bob_note, alice_note}
    assert scores(hybrid)[bob_note] == pytest.approx(
        VECTOR_WEIGHT * max(0.0, scores(vector)[bob_note])
        + (1 - VECTOR_WEIGHT) * scores(text)[bob_note],
        abs=COSINE_TOLERANCE)
    only_alice = query(http, cross, **base, mode="text", target_agent_ids=["alice"])
    assert only_alice == []  # alice's note shares no word with the query
    # As bob, his own private memory is found by its word too.
    as_bob = query(http, cross, **{**base, "requesting_agent_id": "bob"}, mode="text")
    assert set(ids(as_bob)) == {bob_note, bob_private}


def test_a_query_of_stop_words_only(http, ns):
    mid = add(http, content="What is the plan for the offsite?", namespace=ns)
    for stop_words in ("what is the", "Who, what, where? And when!", "???"):
        r = http.post("/memories/query", json={"query": stop_words, "namespace": ns,
                                               "mode": "text"})
        assert r.status_code == 200, r.text
        assert r.json()["memories"] == [] and r.json()["retrieval_event_id"]
    # Hybrid mode still ranks by meaning: the text leg adds nothing.
    vector = scores(query(http, query="what is the", namespace=ns, mode="vector"))
    hybrid = scores(query(http, query="what is the", namespace=ns, neighbour_weight=0))
    assert set(hybrid) == {mid}
    assert hybrid[mid] == pytest.approx(VECTOR_WEIGHT * max(0.0, vector[mid]),
                                        abs=COSINE_TOLERANCE)


@pytest.mark.parametrize("mode", ["text", "hybrid"])
def test_search_syntax_in_a_query_is_just_words(http, ns, mode):
    """FTS5 and tsquery operators, quotes, wildcards and very long words are searched as
    plain words, never parsed (no 500, no error)."""
    mid = add(http, content="near the title foo bar baz", namespace=ns)
    for text in ('title:foo OR "bar" NOT baz*', "NEAR(foo bar)", "foo & !bar | (baz:*)",
                 "foo' OR 1=1 --", "x" * 3000 + " foo", "\"unterminated foo"):
        r = http.post("/memories/query", json={"query": text, "namespace": ns, "mode": mode})
        assert r.status_code == 200, (text[:40], r.text)
        assert ids(r.json()["memories"]) == [mid], text[:40]


def test_sdk_query_takes_the_mode(server, ns):
    with AegisClient(api_key=server.api_key, base_url=server.base_url, timeout=60) as client:
        banner = client.add("The deploy banner for sprint quokka is shown on the dashboard",
                            namespace=ns)
        client.add("Kangaroos and wombats live in the Australian bush", namespace=ns)
        by_words = client.query("quokka facts", namespace=ns, mode="text")
        assert [m.id for m in by_words] == [banner.id] and by_words.retrieval_event_id
        by_meaning = client.query("quokka facts", namespace=ns, mode="vector")
        assert len(by_meaning) == 2 and all(-1 <= m.score <= 1 for m in by_meaning)
        hybrid = client.query("quokka facts", namespace=ns)
        assert hybrid[0].id == banner.id and all(0 <= m.score <= 1 for m in hybrid)
        cross = client.query_cross_agent("quokka facts", requesting_agent_id="x", namespace=ns,
                                         mode="text")
        assert [m.id for m in cross] == [banner.id]


# ====================================================== word boundaries, accents, statistics


@pytest.fixture
def text_finds(http: httpx.Client, ns: str) -> Iterator:
    def finds(content: str, question: str) -> bool:
        mid = add(http, content=content, namespace=ns)
        return mid in ids(query(http, query=question, namespace=ns, mode="text"))

    yield finds


def test_text_mode_finds_words_inside_codes_numbers_and_addresses(text_finds):
    """Both backends split words at every punctuation mark, as ``query_terms`` does.
    PostgreSQL's parser alone would keep e-mails, host names, paths, versions and decimals as
    single tokens (and read "ZX-48213" as "zx" and "-48213"), so migration 0005 indexes the
    content with punctuation turned into spaces."""
    cases = [
        ("Order ZX-48213 shipped from the Leeds warehouse", "48213"),
        ("Write to jdoe@example.com about the invoice", "jdoe@example.com"),
        ("The service runs at api.internal.example.org behind the proxy",
         "api.internal.example.org"),
        ("Config lives in /etc/nginx/nginx.conf on the edge boxes", "nginx"),
        ("Release 3.14 fixed the cache stampede", "3.14"),
        ("The churn ratio was 0.75 last quarter", "0.75"),
    ]
    missed = [question for content, question in cases if not text_finds(content, question)]
    assert missed == []


def test_text_mode_folds_accents_on_both_backends(text_finds):
    """Diacritics are folded on both backends, in memories and in queries: "cafe" finds
    "café" and the other way round. SQLite's FTS5 table removes them (``remove_diacritics
    2``); PostgreSQL's ``aegis_english`` configuration puts the ``unaccent`` dictionary before
    the stemmer (migration 0006)."""
    cases = [
        ("We booked a table at the café near the station", "cafe"),
        ("That was a naive plan for the rollout", "naïve"),
        ("Our office in Zurich opens at eight", "Zürich"),
    ]
    missed = [question for content, question in cases if not text_finds(content, question)]
    assert missed == []


def test_text_scores_do_not_depend_on_other_projects(server, http, ns):
    """A project's text scores must not depend on what other projects store: a tenant
    would otherwise watch its own scores move when another tenant writes a word. SQLite
    keeps one FTS5 table per project (BM25's word statistics are the project's own);
    PostgreSQL's ``ts_rank`` uses no corpus statistics. Here two memories are alike but for
    one equally rare word each, so they score the same; then another project writes five
    memories with the first word."""
    a, b = rare_word(), rare_word()
    first = add(http, content=f"Planning notes {a} for the spring", namespace=ns)
    second = add(http, content=f"Planning notes {b} for the spring", namespace=ns)

    def text_scores() -> tuple[float, float]:
        found = scores(query(http, query=f"{a} {b}", namespace=ns, mode="text"))
        assert set(found) == {first, second}
        return found[first], found[second]

    before = text_scores()
    assert before[0] == before[1]  # alike, and their words equally rare
    _, other_key = new_project(server)
    with client_for(server, other_key) as other:
        r = other.post("/memories/add_batch", json={"items": [
            {"content": f"Their memo {i} mentions {a}", "namespace": "elsewhere"}
            for i in range(5)]})
        assert r.status_code == 200, r.text
    after = text_scores()
    assert after == before, (
        f"another project's memories changed this project's text scores of two alike "
        f"memories from {before} to {after}")


DECOMPOSED = [unicodedata.normalize("NFD", w) for w in ("Zürich", "naïve", "café")]


def test_query_terms_keep_letters_with_combining_accents_whole():
    """``query_terms`` normalises to NFC first. Text typed or pasted in decomposed form (NFD:
    a letter followed by a combining accent, as macOS and some editors produce) is cut at
    every accent, because a combining mark is not matched by ``[^\\W_]``: "Zürich" becomes
    "zu" and "rich", "naïve" becomes "nai" and "ve", so the word is not found at all.

    Fix: normalise before splitting, in ``query_terms``:
    ``for word in _WORD.findall(unicodedata.normalize("NFC", text).lower())``.
    """
    split = {word: query_terms(word) for word in DECOMPOSED
             if query_terms(word) != query_terms(unicodedata.normalize("NFC", word))}
    assert split == {}


def test_text_mode_finds_a_word_typed_with_combining_accents(text_finds):
    """The same bug over HTTP: the memory says "Zürich" (composed, as most text is); the
    query types it decomposed and finds nothing on either backend. See the test above."""
    cases = [
        ("Our office in Zürich opens at eight", DECOMPOSED[0]),
        ("That was a naïve plan for the rollout", DECOMPOSED[1]),
    ]
    missed = [question for content, question in cases if not text_finds(content, question)]
    assert missed == []


def test_imported_memories_are_found_by_their_words_and_so_are_later_adds(http, ns):
    """A bulk import indexes its rows for text search in one statement at its end (SQLite:
    not row by row by the triggers); the memories written after it are indexed as usual."""
    words = [rare_word() for _ in range(3)]
    added = [add(http, content=f"Imported note about {w}", namespace=ns) for w in words]
    exported = [json.loads(line) for line in
                http.post("/memories/export", json={"namespace": ns}).text.splitlines()]
    assert len(exported) == 3
    for memory_id in added:
        assert http.delete(f"/memories/{memory_id}").status_code == 200
    assert query(http, query=words[0], namespace=ns, mode="text") == []
    r = http.post("/memories/import", json={"memories": exported})
    assert r.status_code == 200 and r.json()["imported"] == 3, r.text
    for word, memory_id in zip(words, added, strict=True):
        assert ids(query(http, query=word, namespace=ns, mode="text")) == [memory_id]
    again = http.post("/memories/import", json={"memories": exported})  # all skipped
    assert again.status_code == 200 and again.json()["imported"] == 0, again.text
    later = rare_word()
    later_id = add(http, content=f"Written after the import: {later}", namespace=ns)
    assert ids(query(http, query=later, namespace=ns, mode="text")) == [later_id]
    assert ids(query(http, query=words[1], namespace=ns, mode="text")) == [added[1]]
