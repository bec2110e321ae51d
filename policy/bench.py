"""`bench_policy()`: sizes and speeds of the two-stage policy on this machine (`rho bench policy --json`).

Latencies are medians over repeats at batch 1, single-threaded by default (small matrices gain nothing from more
threads, and a robot computer runs other processes), as wall-clock ms and as the thread's CPU ms (the latter is
what the code costs when the machine is shared and the scheduler takes the core away).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backbones import count_params
from .config import PolicyCfg
from .inference import Policy
from .model import TwoStagePolicy


@dataclass
class BenchPolicyCfg:
    """Settings of `rho bench policy`."""

    threads: int = 1  # torch threads (0: keep torch's setting)
    repeats: int = 30
    image_size: int = 0  # the policy's image side (0: the builtin default)
    vision: str = ""  # builtin vision path: cnn or vit ("": the default)
    data: str = ""  # a rho dataset: also time the training data path on it (resize per read vs frame cache)
    load_samples: int = 300  # samples drawn per data-path measurement

    def policy_cfg(self) -> PolicyCfg:
        cfg = PolicyCfg()
        if self.image_size:
            cfg.backbone.image_size = self.image_size
        if self.vision:
            cfg.backbone.vision = self.vision
        return cfg


def bench_policy(cfg: PolicyCfg | None = None, threads: int | None = 1, repeats: int = 30,
                 train_batch: int = 16, seed: int = 0, data: str = "", load_samples: int = 300) -> dict:
    """Params, VLM prefix latency, expert re-plan latency with a cached prefix, reactive-loop rate and training
    samples/s for `cfg` (default: the builtin default size). `threads=None` keeps torch's thread setting. With
    `data` (a dataset path), also the training data path's samples/s on it: decoding and resizing every image per
    sample (what training did before the frame cache) vs the frame cache, side by side in one run."""
    cfg = cfg or PolicyCfg()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = TwoStagePolicy(cfg)
        out = {"kind": cfg.backbone.kind, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "params_backbone": count_params(model.backbone),
               "params_expert": count_params(model) - count_params(model.backbone),
               "horizon": cfg.expert.horizon, "flow_steps": cfg.expert.flow_steps}
        out.update(_latencies(model, repeats))
        out["reactive_hz"] = round(1000.0 / out["expert_replan_ms"], 1)
        out["reactive_hz_cpu"] = round(1000.0 / out["expert_replan_cpu_ms"], 1)
        out["act_ms"] = _act_latency(model, repeats)
        out["vision"], out["image_size"] = cfg.backbone.vision, cfg.backbone.image_size
        out["train_samples_per_s"] = _train_rate(model, train_batch, max(3, repeats // 6))
        if cfg.backbone.kind == "builtin" and cfg.backbone.tokenizer == "words":
            # before/after in one run: the same model with the former instruction encoding (80 UTF-8 byte tokens)
            old = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, tokenizer="bytes",
                                                                        max_text_tokens=80))
            torch.manual_seed(seed)
            out["text_tokens"] = cfg.backbone.max_text_tokens
            out["train_samples_per_s_bytes80"] = _train_rate(TwoStagePolicy(old), train_batch, max(3, repeats // 6))
            out["train_speedup_words_vs_bytes80"] = round(out["train_samples_per_s"]
                                                          / out["train_samples_per_s_bytes80"], 2)
        if data:
            out.update(bench_loading(cfg, data, load_samples, seed))
            # one process loading then training (num_workers=0): the rates add as times
            for k in ("resize", "cache"):
                out[f"train_e2e_samples_per_s_{k}"] = round(
                    1.0 / (1.0 / out[f"load_samples_per_s_{k}"] + 1.0 / out["train_samples_per_s"]), 1)
        return out
    finally:
        torch.set_num_threads(old_threads)


def random_batch(cfg: PolicyCfg, b: int, device: str | torch.device = "cpu") -> dict:
    """A batch of the training contract with random contents (shapes as `policy.data` produces them)."""
    s, h, (r, c) = cfg.backbone.image_size, cfg.expert.horizon, cfg.taxel_shape
    P, S = len(cfg.pads), cfg.expert.touch_history
    ones = torch.ones(b, dtype=torch.bool, device=device)
    return {
        "images": {cam: torch.rand(b, 3, s, s, device=device) for cam in cfg.cameras},
        "image_mask": {cam: ones.clone() for cam in cfg.cameras},
        "instruction": [f"pick up the block number {i}" for i in range(b)],
        "proprio": torch.randn(b, cfg.proprio_dim, device=device), "proprio_mask": ones.clone(),
        "touch": torch.randn(b, P, S, r, c, 3, device=device), "touch_net": torch.randn(b, P, 3, device=device),
        "touch_mask": ones.clone(),
        "actions": torch.randn(b, h, cfg.action_dim, device=device),
        "action_pad": torch.zeros(b, h, dtype=torch.bool, device=device),
    }


def _latencies(model: TwoStagePolicy, repeats: int) -> dict:
    batch = random_batch(model.cfg, 1)
    state = [batch[k] for k in ("proprio", "proprio_mask", "touch", "touch_net", "touch_mask")]
    model.eval()
    with torch.inference_mode():
        def prefix():
            return model.prefix(batch["images"], batch["image_mask"], batch["instruction"])

        cached = prefix()
        pre_wall, pre_cpu = _median_ms(prefix, repeats)
        rep_wall, rep_cpu = _median_ms(lambda: model.sample_actions(cached, *state), repeats * 3)
        ctx = model.expert.context(cached, *state)
        cond = model.expert.conditioning(torch.ones(1))
        x = torch.randn(1, model.cfg.expert.horizon, model.cfg.action_dim)
        step_wall, _ = _median_ms(lambda: model.expert.velocity(x, cond, ctx), repeats * 10)
    return {"prefix_ms": pre_wall, "prefix_cpu_ms": pre_cpu, "expert_replan_ms": rep_wall,
            "expert_replan_cpu_ms": rep_cpu, "expert_flow_step_ms": step_wall}


def _act_latency(model: TwoStagePolicy, repeats: int) -> float:
    """Median ms of one `Policy.act` as deployed (obs → action, all included: with prefix_every=1 every step
    refreshes the VLM prefix from fresh images; with more, the median is over the steps that reuse it)."""
    import numpy as np

    cfg, rng = model.cfg, np.random.default_rng(0)
    r, c = cfg.taxel_shape
    obs = {f"rgb_{cam}": rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8) for cam in cfg.cameras}
    obs["joint_pos"] = rng.standard_normal((1, cfg.proprio_dim)).astype(np.float32)
    for p in cfg.pads:
        obs[f"touch_{p}"] = rng.standard_normal((1, cfg.expert.touch_history, r, c, 3)).astype(np.float32)
        obs[f"touch_net_{p}"] = rng.standard_normal((1, 3)).astype(np.float32)
    policy = Policy(model)
    times = []
    for i in range(repeats * cfg.prefix_every + 2):
        t0 = time.perf_counter()
        policy.act(obs, "pick up the red block")
        if i >= 2 and (cfg.prefix_every == 1 or i % cfg.prefix_every):  # after warm-up; cached-prefix steps
            times.append(time.perf_counter() - t0)
    return round(1e3 * statistics.median(times), 3)


def bench_loading(cfg: PolicyCfg, path: str, samples: int, seed: int = 0) -> dict:
    """Training draws per second from one dataset (augmentation on, as training reads), per image path: `resize`
    (decode the stored frame and resize it for every sample) and `cache` (the frame cache; its one-off build time
    is reported separately)."""
    import tempfile

    from .data import DataCfg, Layout, MixtureDataset, SourceCfg, build_sources

    layout = Layout.from_policy(cfg)
    out: dict = {"load_dataset": path, "load_samples": samples}
    with tempfile.TemporaryDirectory() as tmp:
        for key, cache in (("resize", ""), ("cache", tmp)):
            t0 = time.perf_counter()
            sources = build_sources(DataCfg(sources=[SourceCfg(path)], valid_fraction=0.0, frame_cache=cache),
                                    layout, seed)
            setup = time.perf_counter() - t0
            ds = MixtureDataset(sources, "train", seed, DataCfg().augment)
            ds[0]
            t0 = time.perf_counter()
            for k in range(1, samples + 1):
                ds[k]
            out[f"load_samples_per_s_{key}"] = round(samples / (time.perf_counter() - t0), 1)
            out[f"load_setup_s_{key}"] = round(setup, 2)
    out["load_speedup_cache"] = round(out["load_samples_per_s_cache"] / out["load_samples_per_s_resize"], 2)
    return out


def _train_rate(model: TwoStagePolicy, b: int, repeats: int) -> float:
    """Samples/s of forward + backward (no optimizer step) on random batches of size `b`."""
    model.train()
    batch = random_batch(model.cfg, b)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        loss, _ = model.loss(batch)
        loss.backward()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return round(b / statistics.median(times[1:]), 1)  # the first pass warms up allocators


def _median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall ms, thread CPU ms) medians after a short warm-up."""
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return round(1e3 * statistics.median(wall), 3), round(1e3 * statistics.median(cpu), 3)
