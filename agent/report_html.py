"""`agent report --html FILE`: the computed report (agent/report.py) as one page.

Self-contained: inline CSS and SVG, no script, no font, no image, no link to anything,
so it opens the same from a mail attachment, an air-gapped host or an archive years
later. It draws only what the report computed: nothing here reads the ledger or git.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from agent.report_view import dollars, percent, seconds
from agent.svg import meter, stacked_bars, step_line, timeline
from agent.watchdog import human_duration

OUTCOME_COLOURS = {
    "ok": "#2e9e5b",
    "degraded": "#e0a526",
    "failed": "#d1453b",
    "interrupted": "#8f2d26",
    "crashed": "#5c1d18",
    "halted-vault": "#333333",
    "halted-cap": "#8a63c7",
    "refused-kill": "#9aa0a6",
    "skipped": "#c9cdd2",
}
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f6f7f9;color:#1f2328}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#59636e;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px}
.card b{display:block;font-size:22px}.card span{color:#59636e;font-size:13px}
.card.bad b{color:#d1453b}.card.good b{color:#2e9e5b}
section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:4px 16px 16px;
margin-top:16px}
svg{width:100%;height:auto}.lbl{font-size:11px;fill:#59636e}.axis{stroke:#8c959f}
.cap{stroke:#d1453b;stroke-dasharray:5 4}.cap-lbl{font-size:11px;fill:#d1453b}
.step{fill:none;stroke:#0969da;stroke-width:2}.dot{fill:#0969da}
.track{fill:#eaeef2}.fill{fill:#2e9e5b}.incident{fill:#d1453b}
.meter{width:100px;height:10px;vertical-align:middle;margin-right:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2}
th{color:#59636e;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.none{color:#59636e}
"""


def _days(first: str, last: str) -> list[str]:
    """Every day from `first` to `last` (ISO stamps or dates), so that a quiet day shows."""
    day, end = datetime.fromisoformat(first).date(), datetime.fromisoformat(last).date()
    days = []
    while day <= end:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    if not rows:
        return '<p class="none">none</p>'
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(title: str, value: str, tone: str = "") -> str:
    return f'<div class="card {tone}"><b>{escape(value)}</b><span>{escape(title)}</span></div>'


