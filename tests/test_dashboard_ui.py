"""The web dashboard (issue 11), end to end: a real server with seeded data, real HTTP for the
fragments' access rules, and real headless Chromium (Debian's ``chromium``, driven by
Playwright) for what a person sees.

Browser tests skip when ``/usr/bin/chromium`` is missing, except in CI (``CI`` set), where a
missing browser is a failure: ``.ci/run`` installs it. Each page is photographed in light and
dark to ``test-artifacts/dashboard/``; with ``AEGIS_UPDATE_SCREENSHOTS=1`` the pictures are
copied to ``docs/guides/img/`` too (the guide shows them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import ServerProcess, new_project

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
DOC_IMAGES = ROOT / "docs" / "guides" / "img"
NS = "shop"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: How long a page may take to show its data (the first fragment warms the server up).
WAIT_MS = 20_000


# ----------------------------------------------------------------------------- seeded server


@dataclass
class Seed:
    """The seeded project: its keys and the ids of the memories the tests look for."""

    server: ServerProcess
    project_key: str
    planner_key: str
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base_url

    def api(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60,
                            headers={"Authorization": f"Bearer {key or self.project_key}"})


#: (name, agent, scope, type, content, shared_with): the memories of namespace "shop".
MEMORIES = [
    ("migrations", "planner", "global", "strategy",
     "Always run the database migrations before the integration tests.", None),
    ("planner_note", "planner", "agent-private", "standard",
     "Planner's own note: the release train leaves on Friday.", None),
    ("coder_secret", "coder", "agent-private", "standard",
     "Coder's private note: the staging password rotates every Monday.", None),
    ("shared_429", "coder", "agent-shared", "standard",
     "The payment API answers 429 under load; coder shares this with the planner.",
     ["planner"]),
    ("backoff", "coder", "global", "strategy",
     "Retry payment calls with exponential backoff and jitter.", None),
    ("postgres", None, "global", "standard", "The shop runs on PostgreSQL 16.", None),
    ("mysql", None, "global", "standard", "The shop runs on MySQL 5.7.", None),
]
REFLECTIONS = [
    ("retry_loop", "Timeouts came from the unbounded retry loop in checkout.", "timeout",
     "Cap retries and give every attempt a deadline."),
    ("deadline", "Set a deadline on every outbound HTTP call.", "timeout", None),
    ("invoice", "Check optional customer fields before formatting invoices.", "null-pointer",
     None),
]


def _seed(server: ServerProcess) -> Seed:
    _, project_key = new_project(server, "dashboard-demo")
    with httpx.Client(base_url=server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {project_key}"}) as api:
        planner_key = api.post("/keys", json={"agent_id": "planner", "name": "planner"})
        assert planner_key.status_code == 201, planner_key.text
        seed = Seed(server, project_key, planner_key.json()["key"])
        for name, agent, scope, kind, content, shared in MEMORIES:
            body = {"content": content, "agent_id": agent, "scope": scope,
                    "memory_type": kind, "namespace": NS}
            if shared:
                body["shared_with_agents"] = shared
            r = api.post("/memories/add", json=body)
            assert r.status_code == 200, r.text
            seed.ids[name] = r.json()["id"]
        for name, content, pattern, approach in REFLECTIONS:
            r = api.post("/memories/ace/reflection", json={
                "content": content, "agent_id": "reviewer", "namespace": NS,
                "error_pattern": pattern, "correct_approach": approach})
            assert r.status_code == 200, r.text
            seed.ids[name] = r.json()["id"]
        r = api.post("/memories/ace/delta", json={"namespace": NS, "operations": [
            {"type": "deprecate", "memory_id": seed.ids["mysql"],
             "reason": "We moved to PostgreSQL."}]})
        assert r.status_code == 200 and r.json()["applied"] == 1, r.text
        for memory, voter, vote, task in [
            ("backoff", "planner", "helpful", "feat-checkout"),
            ("backoff", "reviewer", "helpful", "feat-checkout"),
            ("migrations", "coder", "harmful", "feat-search"),
            ("retry_loop", "planner", "helpful", None),
        ]:
            r = api.post(f"/memories/ace/vote/{seed.ids[memory]}",
                         json={"vote": vote, "voter_agent_id": voter, "task_id": task})
            assert r.status_code == 200, r.text
        for body in [
            {"session_id": "sprint-1", "agent_id": "planner", "total_items": 4,
             "completed": ["plan", "design", "review"], "in_progress": "release notes",
             "next_items": ["ship"]},
            {"session_id": "bugfix-429", "agent_id": "coder", "total_items": 2,
             "completed": ["reproduce", "fix"], "status": "completed"},
        ]:
            r = api.post("/memories/ace/session", json={**body, "namespace": NS})
            assert r.status_code == 201, r.text
        for feature, status, description in [
            ("feat-checkout", "in_progress", "Pay for the cart"),
            ("feat-search", "in_progress", "Find products by name"),
            ("feat-login", "not_started", "Sign in with e-mail"),
            ("feat-cart", "blocked", "Keep the cart across visits"),
            ("feat-export", "testing", "Export orders as CSV"),
            ("feat-profile", "in_progress", "Edit the customer profile"),
        ]:
            r = api.post("/memories/ace/feature", json={
                "feature_id": feature, "namespace": NS, "status": status,
                "description": description, "category": "shop"})
            assert r.status_code == 201, r.text
        for feature, change in [("feat-checkout", {"passes": True}),
                                ("feat-search", {"passes": False,
                                                 "failure_reason": "No results for 'mug'"})]:
            r = api.patch(f"/memories/ace/feature/{feature}", json={**change, "namespace": NS})
            assert r.status_code == 200, r.text
    return seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    server = ServerProcess(tmp_path_factory.mktemp("dashboard") / "data").start()
    try:
        yield _seed(server)
    finally:
        server.stop()


# ----------------------------------------------------------------------------- HTTP level


def test_fragments_need_a_key(seeded: Seed) -> None:
    paths = ["/dashboard/api/whoami", "/dashboard/fragments/overview",
             "/dashboard/fragments/memories",
             f"/dashboard/fragments/memories/{seeded.ids['backoff']}",
             "/dashboard/fragments/ace/playbook", "/dashboard/fragments/ace/reflections",
             "/dashboard/fragments/ace/eval", "/dashboard/fragments/progress",
             "/dashboard/fragments/context"]
    for path in paths:
        r = httpx.get(seeded.base + path, timeout=30)
        assert r.status_code == 401, (path, r.text)
        r = httpx.get(seeded.base + path, timeout=30,
                      headers={"Authorization": "Bearer not-a-key"})
        assert r.status_code == 401, (path, r.text)
    r = httpx.post(seeded.base + f"/dashboard/fragments/memories/{seeded.ids['backoff']}/delete",
                   timeout=30)
    assert r.status_code == 401


def test_shells_hold_no_data_and_forbid_inline_scripts(seeded: Seed) -> None:
    for path in ["/dashboard", "/dashboard/memories", "/dashboard/ace", "/dashboard/progress",
                 f"/dashboard/memories/{seeded.ids['backoff']}", "/dashboard/signin"]:
        r = httpx.get(seeded.base + path + f"?ns={NS}", timeout=30)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text  # every script is a file the CSP allows
        for _, _, _, _, content, _ in MEMORIES:
            assert content not in r.text
    from aegis_memory.server.dashboard_ui.pages import STATIC_FILES

    for name, media_type in STATIC_FILES.items():  # shipped in the package, served as typed
        r = httpx.get(seeded.base + f"/dashboard/static/{name}", timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == media_type, name
    for name in ["README.md", "..%2Frender.py", "htmx.LICENSE"]:
        assert httpx.get(seeded.base + f"/dashboard/static/{name}", timeout=30).status_code == 404


def test_whoami_tells_project_and_agent(seeded: Seed) -> None:
    with seeded.api() as api:
        assert api.get("/dashboard/api/whoami").json() == {
            "project_id": "dashboard-demo", "agent_id": None, "is_project_key": True}
    with seeded.api(seeded.planner_key) as api:
        assert api.get("/dashboard/api/whoami").json() == {
            "project_id": "dashboard-demo", "agent_id": "planner", "is_project_key": False}


def test_agent_key_fragments_follow_the_access_rule(seeded: Seed) -> None:
    secret = "staging password"
    with seeded.api(seeded.planner_key) as api:
        table = api.get("/dashboard/fragments/memories", params={"ns": NS})
        assert table.status_code == 200
        assert secret not in table.text
        assert "payment API answers 429" in table.text  # shared with the planner
        assert 'data-stat="total">9<' in table.text
        searched = api.get("/dashboard/fragments/memories", params={"ns": NS, "q": "staging"})
        assert "No memories match" in searched.text
        r = api.get(f"/dashboard/fragments/memories/{seeded.ids['coder_secret']}")
        assert r.status_code == 404 and secret not in r.text
        # Acting as another agent is refused, as on the REST API.
        r = api.get("/dashboard/fragments/memories", params={"ns": NS, "agent": "coder"})
        assert r.status_code == 403
        overview = api.get("/dashboard/fragments/overview", params={"ns": NS})
        assert 'data-stat="memories_total">8<' in overview.text
        # A global memory of another agent is visible but not the planner's to delete.
        r = api.post(f"/dashboard/fragments/memories/{seeded.ids['backoff']}/delete")
        assert r.status_code == 403
        detail = api.get(f"/dashboard/fragments/memories/{seeded.ids['backoff']}")
        assert "confirm-delete" not in detail.text and "Read only for you" in detail.text
        own = api.get(f"/dashboard/fragments/memories/{seeded.ids['planner_note']}")
        assert "confirm-delete" in own.text
    with seeded.api() as api:
        searched = api.get("/dashboard/fragments/memories", params={"ns": NS, "q": "STAGING"})
        assert secret in searched.text
        # A project key viewing as the planner sees what the planner sees.
        as_planner = api.get("/dashboard/fragments/memories",
                             params={"ns": NS, "q": "staging", "agent": "planner"})
        assert secret not in as_planner.text


def test_table_filters_and_pages(seeded: Seed) -> None:
    with seeded.api() as api:
        def total(**params: str) -> int:
            r = api.get("/dashboard/fragments/memories", params={"ns": NS, **params})
            assert r.status_code == 200, r.text
            found = re.search(r'data-stat="total">(\d+)<', r.text)
            return int(found.group(1)) if found else 0

        assert total() == 10
        assert total(scope="agent-private") == 2
        assert total(type="reflection") == 3
        assert total(owner="coder") == 3
        assert total(deprecated="yes") == 1
        assert total(deprecated="no") == 9
        assert total(q="100%") == 0  # LIKE wildcards are literal
        assert total(q="payment", scope="global") == 1
        page = api.get("/dashboard/fragments/memories",
                       params={"ns": NS, "limit": "4", "offset": "8"})
        assert page.text.count("data-memory-id=") == 2 and "Older" not in page.text
        assert api.get("/dashboard/fragments/memories",
                       params={"scope": "everyone"}).status_code == 422


def test_content_is_escaped(seeded: Seed) -> None:
    with seeded.api() as api:
        api.post("/memories/add", json={"content": "<img src=x onerror=alert(1)> & <b>",
                                        "namespace": "xss", "error_pattern": "<i>"})
        table = api.get("/dashboard/fragments/memories", params={"ns": "xss"}).text
    assert "<img src=x" not in table
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;" in table


def test_charts_escape_labels_and_round_their_axes() -> None:
    from aegis_memory.server.dashboard_ui.charts import bar_chart, line_chart, nice_axis

    svg = bar_chart("c", "T <1>", [("<script>", 3.0)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-labelledby="c-title c-desc"' in svg
    assert nice_axis(25) == (30, 10) and nice_axis(3) == (3, 1) and nice_axis(0) == (4, 1)
    assert nice_axis(170) == (200, 50)
    line = line_chart("d", "Days", [("2024-01-01", 0.0), ("2024-01-02", 7.0)])
    assert line.count("<circle") == 2 and "2024-01-02: 7" in line


def test_browsing_on_postgres(start_server) -> None:
    """The listing, summary and pickers are SQL shared by both backends; PostgreSQL runs the
    share-list test and case-insensitive search its own way."""
    server = start_server(backend="postgres")
    _, key = new_project(server)
    with httpx.Client(base_url=server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as api:
        for agent, scope, content, shared in [
            ("ann", "agent-private", "Ann keeps the Deploy notes private", None),
            ("ann", "agent-shared", "Ann shares the deploy runbook with Bo", ["bo"]),
            ("bo", "global", "Everyone can read the DEPLOY calendar", None),
        ]:
            body = {"content": content, "agent_id": agent, "scope": scope, "namespace": "ops"}
            if shared:
                body["shared_with_agents"] = shared
            assert api.post("/memories/add", json=body).status_code == 200
        bo_key = api.post("/keys", json={"agent_id": "bo"}).json()["key"]

        def totals(client: httpx.Client, **params: str) -> int:
            r = client.get("/dashboard/fragments/memories", params={"ns": "ops", **params})
            assert r.status_code == 200, r.text
            found = re.search(r'data-stat="total">(\d+)<', r.text)
            return int(found.group(1)) if found else 0

        assert totals(api) == 3 and totals(api, q="deploy") == 3
        assert totals(api, scope="agent-shared") == 1 and totals(api, owner="ann") == 2
        context = api.get("/dashboard/fragments/context").text
        assert ">ops<" in context and "agent ann" in context
        with httpx.Client(base_url=server.base_url, timeout=60,
                          headers={"Authorization": f"Bearer {bo_key}"}) as bo:
            assert totals(bo) == 2 and totals(bo, q="private") == 0
            overview = bo.get("/dashboard/fragments/overview", params={"ns": "ops"}).text
            assert 'data-stat="memories_total">2<' in overview
            assert "agent ann" not in bo.get("/dashboard/fragments/context").text


def test_the_guide_shows_pictures_that_exist() -> None:
    guide = (ROOT / "docs" / "guides" / "dashboard.md").read_text()
    pictures = set(re.findall(r"img/(dashboard-[a-z]+-[a-z]+\.png)", guide))
    assert len(pictures) == 14
    for name in pictures:
        assert (DOC_IMAGES / name).is_file(), name


# ----------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the dashboard's browser tests: install Debian's chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    # launch() gives the browser a fresh temporary profile of its own, removed on close.
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser tab that records every URL it requests, to check no key is ever in one."""

    page: object
    urls: list[str]


