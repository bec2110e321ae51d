"""The two-stage policy: shapes for every config and ablation, learning, checkpoints, multi-rate inference, temporal
ensembling, and closed-loop driving of a real env. Tiny sizes throughout; the hf backbone runs on tiny randomly
initialised SmolVLM/Idefics3 and PaliGemma models written to a temp dir (the real loading path, no downloads)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rho.config import ConfigError
from rho.policy.bench import bench_policy, random_batch
from rho.policy.checkpoint import load_checkpoint, save_checkpoint
from rho.policy.config import BackboneCfg, ExpertCfg, PolicyCfg
from rho.policy.inference import Policy, fit_history
from rho.policy.model import TwoStagePolicy

STATE = ("proprio", "proprio_mask", "touch", "touch_net", "touch_mask")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is fastest, and on a shared 2-core box extra OpenMP threads only contend."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_cfg(**kw) -> PolicyCfg:
    backbone = BackboneCfg(image_size=16, width=32, depth=1, heads=2, max_text_tokens=8, cnn_channels=[8, 8], keypoints=4)
    expert = ExpertCfg(width=32, depth=2, heads=2, horizon=4, flow_steps=3)
    cfg = PolicyCfg(backbone=backbone, expert=expert, cameras=("cam_high", "cam_left_wrist"), prefix_every=3)
    for key, value in kw.items():
        if key in ("backbone", "expert"):
            setattr(cfg, key, dataclasses.replace(getattr(cfg, key), **value))
        else:
            setattr(cfg, key, value)
    return cfg


def state(batch: dict) -> list:
    return [batch[k] for k in STATE]


def check_forward(model: TwoStagePolicy, b: int = 3) -> None:
    """Prefix, sampling and loss shapes; gradients reach exactly the trainable parameters."""
    cfg = model.cfg
    batch = random_batch(cfg, b)
    batch["image_mask"][cfg.cameras[0]][0] = False  # a sample without its first camera
    batch["touch_mask"][1] = False  # a sample from a source without touch
    batch["action_pad"][0, -1] = True
    prefix = model.prefix(batch["images"], batch["image_mask"], batch["instruction"])
    n = prefix.tokens.shape[1]
    assert prefix.tokens.shape == (b, n, cfg.expert.width) and prefix.mask.shape == (b, n)
    assert len(prefix.kv) == model.expert.ctx_layers and prefix.kv[0][0].shape[0] == b
    actions = model.sample_actions(prefix, *state(batch))
    assert actions.shape == (b, cfg.expert.horizon, cfg.action_dim) and torch.isfinite(actions).all()
    loss, metrics = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and metrics["loss"] == pytest.approx(loss.item())
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
        if not p.requires_grad:
            assert p.grad is None


@pytest.mark.parametrize("variant", [
    {},
    {"expert": {"use_touch": False}},
    {"expert": {"use_proprio": False}},
    {"expert": {"use_touch": False, "use_proprio": False}},
    {"backbone": {"freeze": True}},
    {"ensemble": "none", "taxel_shape": (8, 6), "expert": {"touch_history": 3}},
    {"backbone": {"film": True}},
])
def test_builtin_shapes_and_ablations(variant):
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg(**variant))
    check_forward(model)
    if model.cfg.backbone.freeze:
        assert not model.backbone.trainable and model.prefix_proj.weight.requires_grad
    if not model.cfg.expert.use_touch:
        assert model.expert.touch is None


def test_missing_modalities_are_masked():
    """None for touch/proprio (or a camera absent from the dict) runs, and differs from having them."""
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg()).eval()
    batch = random_batch(model.cfg, 2)
    noise = torch.randn(2, 4, 14)
    with torch.no_grad():
        full = model.sample_actions(model.prefix(batch["images"], batch["image_mask"], batch["instruction"]),
                                    *state(batch), noise=noise)
        one_cam = {"cam_high": batch["images"]["cam_high"]}
        bare = model.sample_actions(model.prefix(one_cam, {}, batch["instruction"]), None, None, None, None, None,
                                    noise=noise)
    assert bare.shape == full.shape and not torch.allclose(bare, full)


def test_config_validation():
    with pytest.raises(ConfigError, match="multiple of 16"):
        TwoStagePolicy(tiny_cfg(backbone={"image_size": 20, "vision": "vit"}))
    with pytest.raises(ConfigError, match="too small"):
        TwoStagePolicy(tiny_cfg(backbone={"image_size": 4, "vision": "cnn", "cnn_channels": [8, 8, 8]}))
    with pytest.raises(ConfigError, match="replan_every"):
        TwoStagePolicy(tiny_cfg(replan_every=9))
    assert any("lora_rank" in p for p in tiny_cfg(backbone={"lora_rank": 4}).backbone.validate())


def _keypoints(model: TwoStagePolicy, images: dict, instruction: list[str]) -> torch.Tensor:
    """The first camera's spatial-softmax keypoints (before any fusion with the text)."""
    seen = []
    handle = model.backbone.softmax[0].register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad():
        model.prefix(images, {}, instruction)
    handle.remove()
    return seen[0]


