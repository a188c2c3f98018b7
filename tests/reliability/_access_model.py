"""The access rule of SPEC §2, written again from the text, and random worlds to check it on.

This is the oracle of ``test_access_properties.py``. It deliberately imports nothing from
``aegis_memory.service.access``: a second, independent statement of the rule is what makes a
disagreement with the server mean something. Everything here is plain data and set algebra.

A *world* is a few projects, each with a few agents and memories whose owner, scope, share
list, type, namespace, expiry, deprecation and vote are drawn by hypothesis. Agent names come
from one small pool shared by every project, so the same name is an agent in several projects
(a cross-project leak by name would show), and the pool holds near-twins (``ann`` / ``anna`` /
``Ann``) and SQL wildcards and quotes (``a%``, ``a_n``, ``q"x``, ``o'k``), so that a share list
matched by prefix, case-folding or ``LIKE`` would show too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

AGENT_POOL: tuple[str, ...] = ("ann", "anna", "Ann", "a%", "a_n", 'q"x', "o'k", "émile", "bob")
SCOPES: tuple[str, ...] = ("agent-private", "agent-shared", "global")
TYPES: tuple[str, ...] = ("standard", "strategy", "reflection", "progress")
#: What a playbook includes by default (SPEC §3).
PLAYBOOK_TYPES = frozenset({"strategy", "reflection"})
#: The web dashboard's playbook fragment shows at most this many entries.
FRAGMENT_PLAYBOOK_LIMIT = 20


# ----------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class MemorySpec:
    """One memory as the test asks for it (``scope_arg`` is what the add request sends)."""

    owner: str | None
    scope_arg: str | None
    shares: tuple[str, ...] | None
    memory_type: str
    namespace: int  # index into the world's namespaces
    expired: bool  # added with a one-second TTL, checked after it has passed
    deprecated: bool
    vote: str | None  # "helpful" / "harmful" by an agent that can see it, or none
    #: A later ``PATCH`` of the scope and share list by the project key (owned memories).
    repatch: tuple[str, tuple[str, ...]] | None = None

    @property
    def scope(self) -> str:
        """SPEC §2, scope on add: explicit wins; else a share list means shared; else an
        owner means private; else global."""
        if self.scope_arg is not None:
            return self.scope_arg
        if self.shares:
            return "agent-shared"
        return "agent-private" if self.owner is not None else "global"

    @property
    def effectiveness(self) -> float:
        """SPEC §3: (helpful - harmful) / (helpful + harmful + 1), with at most one vote."""
        return {"helpful": 0.5, "harmful": -0.5}.get(self.vote or "", 0.0)


@dataclass(frozen=True)
class ProjectSpec:
    agents: tuple[str, ...]
    memories: tuple[MemorySpec, ...]
    #: The owners a cross-agent query of this project targets (empty: no owner filter).
    targets: tuple[str, ...]
    #: A handoff with ``share=true`` after the writes: (source agent, target, namespace).
    share_handoff: tuple[str, str, int] | None = None

    @property
    def outsider(self) -> str:
        """A pool name that owns nothing here (it may be an agent of another project)."""
        return next(a for a in AGENT_POOL if a not in self.agents)


@dataclass(frozen=True)
class WorldSpec:
    projects: tuple[ProjectSpec, ...]
    #: The filters every REST/MCP/SDK query of this world adds (None: no filter).
    probe_scope: str | None
    probe_types: tuple[str, ...] | None
    #: The search mode of those queries (None: the server's default, hybrid).
    probe_mode: str | None = None

    def probe_filters(self) -> dict[str, Any]:
        """The probe filters as request fields (REST body, MCP tool arguments)."""
        fields: dict[str, Any] = {}
        if self.probe_scope:
            fields["scope"] = self.probe_scope
        if self.probe_types:
            fields["memory_types"] = list(self.probe_types)
        if self.probe_mode:
            fields["mode"] = self.probe_mode
        return fields


@st.composite
def _memories(draw: st.DrawFn, agents: tuple[str, ...]) -> MemorySpec:
    owner = draw(st.sampled_from((*agents, None)))
    if owner is None:  # an ownerless memory can only be global (else 422 owner_required)
        scope_arg = draw(st.sampled_from((None, "global")))
    else:
        scope_arg = draw(st.sampled_from((None, *SCOPES)))
    shares = None
    if scope_arg != "agent-private" and (owner is not None or scope_arg == "global"):
        # Shares may name the owner, repeat, or name agents this project does not have.
        shares = draw(st.one_of(st.none(), st.lists(st.sampled_from(AGENT_POOL), max_size=4)
                                .map(tuple)))
    expired = draw(st.integers(0, 5)) == 5
    repatch = None
    if owner is not None and not expired and draw(st.integers(0, 3)) == 3:
        new_scope = draw(st.sampled_from(SCOPES))
        repatch = (new_scope, () if new_scope == "agent-private" else tuple(
            draw(st.lists(st.sampled_from(AGENT_POOL), max_size=3))))
    return MemorySpec(
        owner=owner, scope_arg=scope_arg, shares=shares,
        memory_type=draw(st.sampled_from(TYPES)), namespace=draw(st.integers(0, 1)),
        expired=expired,
        deprecated=not expired and draw(st.integers(0, 4)) == 4,
        vote=None if expired else draw(st.sampled_from((None, None, "helpful", "harmful"))),
        repatch=repatch,
    )


@st.composite
def _projects(draw: st.DrawFn, max_memories: int) -> ProjectSpec:
    agents = tuple(draw(st.lists(st.sampled_from(AGENT_POOL[:-1]), min_size=2, max_size=5,
                                 unique=True)))
    memories = tuple(draw(st.lists(_memories(agents), min_size=1, max_size=max_memories)))
    targets = tuple(draw(st.lists(st.sampled_from(AGENT_POOL), max_size=2, unique=True)))
    share_handoff = None
    if draw(st.booleans()):
        share_handoff = (draw(st.sampled_from(agents)), draw(st.sampled_from(AGENT_POOL)),
                         draw(st.integers(0, 1)))
    return ProjectSpec(agents=agents, memories=memories, targets=targets,
                       share_handoff=share_handoff)


def worlds(max_memories: int) -> st.SearchStrategy[WorldSpec]:
    """2-3 projects of 2-5 agents and 1-``max_memories`` memories each, and query filters."""
    return st.builds(
        WorldSpec,
        projects=st.lists(_projects(max_memories), min_size=2, max_size=3).map(tuple),
        probe_scope=st.sampled_from((None, None, *SCOPES)),
        probe_types=st.one_of(st.none(), st.lists(st.sampled_from(TYPES), min_size=1,
                                                  max_size=2, unique=True).map(tuple)),
        probe_mode=st.sampled_from((None, "vector", "text", "hybrid")),
    )


# ----------------------------------------------------------------------------- stored facts


@dataclass
class Stored:
    """A memory once the server has it: its id, project index, real namespace, and its
    access control list now (as added, then as changed by PATCH or a sharing handoff)."""

    id: str
    project: int
    namespace: str
    spec: MemorySpec
    scope: str = ""
    shares: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.scope:
            self.scope, self.shares = self.spec.scope, tuple(self.spec.shares or ())

    def repatched(self) -> None:
        """SPEC §3 PATCH with an explicit scope and share list: both replace the old ones."""
        assert self.spec.repatch is not None
        self.scope, self.shares = self.spec.repatch

    def shared_by_handoff(self, target: str) -> None:
        """SPEC §3 handoff ``share=true``: the memory becomes visible to the target (a
        global one already is)."""
        if self.scope != "global" and target not in self.shares:
            self.scope, self.shares = "agent-shared", (*self.shares, target)


@dataclass(frozen=True)
class Caller:
    """Who asks: a key of project ``project``, bound to ``bound`` (agent keys), sending
    ``acting`` as the agent to act as (None: omitted)."""

    label: str
    project: int
    key: str
    bound: str | None
    acting: str | None
    #: "project key", "project key as agent", "agent key" or "agent key, explicit".
    kind: str = ""

    @property
    def agent(self) -> str | None:
        """The agent the request acts as (SPEC §2: an agent key defaults to its agent)."""
        return self.acting if self.acting is not None else self.bound

    @property
    def is_project_key(self) -> bool:
        return self.bound is None


@dataclass
class World:
    """A world as built on one server: what was asked for, and what the server holds."""

    spec: WorldSpec
    namespaces: tuple[str, str]
    memories: list[Stored] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)
    #: An agent key of each project and a name it is not bound to (for the 403 checks).
    impostors: list[tuple[Caller, str]] = field(default_factory=list)

    def of_project(self, project: int) -> list[Stored]:
        return [m for m in self.memories if m.project == project]

    def representatives(self) -> list[Caller]:
        """One caller of each kind, the kinds spread over the projects: what the quick form
        checks through the slower doors (MCP, local mode), where every caller is a session."""
        kinds = dict.fromkeys(c.kind for c in self.callers)
        chosen = []
        for i, kind in enumerate(kinds):
            of_kind = [c for c in self.callers if c.kind == kind]
            wanted = i % len(self.spec.projects)
            chosen.append(next((c for c in of_kind if c.project == wanted), of_kind[0]))
        return chosen


# ----------------------------------------------------------------------------- the oracle


def visible(m: Stored, caller: Caller) -> bool:
    """SPEC §2: never across projects; a project key acting as no agent sees its whole
    project; an agent sees global memories, its own, and agent-shared ones listing it."""
    if m.project != caller.project:
        return False
    agent = caller.agent
    if agent is None:
        return True
    return (m.scope == "global" or m.spec.owner == agent
            or (m.scope == "agent-shared" and agent in m.shares))


def live(m: Stored) -> bool:
    """TTL: an expired memory disappears from every read path."""
    return not m.spec.expired


def searchable(m: Stored) -> bool:
    """Search never returns expired or deprecated memories."""
    return live(m) and not m.spec.deprecated


def ids(memories: list[Stored]) -> set[str]:
    return {m.id for m in memories}


def readable(world: World, caller: Caller) -> set[str]:
    """What ``GET /memories/{id}`` and export return: visible and live (deprecated included,
    export's default ``include_deprecated=true``)."""
    return ids([m for m in world.memories if visible(m, caller) and live(m)])


def query_set(world: World, caller: Caller, namespace: str, *, scope: str | None = None,
              types: tuple[str, ...] | None = None, owners: tuple[str, ...] = ()) -> set[str]:
    """What a search in ``namespace`` returns when ``top_k`` exceeds the population."""
    return ids([
        m for m in world.memories
        if visible(m, caller) and searchable(m) and m.namespace == namespace
        and (scope is None or m.scope == scope)
        and (types is None or m.spec.memory_type in types)
        and (not owners or m.spec.owner in owners)
    ])


def playbook_set(world: World, caller: Caller, namespace: str) -> set[str]:
    """Default playbook: strategies and reflections the caller can find, effectiveness ≥ 0."""
    return {
        m.id for m in world.memories
        if m.id in query_set(world, caller, namespace, types=tuple(PLAYBOOK_TYPES))
        and m.spec.effectiveness >= 0.0
    }


def handoff_set(world: World, caller: Caller, namespace: str) -> set[str]:
    """A handoff's key facts: the source's own live, undeprecated memories there."""
    source = caller.agent
    return ids([
        m for m in world.memories
        if m.project == caller.project and m.spec.owner == source and searchable(m)
        and m.namespace == namespace
    ])


def listing_set(world: World, caller: Caller, namespace: str, *,
                playbook: bool = False) -> set[str]:
    """The web dashboard's memories table (deprecated rows included) or, ``playbook``, its
    playbook table (strategies and reflections, deprecated left out)."""
    return ids([
        m for m in world.memories
        if visible(m, caller) and live(m) and m.namespace == namespace
        and (not playbook or (m.spec.memory_type in PLAYBOOK_TYPES and not m.spec.deprecated))
    ])


def counts(world: World, caller: Caller, namespace: str | None) -> dict[str, object]:
    """The overview counts over what the caller sees: live undeprecated memories in all and
    by scope, and the live deprecated ones."""
    seen = [m for m in world.memories if visible(m, caller) and live(m)
            and (namespace is None or m.namespace == namespace)]
    by_scope: dict[str, int] = {}
    for m in seen:
        if not m.spec.deprecated:
            by_scope[m.scope] = by_scope.get(m.scope, 0) + 1
    return {"memories_total": sum(by_scope.values()),
            "deprecated": sum(m.spec.deprecated for m in seen), "by_scope": by_scope}
