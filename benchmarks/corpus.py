"""Seeded synthetic corpus of agent memories, and queries over it, for the benchmark suite.

Why synthetic: the suite needs a million distinct memories with owners, namespaces, users and
scopes, reproducible from a seed on any machine, and no public dataset has that shape. The
sentences are short and read like what agents store (user preferences and facts, API
behaviour, incidents, fixes, deployment notes, lessons, task progress), built from templates
whose vocabulary depends on the namespace, so that embeddings cluster by topic the way real
memories do. Every content string is unique, so none of them is a dedup hit.

The population is skewed like a real deployment: a few busy namespaces and many small ones,
agents of very different activity, 60 % private, 10 % shared (with one to three agents of the
same namespace) and 30 % global memories, and a tail of user-scoped facts.

Nothing here depends on ``aegis_memory`` (the mem0 runner reads the same files in its own
virtual environment). Usage::

    from corpus import CorpusSpec, generate, make_queries
    items = generate(CorpusSpec(n=100_000, seed=7))
    queries = make_queries(items, 200, seed=8)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

NAMESPACES: tuple[str, ...] = (
    "support", "billing", "research", "devops", "sales", "onboarding", "security", "data",
    "mobile", "legal", "marketing", "hr", "finance", "qa", "design", "partners",
)
"""Namespaces, busiest first; their weights fall off like 1/rank."""

_CITIES = (
    "Lisbon", "Berlin", "Nairobi", "Osaka", "Toronto", "Lima", "Krakow", "Austin", "Pune", "Oslo",
    "Seoul", "Dublin", "Cairo", "Bogota", "Hanoi", "Denver", "Porto", "Zurich", "Accra", "Perth",
)
_NAMES = (
    "Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena",
    "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen",
    "Ximena", "Yusuf", "Zoe",
)
_SURNAMES = tuple("ABCDEFGHIJKLMNOPRSTVWZ")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)

# Per-namespace vocabulary: things, problems, actions. Shared templates below fill them in.
_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "support": {
        "thing": ("password reset", "login page", "ticket queue", "refund form", "live chat",
                  "help center", "escalation path", "SLA timer", "mobile app", "email inbox"),
        "problem": ("times out", "shows a blank page", "loses the draft", "sends duplicates",
                    "rejects valid input", "logs the user out", "hangs on upload", "loops"),
        "action": ("clear the session cookie", "reissue the token", "escalate to tier two",
                   "restart the worker", "resend the confirmation", "switch to the web form"),
    },
    "billing": {
        "thing": ("invoice export", "card payment", "tax calculation", "proration", "dunning run",
                  "credit note", "usage meter", "annual plan", "VAT number", "payout"),
        "problem": ("double charges", "rounds cents wrongly", "skips the discount", "fails for EUR",
                    "misses the trial end", "retries too often", "ignores the coupon"),
        "action": ("void and reissue the invoice", "refund the difference", "pause dunning",
                   "recompute tax", "apply the credit manually", "switch the currency"),
    },
    "research": {
        "thing": ("literature review", "benchmark run", "dataset split", "ablation", "baseline",
                  "citation list", "survey draft", "embedding model", "eval harness", "paper"),
        "problem": ("leaks test data", "is not reproducible", "uses an old checkpoint",
                    "overfits", "has a label error", "misses recent work", "drifts"),
        "action": ("fix the random seed", "re-split by user", "pin the checkpoint",
                   "add the 2024 papers", "rerun with three seeds", "report the variance"),
    },
    "devops": {
        "thing": ("staging cluster", "deploy pipeline", "database migration", "TLS certificate",
                  "load balancer", "backup job", "log shipper", "DNS record", "cron job", "VPN"),
        "problem": ("runs out of disk", "expires next week", "drops connections", "deadlocks",
                    "fails the health check", "fills the error budget", "flaps at night"),
        "action": ("rotate the certificate", "raise the disk quota", "roll back the release",
                   "add a retry with backoff", "pin the image tag", "drain the node first"),
    },
    "sales": {
        "thing": ("enterprise lead", "pricing page", "demo call", "renewal", "quote", "trial",
                  "procurement review", "discount request", "pilot", "contract redline"),
        "problem": ("stalls at legal", "needs SSO", "asks for on-prem", "wants a lower price",
                    "needs a security review", "changes the champion", "slips a quarter"),
        "action": ("loop in the solutions engineer", "offer a two-month pilot", "send the SOC 2",
                   "schedule a roadmap call", "prepare a custom quote", "ask for a reference"),
    },
}
_GENERIC_TOPIC = {
    "thing": ("weekly report", "shared drive", "project plan", "handbook page", "status page",
              "task board", "review checklist", "onboarding doc", "policy", "dashboard"),
    "problem": ("is out of date", "has broken links", "misses an owner", "duplicates work",
                "is hard to find", "needs approval", "conflicts with the new process"),
    "action": ("assign an owner", "archive the old version", "link it from the wiki",
               "ask for a review", "split it into steps", "add a due date"),
}

_PREFERENCES = (
    "dark mode", "short answers", "email over phone", "metric units", "weekly summaries",
    "bullet points", "morning meetings", "Python examples", "no emojis", "formal tone",
    "Spanish replies", "CSV exports", "video calls", "detailed logs", "plain text email",
)

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "standard": (
        "{name} from {city} prefers {pref} when working on the {thing}.",
        "The {thing} {problem} when more than {n} requests arrive within a minute.",
        "Customer {name} reported that the {thing} {problem} on {weekday}.",
        "{name} asked to be contacted about the {thing} before {month} {day}.",
        "The {thing} owned by {name} {problem}; ticket {ticket} tracks it.",
        "{name} works in {city} and is responsible for the {thing}.",
        "On {weekday} the {thing} {problem} for about {n} minutes.",
    ),
    "strategy": (
        "When the {thing} {problem}, {action} before anything else.",
        "To handle the {thing} quickly, {action} and then tell {name}.",
        "If the {thing} {problem} again, {action}; it worked in case {ticket}.",
    ),
    "reflection": (
        "Mistake: I assumed the {thing} was fine, but it {problem}; next time {action}.",
        "Lesson from case {ticket}: the {thing} {problem} unless you {action}.",
        "Trying to {action} did not help the {thing}; {name} found the real cause.",
    ),
    "progress": (
        "Finished step {n} of the {thing} migration; next is to {action}.",
        "Session {ticket}: {thing} checked, {n} items left, blocked on {name}.",
    ),
}
_TYPE_WEIGHTS = (("standard", 0.72), ("strategy", 0.12), ("reflection", 0.10), ("progress", 0.06))

_QUESTIONS = (
    "What does {name} prefer for the {thing}?",
    "Why is it that the {thing} {problem}?",
    "How should I fix the {thing} when it {problem}?",
    "Who is responsible for the {thing}?",
    "What happened with the {thing} on {weekday}?",
    "What did we learn about the {thing}?",
)


@dataclass(frozen=True)
class CorpusSpec:
    """How a corpus is drawn. The same spec always gives the same memories, in order."""

    n: int
    seed: int = 7
    agents_per_namespace: int = 12
    users: int = 5_000
    private_share: float = 0.6
    shared_share: float = 0.1


@dataclass
class Item:
    """One memory of the corpus, in the shape of an import/add request."""

    id: str
    content: str
    namespace: str
    agent_id: str
    user_id: str | None
    scope: str
    memory_type: str
    shared_with_agents: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class Query:
    """A question one agent asks in one namespace (``user_id`` set for user-scoped asks)."""

    text: str
    agent_id: str
    namespace: str
    user_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def agents_of(namespace: str, spec: CorpusSpec) -> list[str]:
    return [f"{namespace}-agent-{i}" for i in range(spec.agents_per_namespace)]


def _namespace_weights() -> list[float]:
    return [1.0 / (rank + 1) for rank in range(len(NAMESPACES))]


def _agent_weights(count: int) -> list[float]:
    # A few busy agents, a long tail: weight 1/sqrt(rank).
    return [1.0 / (rank + 1) ** 0.5 for rank in range(count)]


def _fill(template: str, rng: random.Random, topic: dict[str, tuple[str, ...]]) -> str:
    return template.format(
        name=f"{rng.choice(_NAMES)} {rng.choice(_SURNAMES)}.", city=rng.choice(_CITIES),
        pref=rng.choice(_PREFERENCES),
        thing=rng.choice(topic["thing"]), problem=rng.choice(topic["problem"]),
        action=rng.choice(topic["action"]), n=rng.randint(2, 500),
        weekday=rng.choice(_WEEKDAYS), month=rng.choice(_MONTHS), day=rng.randint(1, 28),
        ticket=f"#{rng.randint(1000, 99999)}",
    )


def generate(spec: CorpusSpec) -> list[Item]:
    """The corpus: ``spec.n`` unique memories, deterministic for the spec."""
    return list(iter_items(spec))


def iter_items(spec: CorpusSpec) -> Iterator[Item]:
    rng = random.Random(spec.seed)
    ns_weights = _namespace_weights()
    agents = {ns: agents_of(ns, spec) for ns in NAMESPACES}
    agent_weights = _agent_weights(spec.agents_per_namespace)
    types, type_weights = zip(*_TYPE_WEIGHTS, strict=True)
    seen: set[str] = set()
    made = 0
    while made < spec.n:
        ns = rng.choices(NAMESPACES, ns_weights)[0]
        topic = _TOPICS.get(ns, _GENERIC_TOPIC)
        mtype = rng.choices(types, type_weights)[0]
        content = _fill(rng.choice(_TEMPLATES[mtype]), rng, topic)
        if content in seen:
            # Templates are finite; a short suffix keeps every memory distinct without
            # changing what it is about.
            content = f"{content[:-1]} (note {made})."
        seen.add(content)
        agent = rng.choices(agents[ns], agent_weights)[0]
        roll = rng.random()
        shared: list[str] = []
        if roll < spec.private_share:
            scope = "agent-private"
        elif roll < spec.private_share + spec.shared_share:
            scope = "agent-shared"
            others = [a for a in agents[ns] if a != agent]
            shared = rng.sample(others, rng.randint(1, min(3, len(others))))
        else:
            scope = "global"
        user = f"user-{rng.randrange(spec.users)}" if rng.random() < 0.35 else None
        yield Item(
            id=f"bench-{spec.seed}-{made:08d}", content=content, namespace=ns, agent_id=agent,
            user_id=user, scope=scope, memory_type=mtype, shared_with_agents=shared,
        )
        made += 1


def make_queries(
    items: Sequence[Item], count: int, seed: int = 8, agents_per_namespace: int = 12
) -> list[Query]:
    """Questions asked by agents about things in their namespace.

    Each query is anchored on a random memory: the asking agent is one of that namespace's
    agents, and the question reuses the memory's topic words, as an agent recalling context
    for its current task would.
    """
    rng = random.Random(seed)
    out: list[Query] = []
    for _ in range(count):
        item = items[rng.randrange(len(items))]
        topic = _TOPICS.get(item.namespace, _GENERIC_TOPIC)
        words = item.content.replace(",", " ").split()
        thing = next((t for t in topic["thing"] if t in item.content), rng.choice(topic["thing"]))
        name = next((w for w in words if w in _NAMES), rng.choice(_NAMES))
        text = rng.choice(_QUESTIONS).format(
            name=name, thing=thing, problem=rng.choice(topic["problem"]),
            weekday=rng.choice(_WEEKDAYS),
        )
        asker = f"{item.namespace}-agent-{rng.randrange(agents_per_namespace)}"
        user = item.user_id if rng.random() < 0.2 else None
        out.append(Query(text=text, agent_id=asker, namespace=item.namespace, user_id=user))
    return out


def write_jsonl(path: Path, rows: Iterable[Item | Query]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.to_json())
            fh.write("\n")
            count += 1
    return count


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    for item in generate(CorpusSpec(n=n)):
        print(item.to_json())
