"""The reports of ``harness bench``: the terminal's small tables and a self-contained HTML
page whose charts plotly draws (plotly.js is embedded, so the file opens offline).

Both read the JSON report the bench drivers return (:func:`harness.drivers.bench.run_bench`,
:func:`harness.drivers.queue_bench.run_queue_bench`) and nothing else.
"""

from __future__ import annotations

import html
from typing import Any

# How each run is drawn and what it stands for.
KIND = {
    "update_hot": "limit",
    "update_spread": "limit",
    "seed_hot": "source design",
    "seed_spread": "source design",
}
SEED_OF = {"purchase_with_credits_hot": "seed_hot", "purchase_with_credits_spread": "seed_spread"}
LIMIT_OF = {
    "purchase_with_credits_hot": "update_hot",
    "seed_hot": "update_hot",
    "purchase_with_credits_spread": "update_spread",
    "seed_spread": "update_spread",
}


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value >= target else "NOT MET"


def _load(r: dict[str, Any]) -> str:
    load = r.get("load_average") or (r.get("queue") or {}).get("load_average")
    if not load:
        return ""
    return f", load average {load['start'][0]:.1f} at the start, {load['end'][0]:.1f} at the end"


# -- text --------------------------------------------------------------------------------


def text_report(r: dict[str, Any]) -> list[str]:
    """The terminal's report: a few small tables."""
    if "queue" in r:
        return _queue_text(r)
    lines = [
        f"PostgreSQL {r['server_version']} ({r['provider']}), {r['clients']} clients, "
        f"{r['duration_s']}s per run in {r.get('rounds', 1)} round(s), {r['cpus']} CPUs"
        f"{_load(r)}",
        "",
        f"  {'run':32} {'tps':>10} {'vs seed':>8} {'vs limit':>9}  rounds",
    ]
    results = r["results"]
    for name, tps in results.items():
        seed = results.get(SEED_OF.get(name, ""))
        limit = results.get(LIMIT_OF.get(name, ""))
        vs_seed = f"{tps / seed:.2f}" if seed else ("1.00" if name.startswith("seed") else "")
        vs_limit = f"{tps / limit:.2f}" if limit else ""
        run = r["runs"][name]
        each = " / ".join(f"{t:,.0f}" for t in run.get("round_tps", []))
        warn = run.get("warning")
        lines.append(
            f"  {name:32} {tps:>10,.0f} {vs_seed:>8} {vs_limit:>9}  {each}"
            + (f"  ({warn})" if warn else "")
        )
    targets = r.get("targets", {})
    lines += ["", f"  {'ratio':48} {'value':>6}  target"]
    for name, value in r["ratios"].items():
        if value is None:
            continue
        target = targets.get(name)
        goal = f">= {target:g} {_verdict(value, target)}" if target is not None else ""
        lines.append(f"  {name:48} {value:>6.2f}  {goal}")
    scaling = r.get("client_scaling")
    if scaling:
        counts = [str(n) for n in scaling["client_counts"]]
        lines += ["", "  tps by clients" + " " * 18 + "".join(f"{c:>10}" for c in counts)]
        for name, by in scaling["tps"].items():
            lines.append(f"  {name:32}" + "".join(f"{by.get(c, 0):>10,.0f}" for c in counts))
        lines += [f"  ({w})" for w in scaling.get("warnings", [])]
    hist = r.get("history")
    if hist:
        names = list(hist["steps"][0]["runs"])
        lines += [
            "",
            f"  cost per call as history grows (1 client, {hist['calls']:,} calls per run; "
            "ms per call / buffers per call)",
            f"  {'history':>8} {'purchases':>10}" + "".join(f"{n:>32}" for n in names),
        ]
        for step in hist["steps"]:
            cells = []
            for n in names:
                f = step["runs"][n]
                buffers = f.get("buffers_per_call")
                cells.append(
                    f"{f['mean_ms']:.3f} ms" + (f" / {buffers:g}" if buffers is not None else "")
                )
            lines.append(
                f"  {'x' + str(step['factor']):>8} {step['purchases']:>10,}"
                + "".join(f"{c:>32}" for c in cells)
            )
    for name, rows in r.get("profile", {}).items():
        lines.append(f"profile of {name} (pg_stat_statements, by total time):")
        for row in rows:
            lines.append(f"    {row['calls']:>8} x {row['mean_ms']:.4f} ms  {row['query']}")
    return lines