def test_film_conditions_the_vision_path_on_the_instruction():
    """backbone.film: the instruction scales and shifts every CNN stage, so where a keypoint lands can depend on
    which button is named; it starts as the plain CNN (zero-initialized) and is off by default."""
    torch.manual_seed(0)
    plain = TwoStagePolicy(tiny_cfg()).eval()
    torch.manual_seed(0)
    film = TwoStagePolicy(tiny_cfg(backbone={"film": True})).eval()
    assert plain.backbone.film is None and len(film.backbone.film) == len(film.cfg.cameras)
    images = random_batch(plain.cfg, 2)["images"]
    red, green = ["push the red button"] * 2, ["push the green button"] * 2
    torch.testing.assert_close(_keypoints(plain, images, red), _keypoints(plain, images, green))
    torch.testing.assert_close(_keypoints(film, images, red), _keypoints(plain, images, red))  # zero-init: identity
    with torch.no_grad():
        for lin in film.backbone.film:
            lin.weight.normal_(0, 0.5)
    assert not torch.allclose(_keypoints(film, images, red), _keypoints(film, images, green), atol=1e-4)
    torch.testing.assert_close(_keypoints(film, images, red), _keypoints(film, images, red))
    with pytest.raises(ConfigError, match="film=true needs the builtin CNN"):
        TwoStagePolicy(tiny_cfg(backbone={"film": True, "vision": "vit"}))


# --------------------------------------------------------------------------- hf backbone (tiny random VLMs)

WORDS = ["[PAD]", "[UNK]", "<image>", "<bos>", "<eos>", "pick", "up", "the", "red", "green", "blue", "yellow", "block",
         "lift", "insert", "plug"]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<bos>",
                                   eos_token="<eos>")


def _tiny_vlm(kind: str):
    import transformers as tf

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": len(WORDS) + 4}
    if kind == "smolvlm":  # SmolVLM is the Idefics3 architecture
        cfg = tf.Idefics3Config(vision_config=vision, text_config={"model_type": "llama", **text}, scale_factor=2,
                                image_token_id=2, pad_token_id=0)
        return tf.Idefics3ForConditionalGeneration(cfg)
    cfg = tf.PaliGemmaConfig(vision_config={"model_type": "siglip_vision_model", "vision_use_head": False, **vision},
                             text_config={"model_type": "gemma", "head_dim": 8, **text}, image_token_id=2,
                             projection_dim=32)
    return tf.PaliGemmaForConditionalGeneration(cfg)


