"""The session's HTML page: success per task against corrections received, the intervention rate per round, and the
per-round table (with rollbacks). Plots need matplotlib (the `eval` extra); without it the page has the tables."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np


def _curves_png(history: list[dict[str, Any]]) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    received, cum = [], 0
    for h in history:
        cum += int((h.get("collect") or {}).get("intervened_steps", 0))
        received.append(cum)
    tasks = list(dict.fromkeys(t for h in history for t in h["success"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for t in tasks:
        xs = [x for x, h in zip(received, history, strict=True) if t in h["success"]]
        ys = [h["success"][t]["success_rate"] for h in history if t in h["success"]]
        lo = [h["success"][t]["ci95"][0] for h in history if t in h["success"]]
        hi = [h["success"][t]["ci95"][1] for h in history if t in h["success"]]
        a.plot(xs, ys, marker="o", label=t)
        a.fill_between(xs, lo, hi, alpha=0.15)
    for x, h in zip(received, history, strict=True):
        if not h.get("accepted", True):
            a.axvline(x, color="red", ls=":", lw=1)
    a.set(xlabel="corrected steps received", ylabel="success (95% CI)", ylim=(-0.02, 1.02), title="success per task")
    a.legend(fontsize=8)
    rounds = [h["round"] for h in history if h.get("intervention_rate") is not None]
    rates = [h["intervention_rate"] for h in history if h.get("intervention_rate") is not None]
    b.plot(rounds, rates, marker="o")
    b.set(xlabel="round", ylabel="share of steps corrected", ylim=(-0.02, 1.02), title="intervention rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def corrected_video(shard: Path, out: Path, fps: float = 25.0) -> Path | None:
    """An mp4 of the first corrected episode of a round's shard: `cam_high` (upscaled) with the finger pads' taxel
    heatmaps, captioned POLICY / CORRECTOR per step and framed red while the corrector drives. None when the round
    had no correction, no camera, or no video encoder (`av`, the `eval` extra)."""
    try:
        from rho.eval.video import Mp4Writer, compose, touch_panel
    except ImportError:
        return None
    from PIL import Image

    from rho.datagen.hdf5 import Dataset

    with Dataset(shard, only_kept=False) as ds:
        pick = next((i for i in range(ds.num_demos) if int(ds.group(i).attrs.get("intervened_steps", 0)) > 0), None)
        if pick is None or "rgb_cam_high" not in ds.group(pick)["obs"]:
            return None
        ep = ds.episode(pick)
    flags = ep.step_info.get("intervention", np.zeros(ep.num_samples, np.uint8))
    pads = sorted(k[len("touch_net_"):] for k in ep.obs if k.startswith("touch_net_"))
    try:
        writer = Mp4Writer(fps)
    except ImportError:
        return None
    for t in range(ep.num_samples):
        cam = np.asarray(Image.fromarray(ep.obs["rgb_cam_high"][t]).resize((320, 240)))
        if flags[t]:
            cam = cam.copy()
            cam[:4], cam[-4:], cam[:, :4], cam[:, -4:] = (220, 40, 40), (220, 40, 40), (220, 40, 40), (220, 40, 40)
        taxels = np.stack([ep.obs[f"touch_{p}"][t][-1][..., 0] for p in pads]) if pads else np.zeros((4, 4, 4))
        net = np.array([ep.obs[f"touch_net_{p}"][t][0] for p in pads]) if pads else np.zeros(4)
        who = "CORRECTOR" if flags[t] else "POLICY"
        caption = f"{ep.meta.get('instruction', '')[:34]} | t={t} {who}"
        writer.add(compose(cam, touch_panel(taxels, net, pads or ["-"] * 4, 5.0), caption))
    path = out / "videos" / f"{shard.stem}_demo_{pick}.mp4"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(writer.close())
    return path


def write_report(out: Path, state: dict[str, Any]) -> Path:
    """Write out/report.html from the session state; returns its path."""
    history = state.get("history", [])
    tasks = list(dict.fromkeys(t for h in history for t in h["success"]))
    rows = []
    for h in history:
        c = h.get("collect") or {}
        vs = h.get("vs_start") or {}

        def cell(t: str, h=h, vs=vs) -> str:
            if t not in h["success"]:
                return "<td></td>"
            v, d = h["success"][t], vs.get(t)
            paired = "" if d is None else f" ({d['diff']:+.0%}, p={d['p_value']:.2g})"
            return f"<td>{v['successes']}/{v['episodes']}{paired}</td>"

        cells = "".join(cell(t) for t in tasks)
        rate = "" if h.get("intervention_rate") is None else f"{h['intervention_rate']:.1%}"
        status = "start" if h["round"] == 0 else ("accepted" if h.get("accepted", True) else
                                                 f"rolled back: {html.escape(h.get('rollback', ''))}")
        rows.append(f"<tr><td>{h['round']}</td><td>{c.get('episodes', '')}</td><td>{c.get('successes', '')}</td>"
                    f"<td>{c.get('corrected_episodes', '')}</td><td>{rate}</td>{cells}<td>{status}</td></tr>")
    png = _curves_png(history) if history else None
    img = (f'<img alt="curves" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else
           "<p>(plots need matplotlib: pip install 'rho-sim[eval]')</p>")
    head = "".join(f"<th>{html.escape(t)} success</th>" for t in tasks)
    videos = []
    for shard in sorted((out / "corrections").glob("round_*.hdf5")):
        path = out / "videos"
        found = sorted(path.glob(f"{shard.stem}_demo_*.mp4")) if path.is_dir() else []
        video = found[0] if found else corrected_video(shard, out)
        if video is not None:
            videos.append(f'<figure><video controls muted src="videos/{html.escape(video.name)}" width="560"></video>'
                          f"<figcaption>{html.escape(shard.stem)}: a corrected episode (red frame: the corrector "
                          "drives)</figcaption></figure>")
    session = state.get("session", {})
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rho online: {html.escape(str(session.get('task')))}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:3px 10px;text-align:right}}</style></head><body>
<h1>Online corrections: {html.escape(str(session.get('task')))}</h1>
<p>policy {html.escape(str(session.get('policy')))}; corrector {html.escape(str(session.get('corrector', {}).get('kind')))};
replay fraction {session.get('replay', {}).get('fraction')}; rounds done {state.get('round')}; current checkpoint
{html.escape(str(state.get('checkpoint')))}</p>{img}
<table><tr><th>round</th><th>episodes</th><th>successes (with corrections)</th><th>corrected episodes</th>
<th>steps corrected</th>{head}<th>update</th></tr>{''.join(rows)}</table>
<p>Success columns: the policy after that round's update on the fixed evaluation episodes (the same seeds every
round); in brackets the change against round 0 and McNemar's exact paired p-value on those episodes. Episodes of a round are driven by the policy in use during the round, corrected when a trigger fired.</p>
{"".join(videos)}
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