def _fraction(stamp: str, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1
    return (datetime.fromisoformat(stamp) - start).total_seconds() / span


def render_html(report: dict[str, Any], title: str = "Ratchet agent") -> str:
    window, ticks, up = report["window"], report["ticks"], report["uptime"]
    spend, made, incidents = report["spend"], report["proposals"], report["incidents"]
    start, until = window["from_first_mark"], window["until"]
    start_at, until_at = datetime.fromisoformat(start), datetime.fromisoformat(until)
    edges = (start[:10], until[:10])
    # From the agent's first mark, or earlier if something was spent before it.
    days = _days(min([start[:10], *spend["by_day"], *ticks["by_day"]]), until)
    silence = up["longest_silence"]
    cards = "".join([
        _card("uptime", percent(up["ratio"]), "good" if (up["ratio"] or 0) >= 0.99 else "bad"),
        _card(f"ticks, {ticks['succeeded']} succeeded", str(ticks["total"])),
        _card("longest silence", human_duration(silence["seconds"])),
        _card("spent" + ("" if spend["cap_usd"] is None else f" (cap ${spend['cap_usd']:g}/day)"),
              dollars(spend["total_usd"])),
        _card(f"accepted of {made['made']} proposals", str(made["accepted"])),
        _card("incidents", str(len(incidents)), "bad" if incidents else "good"),
    ])  # fmt: skip
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{escape(name)}</span>'
        for name, colour in OUTCOME_COLOURS.items() if name in ticks["by_outcome"]
    )  # fmt: skip
    tick_chart = stacked_bars(
        [d[5:] for d in days], [ticks["by_day"].get(d, {}) for d in days], OUTCOME_COLOURS,
        label="ticks per day by outcome",
    )  # fmt: skip
    spend_chart = stacked_bars(
        [d[5:] for d in days], [{"spent": spend["by_day"].get(d, 0.0)} for d in days],
        {"spent": "#0969da"}, label="spend per day", unit="$", line=spend["cap_usd"],
        line_label="" if spend["cap_usd"] is None else f"cap ${spend['cap_usd']:g}",
    )  # fmt: skip
    series = report["baseline"]
    baseline_chart = step_line(
        [(max(0.0, _fraction(p["when"], start_at, until_at)), p["passing"]) for p in series],
        label="baseline passing tests", x_labels=edges,
    )  # fmt: skip
    incident_chart = timeline(
        [(_fraction(i["start"], start_at, until_at),
          _fraction(i["end"] or until, start_at, until_at), i["cause"]) for i in incidents],
        label="watchdog incidents", x_labels=edges,
    )  # fmt: skip
    task_rows = [
        [escape(t["task"]), str(t["runs"]), meter(t["success_rate"]) + percent(t["success_rate"]),
         seconds(t["p50_s"]), seconds(t["p95_s"]),
         escape(", ".join(f"{k} {v}" for k, v in t["failures"].items()) or "-")]
        for t in report["tasks"]
    ]  # fmt: skip
    proposer_rows = [
        [escape(name), str(v["accepted"]), str(v["rejected"])]
        for name, v in made["by_proposer"].items()
    ]
    incident_rows = [
        [escape(i["start"][:16].replace("T", " ")),
         escape(i["end"][:16].replace("T", " ") if i["end"] else "still open"),
         human_duration(i["duration_s"]), escape(i["cause"])]
        for i in incidents
    ]  # fmt: skip
    week_rows = [
        [w["week"], str(w["ticks"]), percent(w["tick_success"]), percent(w["task_success"]),
         dollars(w["spent_usd"]), str(w["proposals"]), str(w["accepted"]),
         percent(w["acceptance"]), dollars(w["usd_per_accepted"]), str(w["incidents"])]
        for w in report["weeks"]
    ]  # fmt: skip
    money_rows = [
        [escape(kind), escape(name), dollars(value)]
        for kind in ("model", "purpose") for name, value in spend[f"by_{kind}"].items()
    ]  # fmt: skip
    git_note = (
        f'<p class="none">git: unavailable ({escape(report["git_error"])})</p>'
        if "git_error" in report else ""
    )  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} report {edges[0]} to {edges[1]}</title><style>{STYLE}</style></head>
<body><main>
<h1>{escape(title)}: the run from {edges[0]} to {edges[1]}</h1>
<p class="sub">From the ledger and git alone. Longest silence
{human_duration(silence["seconds"])}, from {escape(silence["from"][:16].replace("T", " "))}.
{spend["refused_by_cap"]} model calls refused by the cap;
{made["reverted"]} changes reverted by the safety net, {made["incidents"]} incidents it left
to a person.</p>
<div class="cards">{cards}</div>
<section><h2>Ticks per day</h2>{tick_chart}<div class="legend">{legend}</div></section>
<section><h2>Spend per day</h2>{spend_chart}
{_table(["by", "name", "spent"], money_rows, {2})}</section>
<section><h2>Baseline: passing tests</h2>{baseline_chart}{git_note}</section>
<section><h2>Tasks</h2>
{_table(["task", "runs", "success", "p50", "p95", "failures by kind"], task_rows, {1, 3, 4})}
</section>
<section><h2>Proposals by proposer</h2>
{_table(["proposer", "accepted", "rejected"], proposer_rows, {1, 2})}</section>
<section><h2>Incidents</h2>{incident_chart}
{_table(["start", "end", "lasted", "cause"], incident_rows)}</section>
<section><h2>Weeks</h2>
{_table(["week", "ticks", "ticks ok", "tasks ok", "spent", "proposals", "accepted",
         "acceptance", "$ per accepted", "incidents"], week_rows, set(range(1, 10)))}
</section>
</main></body></html>
"""


def write_html(path: Path, report: dict[str, Any], title: str) -> None:
    """The page, written whole or not at all (a full disk is an environment failure)."""
    from agent.atomicio import atomic_write_text
    from agent.errors import EnvironmentFailure

    try:
        atomic_write_text(path, render_html(report, title))
    except OSError as error:
        raise EnvironmentFailure(f"cannot write {path}: {error.strerror}") from None