@pytest.fixture(scope="module", params=["smolvlm", "paligemma"])
def hf_dir(request, tmp_path_factory):
    """A tiny random VLM saved like a hub snapshot (weights + config + tokenizer)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(request.param)
    _tiny_vlm(request.param).save_pretrained(out)
    _tiny_tokenizer().save_pretrained(out)
    return str(out)


def hf_cfg(path: str, **backbone) -> PolicyCfg:
    return tiny_cfg(backbone={"kind": "hf", "hf_model": path, "image_size": 24, **backbone})


@pytest.mark.parametrize("mode", ["full", "frozen", "lora"])
def test_hf_backbone(hf_dir, mode):
    torch.manual_seed(0)
    opts = {"full": {}, "frozen": {"freeze": True}, "lora": {"lora_rank": 4, "hf_layer": 1}}[mode]
    model = TwoStagePolicy(hf_cfg(hf_dir, **opts))
    bb = model.backbone
    assert bb.kept_layers == (2 if mode == "lora" else 3)  # layers after hf_layer are dropped
    trainable = [n for n, p in bb.named_parameters() if p.requires_grad]
    if mode == "frozen":
        assert not trainable
    elif mode == "lora":
        assert trainable and all("lora_" in n for n in trainable)
    check_forward(model)


def test_hf_checkpoint_round_trip_offline(hf_dir, tmp_path):
    """A kind=hf checkpoint carries the VLM's config + tokenizer: it reloads without the original weights."""
    torch.manual_seed(0)
    model = TwoStagePolicy(hf_cfg(hf_dir, lora_rank=2)).eval()
    save_checkpoint(model, tmp_path / "ckpt", {}, {})
    loaded, _, _ = load_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.backbone.hf_model == hf_dir
    _assert_same_actions(model, loaded)


# --------------------------------------------------------------------------- learning


def learnable_batch(cfg: PolicyCfg, b: int) -> dict:
    """Random inputs; the action chunk is a fixed function of proprio and touch, so it can be learned."""
    batch = random_batch(cfg, b)
    h, a = cfg.expert.horizon, cfg.action_dim
    ramp = torch.linspace(0.5, 1.0, h)[None, :, None]
    push = batch["touch_net"][:, :1, :1]  # (b, 1, 1): the first pad's normal force nudges every action
    batch["actions"] = (batch["proprio"][:, None, :a] * ramp + 0.5 * push).clamp(-2, 2)
    return batch


def test_loss_decreases_on_learnable_data():
    torch.manual_seed(0)
    cfg = tiny_cfg(cameras=("cam_high",))
    model = TwoStagePolicy(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):  # a fresh random batch every step: the model must learn the function, not the samples
        loss, _ = model.loss(learnable_batch(cfg, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:10]), losses


def test_overfits_a_handful_of_samples():
    torch.manual_seed(0)
    cfg = tiny_cfg(cameras=("cam_high",), expert={"width": 64, "flow_steps": 10})
    model = TwoStagePolicy(cfg)
    few = learnable_batch(cfg, 4)
    batch = {k: ({c: t.repeat(8, 1, 1, 1) for c, t in v.items()} if isinstance(v, dict) else
                 v * 8 if isinstance(v, list) else v.repeat(8, *[1] * (v.dim() - 1))) for k, v in few.items()}
    batch["image_mask"] = {c: t[:, 0, 0, 0] >= 0 for c, t in batch["images"].items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=200)
    losses = []
    for _ in range(200):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:10])
    model.eval()
    with torch.no_grad():
        prefix = model.prefix(few["images"], few["image_mask"], few["instruction"])
        sampled = model.sample_actions(prefix, *state(few), noise=torch.randn(4, 4, 14))
    err = (sampled - few["actions"]).abs().mean()
    assert err < 0.3 * few["actions"].abs().mean(), float(err)


# --------------------------------------------------------------------------- checkpoints