@pytest.fixture
def open_tab(browser, seeded: Seed) -> Iterator[Callable[..., Tab]]:
    contexts = []
    tabs: list[Tab] = []

    def _open(theme: str = "light", width: int = 1280, height: int = 860) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      color_scheme=theme)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        tab = Tab(page, [])
        page.on("request", lambda request: tab.urls.append(request.url))
        page.on("framenavigated", lambda frame: tab.urls.append(frame.url))
        tabs.append(tab)
        return tab

    yield _open
    for context in contexts:
        context.close()
    keys = [seeded.project_key, seeded.planner_key]
    for tab in tabs:
        for url in tab.urls:
            assert not any(k in url for k in keys), f"an API key leaked into a URL: {url}"


def at_sign_in(page: Page) -> None:
    """Wait until the dashboard has sent the page to sign-in. By polling the address, not by
    following navigations: the page's own redirect can abort the navigation that led to it
    (a reload, say), which ``wait_for_url`` reports as an error under load."""
    expect(page).to_have_url(re.compile(r"/dashboard/signin$"), timeout=30_000)


def sign_in(tab: Tab, seed: Seed, key: str, path: str) -> None:
    """Open ``path``; the dashboard sends us to sign-in first, then back to ``path``."""
    page = tab.page
    # "commit": the page sends itself on to sign-in while loading, which ends this navigation.
    page.goto(seed.base + path, wait_until="commit")
    at_sign_in(page)
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(path) + "$"))


