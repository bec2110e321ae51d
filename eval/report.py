"""The report directory of one evaluation run:

    <out>/
      report.json      suite config, policy, overall / per_task / per_level / per_cell summaries, skipped cells,
                       videos and plots (format_version 1)
      report.md        the results tables, for a README or a paper draft
      report.html      the tables, the plots embedded as PNG, the videos inline (relative links to videos/)
      episodes.jsonl   one record per episode (see rho.eval.metrics)
      traces.npz       force (T, pads) and taxel (T, pads, r, c) series of the traced episodes, N:
                       keys "<task>/<level>/<episode>/force|taxels"
      plots/           success.png, forces.png, touch_<task>__<level>.png
      videos/          <task>__<level>__ep<k>.mp4 (H.264, camera + taxel heatmaps) and .jpg (its last frame)
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from .rollout import UnitResult

SUMMARY_COLUMNS = ("success", "95% CI", "progress", "time to success (s)", "peak force (N)", "force viol. eps",
                   "episodes")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, default=_json_default, indent=indent)


def write_report(report: dict[str, Any], results: list[UnitResult], records: list[dict[str, Any]],
                 out: Path) -> dict[str, Any]:
    """Write every file of the report directory (records in suite order); fills in report["videos"], ["plots"]
    and ["files"]."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("videos/*.mp4"), *out.glob("videos/*.jpg"), *out.glob("plots/*.png")]:  # from an earlier run into the same out
        stale.unlink()
    _write_videos(results, out)
    report["videos"] = [{"task": r["task"], "level": r["level"], "episode": r["episode"], "path": r["video"],
                         "success": r["success"]} for r in records if r["video"]]
    (out / "episodes.jsonl").write_text("".join(dumps(r) + "\n" for r in records))
    traces = _write_traces(results, out)
    report["plots"] = _write_plots(report, results, traces, out)
    report["files"] = {"episodes": "episodes.jsonl", "traces": "traces.npz" if traces else None,
                       "markdown": "report.md", "html": "report.html"}
    (out / "report.json").write_text(dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    (out / "report.html").write_text(to_html(report, out))
    return report


def _write_videos(results: list[UnitResult], out: Path) -> None:
    """videos/<task>__<level>__ep<k>.mp4 and its poster .jpg (last frame); the episode's record gets the path."""
    for res in results:
        if res.video is None:
            continue
        u, rec = res.unit, res.records[0]
        rel = f"videos/{u.task}__{u.level}__ep{u.episodes[0]:03d}.mp4"
        (out / "videos").mkdir(exist_ok=True)
        (out / rel).write_bytes(res.video)
        if res.poster is not None:
            (out / rel).with_suffix(".jpg").write_bytes(res.poster)
        rec["video"] = rel


def _write_traces(results: list[UnitResult], out: Path) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
    traces = {(r.unit.task, r.unit.level, k): tr for r in results for k, tr in r.traces.items()}
    if traces:
        arrays = {f"{t}/{lv}/{k}/{name}": a for (t, lv, k), tr in traces.items() for name, a in tr.items()}
        np.savez_compressed(out / "traces.npz", **arrays)
    return traces


def _write_plots(report: dict[str, Any], results: list[UnitResult],
                 traces: dict[tuple[str, str, int], dict[str, np.ndarray]], out: Path) -> dict[str, Any]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {"note": "plots need matplotlib: pip install 'matplotlib>=3.8'"}
    from . import plots

    if not report["per_cell"]:
        return {}
    dt = {r.unit.task: r.control_dt for r in results}
    pads = next((r.pads for r in results), [])
    vmax = report["suite"]["taxel_vmax"]
    found: dict[str, Any] = {"success": _rel(plots.success_plot(report, out / "plots" / "success.png"), out)}
    if traces:
        found["forces"] = _rel(plots.force_plot(traces, dt, report["suite"]["force_limit"],
                                                out / "plots" / "forces.png"), out)
    found["touch"] = [_heatmap(plots, traces, c["task"], c["level"], pads, dt, vmax, out) for c in report["per_cell"]]
    found["touch"] = [h for h in found["touch"] if h]
    return found


def _heatmap(plots, traces, task: str, level: str, pads: list[str], dt: dict[str, float], vmax: float,
             out: Path) -> dict[str, Any] | None:
    """The taxel heatmap of a cell's first traced episode, if it has one."""
    ep = min((k for t, lv, k in traces if (t, lv) == (task, level)), default=None)
    if ep is None or not traces[(task, level, ep)]["taxels"].size:
        return None
    path = plots.touch_heatmap(traces[(task, level, ep)]["taxels"], pads, dt[task], vmax,
                               f"{task} / {level} / episode {ep}", out / "plots" / f"touch_{task}__{level}.png")
    return {"task": task, "level": level, "episode": ep, "path": _rel(path, out)}


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# ------------------------------------------------------------------------------------------------ tables
def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def summary_row(s: dict[str, Any]) -> list[str]:
    lo, hi = s["ci95"]
    return [_num(s["success_rate"], "{:.0%}"), f"{lo:.0%}–{hi:.0%}", _num(s["progress_mean"]),
            _num(s["time_to_success_s_mean"]), _num(s["peak_force_n_max"], "{:.1f}"),
            str(s["force_violation_episodes"]), str(s["episodes"])]


def table_rows(report: dict[str, Any]) -> list[tuple[str, list[str], dict[str, Any]]]:
    """(label, cells, summary) per cell, then per level, then overall."""
    rows = [(f"{c['task']} / {c['level']}", summary_row(c), c) for c in report["per_cell"]]
    if len(report["per_level"]) > 1:
        rows += [(f"all / {lv}", summary_row(s), s) for lv, s in report["per_level"].items()]
    rows.append(("overall", summary_row(report["overall"]), report["overall"]))
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _headline(report: dict[str, Any]) -> str:
    o, s = report["overall"], report["suite"]
    lo, hi = o["ci95"]
    rate = _num(o["success_rate"], "{:.1%}")
    return (f"policy **{report['policy']['name']}** on suite **{s['name']}** (seed {s['seed']}, {s['episodes']} "
            f"episodes per cell, force limit {s['force_limit']:g} N): overall success {rate} (95% CI {lo:.1%}–"
            f"{hi:.1%}) over {o['episodes']} episodes, {report['wall_s']:.0f} s")


def markdown(report: dict[str, Any]) -> str:
    parts = [f"# Evaluation: {report['suite']['name']} / {report['policy']['name']}", "", _headline(report), "",
             _md_table(["task / level", *SUMMARY_COLUMNS], [[label, *cells] for label, cells, _ in table_rows(report)])]
    if report["skipped"]:
        parts += ["", "Skipped cells:", ""] + [f"- {s['task']} / {s['level']}: {s['reason']}" for s in report["skipped"]]
    plots = report.get("plots", {})
    if plots.get("success"):
        parts += ["", f"![success by task and level]({plots['success']})"]
    if plots.get("forces"):
        parts += ["", f"![pad force profiles]({plots['forces']})"]
    if report.get("videos"):
        parts += ["", "Videos:", ""] + [f"- [{v['task']} / {v['level']} / episode {v['episode']}]({v['path']})"
                                        for v in report["videos"]]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------ html
_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}tr.agg td{font-weight:600;background:#fafafa}
img{max-width:100%;border:1px solid #ddd;margin:6px 0}.videos{display:flex;flex-wrap:wrap;gap:12px}
.videos figure{margin:0}.grid{display:flex;flex-wrap:wrap;gap:8px}.grid img{max-width:590px}figcaption{font-size:12px;color:#555}.ok{color:#1e7b34}.bad{color:#b03a2e}"""


def _img(out: Path, rel: str, alt: str) -> str:
    data = base64.b64encode((out / rel).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html_table(report: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("task / level", *SUMMARY_COLUMNS))
    body = []
    for label, cells, _ in table_rows(report):
        cls = ' class="agg"' if label.startswith(("all /", "overall")) else ""
        body.append(f"<tr{cls}><td>{html.escape(label)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_html(report: dict[str, Any], out: Path) -> str:
    """Self-contained page (plots embedded) except the videos, which play from videos/ beside it."""
    p = report.get("plots", {})
    parts = [f"<h1>Evaluation: {html.escape(report['suite']['name'])} / {html.escape(report['policy']['name'])}</h1>",
             f"<p>{html.escape(_headline(report)).replace('**', '')}</p>", "<h2>Results</h2>", _html_table(report)]
    if report["skipped"]:
        items = "".join(f"<li>{html.escape(s['task'])} / {html.escape(s['level'])}: {html.escape(s['reason'])}</li>"
                        for s in report["skipped"])
        parts.append(f"<h3>Skipped cells</h3><ul>{items}</ul>")
    if p.get("note"):
        parts.append(f"<p>{html.escape(p['note'])}</p>")
    if p.get("success"):
        parts += ["<h2>Success by task and level</h2>", _img(out, p["success"], "success by task and level")]
    if p.get("forces"):
        parts += ["<h2>Pad force profiles</h2>", _img(out, p["forces"], "pad force profiles")]
    if p.get("touch"):
        imgs = "".join(_img(out, h["path"], f"touch {h['task']} {h['level']}") for h in p["touch"])
        parts += ["<h2>Touch over time</h2>", f'<div class="grid">{imgs}</div>']
    if report.get("videos"):
        figs = "".join(
            f'<figure><video controls muted preload="metadata" width="560" src="{html.escape(v["path"])}" '
            f'poster="{html.escape(v["path"][:-4])}.jpg"></video>'
            f'<figcaption>{html.escape(v["task"])} / {html.escape(v["level"])} / episode {v["episode"]}: '
            f'<span class="{"ok" if v["success"] else "bad"}">{"success" if v["success"] else "failure"}</span>'
            "</figcaption></figure>" for v in report["videos"])
        parts += ["<h2>Videos</h2>", f'<div class="videos">{figs}</div>']
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>rho eval: {html.escape(report["suite"]["name"])}'
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