def _queue_text(r: dict[str, Any]) -> list[str]:
    q = r["queue"]
    lines = [
        f"email worker into an SMTP sink, PostgreSQL {r['server_version']} ({r['provider']}), "
        f"{q['jobs']:,} confirmation emails per measurement in {q.get('rounds', 1)} round(s), "
        f"{q['cpus']} CPUs{_load(r)}",
        "",
        f"  {'processes':>9} {'worker/s':>10} {'ceiling/s':>10} {'worker/ceiling':>15} "
        f"{'delivered twice':>16} {'never':>6}",
    ]
    for n, f in q["by_processes"].items():
        lines.append(
            f"  {n:>9} {f['worker_emails_per_second']:>10,.0f} "
            f"{f['ceiling_emails_per_second']:>10,.0f} {f['worker_vs_ceiling']:>15.2f} "
            f"{f['worker']['delivered_twice']:>16} {f['worker']['missing']:>6}"
        )
        if len(f.get("worker_round_rates", [])) > 1:
            w = " / ".join(f"{x:,.0f}" for x in f["worker_round_rates"])
            c = " / ".join(f"{x:,.0f}" for x in f["ceiling_round_rates"])
            lines.append(f"  {'':>9} rounds: worker {w}; ceiling {c}")
    t = q["targets"]
    one = q["by_processes"].get("1")
    if one:
        lines.append("")
        lines.append(
            f"  one worker >= {t['worker_vs_ceiling']:g}x the ceiling: "
            f"{_verdict(one['worker_vs_ceiling'], t['worker_vs_ceiling'])}; "
            f">= {t['worker_emails_per_second']:g} emails/s: "
            f"{_verdict(one['worker_emails_per_second'], t['worker_emails_per_second'])}"
        )
        for n, f in q["by_processes"].items():
            if n != "1":
                more = f["worker_emails_per_second"] > one["worker_emails_per_second"]
                lines.append(f"  {n} workers deliver more than one: {'met' if more else 'NOT MET'}")
    lines += [f"  FAILED: {p}" for p in q["problems"]]
    return lines


# -- HTML --------------------------------------------------------------------------------


def html_report(r: dict[str, Any]) -> str:
    """A self-contained HTML page: the figures as tables, a chart of every run."""
    import plotly.graph_objects as go

    figures: list[tuple[str, Any]] = []
    if "queue" in r:
        q = r["queue"]
        procs = list(q["by_processes"])
        fig = go.Figure(
            [
                go.Bar(
                    name="worker",
                    x=[f"{n} process(es)" for n in procs],
                    y=[q["by_processes"][n]["worker_emails_per_second"] for n in procs],
                ),
                go.Bar(
                    name="ceiling (bare send loop, no database)",
                    x=[f"{n} process(es)" for n in procs],
                    y=[q["by_processes"][n]["ceiling_emails_per_second"] for n in procs],
                ),
            ]
        )
        fig.update_layout(barmode="group", yaxis_title="emails per second")
        figures.append(("Email worker against its ceiling", fig))
    else:
        results = r["results"]
        names = list(results)
        colours = {"limit": "#9e9e9e", "source design": "#ef8a62", "project": "#2b8cbe"}
        kinds = [KIND.get(n, "project") for n in names]
        fig = go.Figure()
        for kind, colour in colours.items():
            picked = [n for n, k in zip(names, kinds, strict=True) if k == kind]
            fig.add_bar(name=kind, x=picked, y=[results[n] for n in picked], marker_color=colour)
        fig.update_layout(
            yaxis_title="transactions per second",
            yaxis_type="log",
            title=f"{r['clients']} clients, {r['duration_s']} s per run",
        )
        figures.append(("Every run", fig))
        scaling = r.get("client_scaling")
        if scaling:
            fig = go.Figure()
            for name, by in scaling["tps"].items():
                counts = [c for c in map(str, scaling["client_counts"]) if c in by]
                fig.add_scatter(
                    name=name,
                    x=[int(c) for c in counts],
                    y=[by[c] for c in counts],
                    mode="lines+markers",
                )
            fig.update_layout(
                xaxis_title="clients", xaxis_type="log", yaxis_title="tps", yaxis_type="log"
            )
            figures.append(("Throughput against the number of clients", fig))
        hist = r.get("history")
        if hist:
            fig = go.Figure()
            steps = hist["steps"]
            for name in steps[0]["runs"]:
                fig.add_scatter(
                    name=f"{name} (ms per call)",
                    x=[s["purchases"] for s in steps],
                    y=[s["runs"][name]["mean_ms"] for s in steps],
                    mode="lines+markers",
                )
                if all("buffers_per_call" in s["runs"][name] for s in steps):
                    fig.add_scatter(
                        name=f"{name} (buffers per call)",
                        x=[s["purchases"] for s in steps],
                        y=[s["runs"][name]["buffers_per_call"] for s in steps],
                        mode="lines+markers",
                        yaxis="y2",
                        line={"dash": "dot"},
                    )
            fig.update_layout(
                xaxis_title="purchases in the database",
                xaxis_type="log",
                yaxis_title="ms per call, one client",
                yaxis2={"title": "buffers per call", "overlaying": "y", "side": "right"},
                yaxis_rangemode="tozero",
            )
            figures.append(("Cost per call as history grows", fig))

    parts = []
    for i, (title, fig) in enumerate(figures):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=i == 0))
    parts.append("<h2>Figures</h2>")
    parts.append("<pre>" + html.escape("\n".join(text_report(r))) + "</pre>")
    hist = r.get("history")
    if hist:
        for step in hist["steps"]:
            for fn, plans in (step.get("plans") or {}).items():
                parts.append(
                    f"<h3>{html.escape(fn)}: every statement's plan at "
                    f"{step['purchases']:,} purchases of history</h3>"
                )
                parts.append("<pre>" + html.escape("\n\n".join(plans)) + "</pre>")
    title = "harness bench --queue" if "queue" in r else "harness bench"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}</style>"
        f"</head><body><h1>{title}</h1>"
        f"<p>PostgreSQL {html.escape(str(r['server_version']))} "
        f"({html.escape(str(r['provider']))}){html.escape(_load(r))}</p>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


__all__ = ["html_report", "text_report"]