def _assert_same_actions(a: TwoStagePolicy, b: TwoStagePolicy) -> None:
    batch = random_batch(a.cfg, 2)
    noise = torch.randn(2, a.cfg.expert.horizon, a.cfg.action_dim)
    with torch.no_grad():
        out = [m.sample_actions(m.prefix(batch["images"], batch["image_mask"], batch["instruction"]),
                                *state(batch), noise=noise) for m in (a, b)]
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg(backbone={"freeze": True}, taxel_shape=(8, 8))).eval()
    stats = {"actions": {"mean": np.arange(14.0), "std": [2.0] * 14}, "touch": {"mean": 0.5, "std": 3.0}}
    out = save_checkpoint(model, tmp_path / "ckpt", stats, {"step": 7})
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "model.pt", "norm_stats.json", "extra.json"}
    loaded, norm, extra = load_checkpoint(out)
    assert loaded.cfg == model.cfg and extra == {"step": 7}
    assert norm["actions"]["mean"] == list(range(14)) and norm["touch"]["std"] == 3.0
    _assert_same_actions(model, loaded)
    policy = Policy.load(out)
    assert policy.norm.denorm("actions", torch.zeros(14)).tolist() == list(range(14))
    # a training run's output directory loads its newest checkpoint (checkpoints/latest names it)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    out.rename(run / "checkpoints" / "step_00000007")
    (run / "checkpoints" / "latest").write_text("step_00000007\n")
    assert load_checkpoint(run)[2] == {"step": 7}
    assert load_checkpoint(run / "checkpoints" / "latest")[2] == {"step": 7}


# --------------------------------------------------------------------------- closed-loop inference


def fake_obs(cfg: PolicyCfg, n: int, rng: np.random.Generator, touch_scale: float = 1.0, history: int = 1) -> dict:
    r, c = cfg.taxel_shape
    obs = {f"rgb_{cam}": rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8) for cam in cfg.cameras}
    obs["joint_pos"] = rng.standard_normal((n, cfg.proprio_dim)).astype(np.float32)
    for p in cfg.pads:
        obs[f"touch_{p}"] = (touch_scale * rng.standard_normal((n, history, r, c, 3))).astype(np.float32)
        obs[f"touch_net_{p}"] = (touch_scale * rng.standard_normal((n, 3))).astype(np.float32)
    return obs


class Counter:
    """Wraps a bound method, counting calls and the batch rows they got."""

    def __init__(self, fn, rows_of):
        self.fn, self.rows_of, self.calls, self.rows = fn, rows_of, 0, []

    def __call__(self, *args, **kw):
        self.calls += 1
        self.rows.append(self.rows_of(*args))
        return self.fn(*args, **kw)


def test_multi_rate_prefix_every_k_expert_every_step():
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg(prefix_every=3, replan_every=1))
    policy = Policy(model)
    prefix_calls = Counter(model.prefix, lambda images, mask, instr: len(instr))
    plan_calls = Counter(model.sample_actions, lambda prefix, *a: prefix.tokens.shape[0])
    model.prefix, model.sample_actions = prefix_calls, plan_calls
    rng = np.random.default_rng(0)
    for _ in range(7):
        act = policy.act(fake_obs(model.cfg, 2, rng), ["pick up the red block", "lift"])
        assert act.shape == (2, 14) and act.dtype == np.float32
    assert prefix_calls.calls == 3 and prefix_calls.rows == [2, 2, 2]  # steps 0, 3, 6
    assert plan_calls.calls == 7  # the expert re-plans from fresh touch/proprio every step
    policy.reset([1])  # env 1 starts a new episode: only its prefix is recomputed, at once
    policy.act(fake_obs(model.cfg, 2, rng), ["pick up the red block", "lift"])
    assert prefix_calls.calls == 4 and prefix_calls.rows[-1] == 1
    policy.act(fake_obs(model.cfg, 2, rng), ["pick up the red block", "insert the plug"])  # new instruction
    assert prefix_calls.calls == 5 and prefix_calls.rows[-1] == 1


def test_touch_changes_actions_between_prefix_refreshes():
    """With the prefix cached, a change in touch alone changes the very next action."""
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg(prefix_every=10))
    obs = fake_obs(model.cfg, 1, np.random.default_rng(0))
    touched = {k: (v * 5 + 3 if k.startswith("touch") else v) for k, v in obs.items()}
    a, b = Policy(model, seed=1), Policy(model, seed=1)
    for step in range(4):
        out_a = a.act(obs, "lift")
        out_b = b.act(obs if step < 2 else touched, "lift")
        if step < 2:
            np.testing.assert_array_equal(out_a, out_b)
        else:
            assert not np.allclose(out_a, out_b)


