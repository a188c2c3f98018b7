"""Targets, the pass/fail table, and the growth plot of the performance suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """One line of issue 8's table: how to read the figure from a report, and the bound."""

    name: str
    unit: str
    bound: float
    higher_is_better: bool
    read: Callable[[dict[str, Any]], float | None]

    def check(self, report: dict[str, Any]) -> dict[str, Any]:
        try:
            value = self.read(report)
        except (KeyError, IndexError, TypeError, ZeroDivisionError):
            value = None
        if value is None:
            status = "not measured"
        elif self.higher_is_better:
            status = "pass" if value >= self.bound else "FAIL"
        else:
            status = "pass" if value <= self.bound else "FAIL"
        return {"target": self.name, "value": value, "bound": self.bound, "unit": self.unit,
                "op": ">=" if self.higher_is_better else "<=", "status": status}


def _last(r: dict[str, Any]) -> dict[str, Any]:
    return r["steps"][-1]


def _ratio(r: dict[str, Any], mem0: Callable[[dict], float], aegis: Callable[[dict], float]):
    if not r.get("mem0") or not r.get("aegis_vs_mem0"):
        return None
    return mem0(r["mem0"]) / aegis(r["aegis_vs_mem0"])


TARGETS: list[Target] = [
    Target("filtered top-10, engine only, p50", "ms", 5, False,
           lambda r: _last(r)["engine_query_ms"]["p50"]),
    Target("filtered top-10, engine only, p99", "ms", 20, False,
           lambda r: _last(r)["engine_query_ms"]["p99"]),
    Target("filtered top-10, engine only, recall@10", "", 0.95, True,
           lambda r: _last(r)["engine_query_ms"]["recall_at_10"]),
    Target("filtered top-10 over HTTP incl. embedding, p50", "ms", 15, False,
           lambda r: _last(r)["http_query_ms"]["p50"]),
    Target("the same, vector mode only, p50", "ms", 15, False,
           lambda r: _last(r).get("http_vector_query_ms", {}).get("p50", float("nan"))),
    Target("single add over HTTP incl. embedding, p50", "ms", 15, False,
           lambda r: _last(r)["single_add_ms"]["p50"]),
    Target("batch of 50 over HTTP incl. embedding, p50", "ms", 200, False,
           lambda r: _last(r)["batch50_ms"]["p50"]),
    Target("dedup re-insert over HTTP, p50", "ms", 3, False,
           lambda r: _last(r)["dedup_ms"]["p50"]),
    Target("bulk import, precomputed embeddings (largest step)", "memories/s", 5000, True,
           lambda r: _last(r)["import"]["per_s"]),
    Target("mixed load, 32 clients, throughput", "ops/s", 300, True,
           lambda r: _last(r)["mixed"]["ops_per_s"]),
    Target("mixed load, 32 clients, p99", "ms", 100, False, lambda r: _last(r)["mixed"]["p99"]),
    Target("mixed load, 32 clients, errors", "", 0, False, lambda r: _last(r)["mixed"]["errors"]),
    Target("server RSS at the largest size", "MB", 2560, False,
           lambda r: max(_last(r)["rss_mb"], _last(r).get("after_rss_mb", 0))),
    Target("vs mem0: filtered search speed-up (agent)", "x", 10, True,
           lambda r: _ratio(r, lambda m: m["search_ms"]["agent"]["p50"],
                            lambda a: a["search_ms"]["agent"]["p50"])),
    Target("vs mem0: filtered search speed-up (user)", "x", 10, True,
           lambda r: _ratio(r, lambda m: m["search_ms"]["user"]["p50"],
                            lambda a: a["search_ms"]["user"]["p50"])),
    Target("vs mem0: bulk load speed-up", "x", 5, True,
           lambda r: _ratio(r, lambda m: 1 / m["bulk_load_per_s"],
                            lambda a: 1 / a["bulk_load_per_s"])),
    Target("vs mem0: single add, mem0 p50 / Aegis p50", "x", 1, True,
           lambda r: _ratio(r, lambda m: m["add_ms"]["p50"], lambda a: a["add_ms"]["p50"])),
]


#: The PostgreSQL backend's line of issue 8 (the other targets are for the embedded default).
POSTGRES_TARGETS: list[Target] = [
    Target("PostgreSQL: filtered top-10 over HTTP incl. embedding, p50", "ms", 20, False,
           lambda r: _last(r)["http_query_ms"]["p50"]),
    Target("PostgreSQL: filtered top-10, recall@10", "", 0.95, True,
           lambda r: _last(r)["engine_query_ms"]["recall_at_10"]),
]


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    targets = POSTGRES_TARGETS if report.get("backend") == "postgres" else TARGETS
    return [t.check(report) for t in targets]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"