def snapshot(tab: Tab, name: str, theme: str) -> None:
    """A full-page picture as a test artefact (and the guide's, when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"dashboard-{name}-{theme}.png"
    tab.page.wait_for_load_state("networkidle")
    tab.page.screenshot(path=str(target), full_page=True)
    if os.environ.get("AEGIS_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOC_IMAGES / target.name)


def text_of(tab: Tab, selector: str) -> str:
    return tab.page.locator(selector).first.inner_text().strip()


def test_wrong_key_shows_an_error(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        page = tab.page
        page.goto(seeded.base + "/dashboard", wait_until="commit")
        at_sign_in(page)
        page.fill("#api-key", "wrong-key-0123456789")
        page.click("#signin-form button[type=submit]")
        error = page.locator("#signin-error")
        error.wait_for(state="visible")
        assert "not accepted" in error.inner_text()
        assert page.url.endswith("/dashboard/signin")
        assert page.evaluate("sessionStorage.getItem('aegis.key')") is None
        snapshot(tab, "signin", theme)


def test_overview_shows_the_seeded_numbers(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        sign_in(tab, seeded, seeded.project_key, f"/dashboard?ns={NS}")
        page = tab.page
        page.locator('[data-stat="memories_total"]').wait_for()
        assert text_of(tab, '[data-stat="memories_total"]') == "9"
        assert text_of(tab, '[data-stat="deprecated"]') == "1"
        assert text_of(tab, '[data-stat="helpful_votes"]') == "3"
        assert text_of(tab, '[data-stat="harmful_votes"]') == "1"
        assert text_of(tab, '[data-stat="voters"]') == "3"
        by_type = {t: text_of(tab, f'#table-by-type [data-type="{t}"]')
                   for t in ("standard", "strategy", "reflection", "progress")}
        assert by_type == {"standard": "4", "strategy": "2", "reflection": "3", "progress": "0"}
        by_scope = {s: text_of(tab, f'#table-by-scope [data-scope="{s}"]')
                    for s in ("global", "agent-private", "agent-shared")}
        assert by_scope == {"global": "6", "agent-private": "2", "agent-shared": "1"}
        agents = page.locator("#table-agents tbody tr").all_inner_texts()
        assert [re.split(r"\s+", a.strip()) for a in agents] == [
            ["coder", "3"], ["reviewer", "3"], ["planner", "2"], ["(no", "agent)", "1"]]
        assert page.locator("svg#chart-activity, #chart-activity-title").count() >= 1
        assert page.locator(".identity").first.inner_text().startswith("Project key")
        snapshot(tab, "overview", theme)


def test_memories_table_search_narrows_rows(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        sign_in(tab, seeded, seeded.project_key, f"/dashboard/memories?ns={NS}")
        page = tab.page
        rows = page.locator("#memories-table tbody tr")
        page.locator('[data-stat="total"]').wait_for()
        assert rows.count() == 10
        assert page.locator("#memories-table tr.is-deprecated").count() == 1
        snapshot(tab, "memories", theme)
        page.locator("#q").press_sequentially("payment", delay=20)
        expect(rows).to_have_count(2)
        ids = sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.memoryId)"))
        assert ids == sorted([seeded.ids["shared_429"], seeded.ids["backoff"]])
        page.select_option("#f-scope", "global")
        expect(rows).to_have_count(1)
        assert rows.first.get_attribute("data-memory-id") == seeded.ids["backoff"]
        page.locator("#q").fill("")
        page.select_option("#f-scope", "")
        page.select_option("#f-type", "reflection")
        expect(rows).to_have_count(3)


def test_memory_detail_shows_votes_and_timeline(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        sign_in(tab, seeded, seeded.project_key, f"/dashboard/memories?ns={NS}")
        page = tab.page
        page.locator(f'tr[data-memory-id="{seeded.ids["backoff"]}"] a').click()
        page.wait_for_url(re.compile(rf"/dashboard/memories/{seeded.ids['backoff']}\?ns={NS}$"))
        page.locator("#memory-content").wait_for()
        assert "exponential backoff" in text_of(tab, "#memory-content")
        voters = sorted(page.locator("#votes-table tbody tr td:first-child").all_inner_texts())
        assert voters == ["planner", "reviewer"]
        events = page.locator("#timeline .event-type").all_inner_texts()
        assert [e.lower() for e in events].count("vote") == 2
        assert events[-1].lower() == "memory created"
        assert page.locator("[data-open-dialog=confirm-delete]").count() == 1
        snapshot(tab, "memory", theme)


def test_ace_page_ranks_groups_and_correlates(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        sign_in(tab, seeded, seeded.project_key, f"/dashboard/ace?ns={NS}")
        page = tab.page
        page.locator("#playbook-table").wait_for()
        ranked = page.locator("#playbook-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.memoryId)")
        assert ranked[0] == seeded.ids["backoff"]  # two helpful votes: +0.67
        assert ranked[1] == seeded.ids["retry_loop"]  # one: +0.50
        assert ranked[-1] == seeded.ids["migrations"]  # one harmful: -0.50
        assert len(ranked) == 5
        page.locator("#chart-reflections-title").wait_for(state="attached")
        assert text_of(tab, '[data-pattern="timeout"]') == "2"
        assert text_of(tab, '[data-pattern="null-pointer"]') == "1"
        page.locator("#eval-table").wait_for()
        assert text_of(tab, '[data-window="global"][data-metric="phi"]') == "+1.00"
        assert text_of(tab, '[data-window="global"][data-metric="samples"]') == "3 (2 / 1)"
        assert text_of(tab, '[data-window="24h"][data-metric="votes"]') == "4 (3 / 1)"
        assert text_of(tab, '[data-window="global"][data-metric="features"]') == "2 (1 / 1)"
        assert page.locator("#chart-eval-rates-title").count() == 1
        assert page.locator("#chart-eval-correlation-title").count() == 1
        snapshot(tab, "ace", theme)


def test_sessions_and_features_board(open_tab, seeded: Seed) -> None:
    for theme in ("light", "dark"):
        tab = open_tab(theme)
        sign_in(tab, seeded, seeded.project_key, f"/dashboard/progress?ns={NS}")
        page = tab.page
        page.locator("#sessions").wait_for()
        assert text_of(tab, '[data-stat="sessions"]') == "2"
        sprint = page.locator('[data-session-id="sprint-1"]')
        assert "3 of 4 · 75%" in sprint.inner_text()
        assert sprint.locator("progress").get_attribute("value") == "3"
        bugfix = page.locator('[data-session-id="bugfix-429"]')
        assert "2 of 2 · 100%" in bugfix.inner_text()
        columns = {
            status: page.locator(f'#feature-board [data-status="{status}"] .feature-card').count()
            for status in ("not_started", "in_progress", "blocked", "testing", "complete",
                           "failed")}
        assert columns == {"not_started": 1, "in_progress": 1, "blocked": 1, "testing": 1,
                           "complete": 1, "failed": 1}
        assert text_of(tab, '[data-stat="features"]') == "6"
        snapshot(tab, "progress", theme)


def test_agent_key_never_shows_another_agents_private_memory(open_tab, seeded: Seed) -> None:
    secret = "staging password"
    tab = open_tab()
    page = tab.page
    sign_in(tab, seeded, seeded.planner_key, f"/dashboard/memories?ns={NS}")
    page.locator('[data-stat="total"]').wait_for()
    assert text_of(tab, '[data-stat="total"]') == "9"
    assert secret not in page.content()
    assert "Agent key" in text_of(tab, ".identity")
    page.locator("#q").press_sequentially("staging", delay=20)
    page.locator("#memory-count", has_text="No memories match").wait_for()
    page.goto(seeded.base + f"/dashboard/memories/{seeded.ids['coder_secret']}?ns={NS}")
    alert = page.locator("#memory-detail .alert-error")
    alert.wait_for()
    assert "not found" in alert.inner_text()
    assert secret not in page.content()
    page.goto(seeded.base + f"/dashboard?ns={NS}")
    page.locator('[data-stat="memories_total"]').wait_for()
    assert text_of(tab, '[data-stat="memories_total"]') == "8"
    assert secret not in page.content()
    page.goto(seeded.base + f"/dashboard/ace?ns={NS}")
    page.locator("#playbook-table").wait_for()
    assert secret not in page.content()

    # The same search with a project key finds it.
    other = open_tab()
    sign_in(other, seeded, seeded.project_key, f"/dashboard/memories?ns={NS}")
    other.page.locator("#q").press_sequentially("staging", delay=20)
    expect(other.page.locator("#memories-table tbody tr")).to_have_count(1)
    assert secret in other.page.locator("#memories-table").inner_text()


def test_delete_asks_for_confirmation_and_removes_the_row(open_tab, seeded: Seed) -> None:
    with seeded.api() as api:
        created = api.post("/memories/add", json={
            "content": "A scratch memory to delete from the dashboard.", "namespace": "scratch",
            "agent_id": "coder"}).json()["id"]
    tab = open_tab()
    page = tab.page
    sign_in(tab, seeded, seeded.project_key, "/dashboard/memories?ns=scratch")
    row = page.locator(f'tr[data-memory-id="{created}"]')
    row.locator("a").click()
    page.locator("[data-open-dialog=confirm-delete]").click()
    dialog = page.locator("#confirm-delete")
    dialog.wait_for(state="visible")
    dialog.locator("button", has_text="Cancel").click()
    dialog.wait_for(state="hidden")
    with seeded.api() as api:
        assert api.get(f"/memories/{created}").status_code == 200  # cancel changed nothing
    page.locator("[data-open-dialog=confirm-delete]").click()
    dialog.locator("button[type=submit]").click()
    page.locator("#memory-detail .alert-success", has_text="was deleted").wait_for()
    page.locator("a", has_text="Back to all memories").click()
    page.locator("#memory-count", has_text="No memories match").wait_for()
    assert row.count() == 0
    with seeded.api() as api:
        assert api.get(f"/memories/{created}").status_code == 404


def test_deprecate_from_the_detail_view(open_tab, seeded: Seed) -> None:
    with seeded.api() as api:
        created = api.post("/memories/add", json={
            "content": "An outdated tip to deprecate.", "namespace": "scratch-2"}).json()["id"]
    tab = open_tab()
    page = tab.page
    sign_in(tab, seeded, seeded.project_key, f"/dashboard/memories/{created}?ns=scratch-2")
    page.locator("[data-open-dialog=confirm-deprecate]").click()
    page.fill("#deprecate-reason", "Superseded by the new guide.")
    page.locator("#confirm-deprecate button[type=submit]").click()
    page.locator("#memory-detail .alert-success", has_text="Deprecated").wait_for()
    assert "Superseded by the new guide." in page.locator(".facts").inner_text()
    with seeded.api() as api:
        assert api.get(f"/memories/{created}").json()["is_deprecated"] is True


def test_revoked_key_and_sign_out_return_to_sign_in(open_tab, seeded: Seed) -> None:
    with seeded.api() as api:
        made = api.post("/keys", json={"name": "short-lived"}).json()
    tab = open_tab()
    page = tab.page
    sign_in(tab, seeded, made["key"], f"/dashboard?ns={NS}")
    page.locator('[data-stat="memories_total"]').wait_for()
    with seeded.api() as api:
        assert api.delete(f"/keys/{made['id']}").status_code in (200, 204)
    page.reload(wait_until="commit")
    at_sign_in(page)
    page.locator("#signin-notice", has_text="sign in again").wait_for()
    assert page.evaluate("sessionStorage.getItem('aegis.key')") is None

    sign_in(tab, seeded, seeded.project_key, f"/dashboard/progress?ns={NS}")
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.locator("#sign-out").click()
    at_sign_in(page)
    page.locator("#signin-notice", has_text="signed out").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    page.goto(seeded.base + "/dashboard/ace", wait_until="commit")
    at_sign_in(page)


def test_small_screens_get_a_usable_layout(open_tab, seeded: Seed) -> None:
    """A phone-sized window: nothing but the tables and charts (which scroll in their own
    frames) is wider than the screen."""
    for path, ready, name in [(f"/dashboard?ns={NS}", '[data-stat="memories_total"]', "overview"),
                              (f"/dashboard/memories?ns={NS}", '[data-stat="total"]', "memories")]:
        tab = open_tab("light", width=390, height=844)
        sign_in(tab, seeded, seeded.project_key, path)
        tab.page.locator(ready).wait_for()
        assert tab.page.evaluate("document.documentElement.scrollWidth") <= 390
        snapshot(tab, name, "mobile")