def test_temporal_ensembling_smooths():
    torch.manual_seed(0)
    jitter = {}
    obs = fake_obs(tiny_cfg(), 4, np.random.default_rng(0))
    for mode in ("none", "temporal"):
        torch.manual_seed(0)
        policy = Policy(TwoStagePolicy(tiny_cfg(ensemble=mode, replan_every=1)), seed=0)
        acts = np.stack([policy.act(obs, "lift") for _ in range(20)])  # fresh flow noise every re-plan
        jitter[mode] = float(np.mean(np.diff(acts[4:], axis=0) ** 2))
    assert jitter["temporal"] < 0.5 * jitter["none"], jitter


def test_open_loop_chunk_execution():
    """ensemble=none, replan_every=h: the policy executes each chunk exactly, action by action."""
    torch.manual_seed(0)
    model = TwoStagePolicy(tiny_cfg(ensemble="none", replan_every=4))
    chunks = []
    original = model.sample_actions

    def record(*args, **kw):
        chunks.append(original(*args, **kw))
        return chunks[-1]

    model.sample_actions = record
    policy = Policy(model)
    obs = fake_obs(model.cfg, 1, np.random.default_rng(0))
    acts = np.stack([policy.act(obs, "lift")[0] for _ in range(8)])
    assert len(chunks) == 2
    np.testing.assert_allclose(acts, torch.cat(chunks, 1)[0].numpy(), rtol=1e-6, atol=1e-6)


def test_fit_history():
    x = torch.arange(3.0).view(1, 1, 3, 1, 1, 1).expand(2, 4, 3, 2, 2, 3)
    assert fit_history(x, 2)[0, 0, :, 0, 0, 0].tolist() == [1.0, 2.0]
    assert fit_history(x, 5)[0, 0, :, 0, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 2.0]


@pytest.mark.render
def test_policy_drives_lift_block_env(lift_cfg):
    """Observations from a real env (camera, touch history 1 vs the policy's 2) → valid joint targets, closed loop."""
    from conftest import home_action

    from rho.sim.env import CameraCfg
    from rho.tasks import make_env

    env_cfg = lift_cfg(num_envs=2)
    env_cfg.cameras = {"cam_high": CameraCfg(32, 32)}
    env = make_env("lift_block", env_cfg)
    try:
        obs, _ = env.reset(seed=0)
        home = home_action(env)[0]
        stats = {"actions": {"mean": home.tolist(), "std": [0.05] * 14},
                 "proprio": {"mean": home.tolist(), "std": [0.5] * 14}, "touch": {"mean": 0.0, "std": 1.0}}
        torch.manual_seed(0)
        policy = Policy(TwoStagePolicy(tiny_cfg(cameras=("cam_high",), prefix_every=2)), stats)
        for _ in range(5):
            instructions = [env.instruction(i) for i in range(env.num_envs)]
            action = policy.act(obs, instructions)
            assert action.shape == (2, 14) and np.isfinite(action).all()
            obs, _, term, trunc, _ = env.step(action)
            done = np.flatnonzero(term | trunc)
            if len(done):
                policy.reset(done)
    finally:
        env.close()


def test_bench_policy_keys():
    out = bench_policy(tiny_cfg(), repeats=2, train_batch=2)
    for key in ("params_backbone", "params_expert", "prefix_ms", "expert_replan_ms", "expert_flow_step_ms",
                "reactive_hz", "act_ms", "train_samples_per_s"):
        assert out[key] > 0, key


def test_policy_reset_with_a_bigger_batch():
    """An evaluator reuses one Policy over batches of different sizes: reset then act must not index old state."""
    cfg = tiny_cfg()
    policy = Policy(TwoStagePolicy(cfg).eval())
    rng = np.random.default_rng(0)
    policy.act(fake_obs(cfg, 1, rng), "x")
    policy.reset(np.arange(4))
    assert policy.act(fake_obs(cfg, 4, rng), "x").shape == (4, cfg.action_dim)
