"""The words of a query that the full-text leg of a hybrid search looks for.

A question such as "What did Caroline research?" should find memories that share its content
words ("caroline", "research"), in any order and not necessarily all of them, so the words
are OR-ed and BM25 ranks memories that share more (and rarer) words higher. Words that carry
no topic ("what", "did", "the") are dropped here: they would match nearly every memory and
only cost time. Stemming ("researched" -> "research") is the database's job (FTS5's Porter
tokenizer, PostgreSQL's ``english`` configuration), so both backends stem the query and the
memories the same way.
"""

from __future__ import annotations

import re
import unicodedata

#: Longest list of words a query searches for; the rest of a very long query is left to the
#: vector leg (a match expression with hundreds of terms is slow and no better).
MAX_QUERY_TERMS = 32

# Letters and digits; "_" and punctuation split words, as both databases' tokenizers do.
_WORD = re.compile(r"[^\W_]+")

_STOPWORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing don down during each ever few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me might more most must my myself no nor not now of off on once only or other
our ours ourselves out over own s same shall she should so some such t than that the their
theirs them themselves then there these they this those through to too under until up upon
very was we were what when where which while who whom whose why will with would you your
yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def query_terms(text: str) -> list[str]:
    """Distinct lower-case words of ``text`` worth matching, in order of first appearance."""
    terms: list[str] = []
    seen: set[str] = set()
    # NFC first: text typed as a letter plus a combining accent (as macOS produces) would
    # otherwise be cut at each accent.
    for word in _WORD.findall(unicodedata.normalize("NFC", text).lower()):
        if word in STOPWORDS or word in seen:
            continue
        seen.add(word)
        terms.append(word)
        if len(terms) == MAX_QUERY_TERMS:
            break
    return terms