def print_report(report: dict[str, Any]) -> None:
    print("\nper size (medians of runs):")
    print(f"{'memories':>10} {'import/s':>9} {'HTTP p50':>9} {'HTTP p99':>9} "
          f"{'engine p50':>10} {'engine p99':>10} {'recall':>7} {'RSS MB':>8} {'disk MB':>8}")
    for s in report["steps"]:
        e = s.get("engine_query_ms", {})
        print(f"{s['size']:>10,} {s['import']['per_s']:>9,.0f} {s['http_query_ms']['p50']:>9.2f} "
              f"{s['http_query_ms']['p99']:>9.2f} {e.get('p50', 0):>10.2f} "
              f"{e.get('p99', 0):>10.2f} {_fmt(e.get('recall_at_10')):>7} "
              f"{s['rss_mb']:>8,.0f} {s['disk_mb']:>8,.0f}")
    last = report["steps"][-1]
    print(f"\nat {last['size']:,} memories (p50 / p95 / p99 ms):")
    for key, name in (("single_add_ms", "single add"), ("batch50_ms", "batch of 50"),
                      ("dedup_ms", "dedup re-insert"), ("vote_ms", "vote"),
                      ("cross_agent_ms", "cross-agent query")):
        if key in last:
            v = last[key]
            print(f"  {name:20} {v['p50']:8.2f} {v['p95']:8.2f} {v['p99']:8.2f}")
    if "import_computed" in last:
        print(f"  import, embeddings computed by the server: "
              f"{last['import_computed']['per_s']:,.0f} memories/s")
    if "mixed" in last:
        m = last["mixed"]
        print(f"  mixed load: {m['ops_per_s']:,.0f} ops/s, p50 {m['p50']:.1f} ms, "
              f"p99 {m['p99']:.1f} ms, {m['errors']} errors ({m['reads']} reads, "
              f"{m['adds']} adds, {m['votes']} votes)")
    if report.get("mem0") and report.get("aegis_vs_mem0"):
        m, a = report["mem0"], report["aegis_vs_mem0"]
        print(f"\nside by side at {a['n']:,} memories (mem0 {m.get('mem0_version')}, p50 ms):")
        print(f"  {'':24} {'mem0':>10} {'Aegis':>10}")
        print(f"  {'bulk load /s':24} {m['bulk_load_per_s']:>10,.0f} "
              f"{a['bulk_load_per_s']:>10,.0f}")
        print(f"  {'single add':24} {m['add_ms']['p50']:>10.2f} {a['add_ms']['p50']:>10.2f}")
        for kind in ("user", "agent"):
            print(f"  {'search by ' + kind:24} {m['search_ms'][kind]['p50']:>10.2f} "
                  f"{a['search_ms'][kind]['p50']:>10.2f}")
    print("\ntargets:")
    for t in report["targets"]:
        print(f"  [{t['status']:>12}] {t['target']:48} {_fmt(t['value']):>10} "
              f"{t['op']} {_fmt(t['bound'])} {t['unit']}")


def plot_growth(report: dict[str, Any], path: Path) -> Path | None:
    """Latency, memory and import rate against the number of memories (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (the bench extra has it): no plot")
        return None
    steps = report["steps"]
    sizes = [s["size"] for s in steps]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for key, label in (("http_query_ms", "HTTP hybrid, incl. embedding"),
                       ("engine_query_ms", "engine only")):
        for pct, style in (("p50", "-o"), ("p99", "--o")):
            ax.plot(sizes, [s[key][pct] for s in steps], style, label=f"{label} {pct}")
    ax.set(xscale="log", xlabel="memories", ylabel="ms", title="filtered top-10 query")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(sizes, [s["rss_mb"] for s in steps], "-o", label="server RSS")
    ax.plot(sizes, [s["disk_mb"] for s in steps], "-o", label="data dir on disk")
    ax.set(xscale="log", xlabel="memories", ylabel="MB", title="memory and disk")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.plot(sizes, [s["import"]["per_s"] for s in steps], "-o")
    ax.set(xscale="log", xlabel="memories (end of step)", ylabel="memories/s",
           title="bulk import, precomputed embeddings")
    for a in axes:
        a.grid(alpha=0.3)
    backend = ("PostgreSQL + pgvector" if report.get("backend") == "postgres"
               else "embedded default")
    fig.suptitle(f"Aegis Memory, {backend}, {report['machine']['cores']} cores "
                 f"({report['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(report: dict[str, Any]) -> str:
    """The targets and per-size tables as Markdown, for docs/guides/performance.md."""
    lines = ["| Target | Measured | Bound | Status |", "|---|---|---|---|"]
    for t in report["targets"]:
        unit = f" {t['unit']}" if t["unit"] else ""
        lines.append(f"| {t['target']} | {_fmt(t['value'])}{unit} | {t['op']} "
                     f"{_fmt(t['bound'])}{unit} | {t['status']} |")
    lines += ["", "| Memories | Import/s (ack.) | Graph done after | HTTP query p50 / p99 ms | "
              "Engine p50 / p99 ms | Recall@10 | RSS MB | Disk MB |",
              "|---|---|---|---|---|---|---|---|"]
    for s in report["steps"]:
        e, q, imp = s["engine_query_ms"], s["http_query_ms"], s["import"]
        lines.append(
            f"| {s['size']:,} | {imp['per_s']:,.0f} | {imp.get('graph_wait_seconds', 0):.0f} s | "
            f"{q['p50']:.2f} / {q['p99']:.2f} | {e['p50']:.2f} / {e['p99']:.2f} | "
            f"{_fmt(e.get('recall_at_10'))} | {s['rss_mb']:,.0f} | {s['disk_mb']:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    saved = json.loads(Path(sys.argv[1]).read_text())
    saved["targets"] = evaluate(saved)
    print(markdown(saved))
