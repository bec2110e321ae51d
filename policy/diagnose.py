"""Per-source validation of a checkpoint: where a multi-task policy's error is, before any rollout.

`rho train` validates on a weighted mixture of every source's held-out demos, one number. This breaks it down per
source on the same held-out demos (each source's `mask/valid`, else its seeded `data.valid_fraction`, as the run
split them): the flow-matching loss of the actions and, for a model trained with an auxiliary head
(`policy.aux_dim`), the mean absolute error of its predicted privileged positions, de-normalized to the source's
units (m for positions). A task whose object the vision path cannot place (e.g. the named button of a randomized
panel) shows up here as an aux error comparable to the object spacing, while its action loss may look fine.

    python -m rho.policy.diagnose runs/p16/policy_v3_64/checkpoints/latest [samples=256] [batch=64] [seed=0]

Data paths are the run's own (`extra.json` train_cfg), so run it from the directory the training ran in.
Deterministic: fixed draws and a seeded flow noise. CPU by default, one thread per process (set RHO_THREADS)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rho.config import ConfigError

from .data import Layout, MixtureDataset, build_sources, collate
from .train import TrainCfg, rho_model_io


def per_source_validation(ckpt: str | Path, samples: int = 256, batch: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """One row per source: name, valid demos, `flow_loss`, and (aux head) `aux_abs_err` / `aux_std` per target
    dimension in the source's units, `aux_keys`."""
    if samples < 1 or batch < 1:
        raise ConfigError([f"samples and batch must be >= 1, got samples={samples} batch={batch}"])
    model, _, extra = rho_model_io().load(Path(ckpt))
    if "train_cfg" not in extra or "source_stats" not in extra:
        raise ConfigError([f"{ckpt}: its extra.json has no train_cfg / source_stats, so the training data cannot be "
                           "reopened as the run saw it. Fix: give a checkpoint written by rho train"])
    model.eval()
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainCfg), extra["train_cfg"]))
    sources = build_sources(cfg.data, Layout.from_policy(model.cfg), cfg.seed, extra["source_stats"])
    rows = []
    for s in sources:
        ds = MixtureDataset([s], "valid", cfg.seed, None)
        row: dict[str, Any] = {"source": s.name, "valid_demos": len(s.demos.get("valid", [])),
                               "valid_frames": s.num_frames("valid")}
        if ds.empty:
            rows.append(row | {"flow_loss": None})
            continue
        flow, errs = [], []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the flow noise: seeded, the caller's RNG untouched
            torch.manual_seed(seed)
            for b0 in range(0, samples, batch):
                b = collate([ds[k] for k in range(b0, min(b0 + batch, samples))])
                prefix = model.prefix(b["images"], b["image_mask"], b["instruction"])
                _, info = model.loss(b, prefix)
                n = len(b["instruction"])
                flow.append((info.get("flow_loss", info["loss"]), n))
                if model.aux_head is not None and s.aux and "aux" in b:
                    d = len(s.aux_std)
                    pred = model.aux_predict(prefix)
                    errs.append(np.abs(pred[:, :d].numpy() - b["aux"][:, :d].numpy()) * s.aux_std[None])
        row["flow_loss"] = float(sum(v * n for v, n in flow) / sum(n for _, n in flow))
        if errs:
            row |= {"aux_keys": list(s.cfg.aux), "aux_abs_err": np.concatenate(errs).mean(0).tolist(),
                    "aux_std": np.asarray(s.aux_std).tolist()}
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    out = ["| source | valid demos | flow loss | aux targets | aux mean abs error | aux std (spread) |",
           "| --- | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        fl = "—" if r["flow_loss"] is None else f"{r['flow_loss']:.4f}"
        if "aux_abs_err" in r:
            err = " ".join(f"{1000 * v:.1f}" for v in r["aux_abs_err"]) + " (×1e-3)"
            std = " ".join(f"{1000 * v:.1f}" for v in r["aux_std"]) + " (×1e-3)"
            keys = ", ".join(r["aux_keys"])
        else:
            err = std = keys = "—"
        out.append(f"| {r['source']} | {r['valid_demos']} | {fl} | {keys} | {err} | {std} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pos = [a for a in args if "=" not in a]
    kw = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(kw) - {"samples", "batch", "seed"})
    if len(pos) != 1 or unknown:
        print(f"usage: python -m rho.policy.diagnose <checkpoint> [samples=256 batch=64 seed=0] (got {args})",
              file=sys.stderr)
        return 2
    torch.set_num_threads(int(os.environ.get("RHO_THREADS", "1")))
    try:
        rows = per_source_validation(pos[0], int(kw.get("samples", 256)), int(kw.get("batch", 64)),
                                     int(kw.get("seed", 0)))
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_rows(rows))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
