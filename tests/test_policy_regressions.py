"""Regression tests for the learning bugs issue 16 found (each failed before its fix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rho.eval import launch
from rho.eval.suite import SuiteCfg
from rho.policy.data import DataError, check_instructions, frame_to_tensor, image_to_tensor
from rho.policy.frames import resize_frames
from rho.policy.inference import Policy, decoding_stats


# ------------------------------------------------------------------------------ decoding statistics
def _stats(mean: float) -> dict:
    return {"actions": {"mean": [mean] * 14, "std": [1.0] * 14}}


def test_checkpoint_trained_per_source_on_several_sources_is_refused():
    """Before: norm_stats.json kept the first source's statistics and every task decoded with them."""
    extra = {"normalize": "per_source", "source_stats": {"lift": _stats(0), "busybox": _stats(1)}}
    with pytest.raises(ValueError, match="per-source normalization over 2 sources"):
        decoding_stats("ckpt", _stats(0), extra, None)
    # one source: unambiguous
    assert decoding_stats("ckpt", _stats(0), {"source_stats": {"lift": _stats(0)}}, None)[0] == _stats(0)


def test_several_embodiments_decode_only_when_told_which():
    extra = {"embodiment_stats": {"aloha/joint_pos": _stats(0), "other/joint_pos": _stats(5)},
             "embodiment": "aloha/joint_pos", "embodiment_explicit": False}
    with pytest.raises(ValueError, match="ambiguous"):
        decoding_stats("ckpt", _stats(0), extra, None)
    stats, emb = decoding_stats("ckpt", _stats(0), extra, "other/joint_pos")
    assert emb == "other/joint_pos" and stats["actions"]["mean"][0] == 5
    with pytest.raises(ValueError, match="no statistics for embodiment"):
        decoding_stats("ckpt", _stats(0), extra, "ur5/ee_delta")
    # a target named at training time decodes by default
    stats, emb = decoding_stats("ckpt", _stats(0), {**extra, "embodiment_explicit": True}, None)
    assert emb == "aloha/joint_pos" and stats == _stats(0)


# ------------------------------------------------------------------------------ train as you deploy
def test_training_and_inference_see_the_same_pixels():
    """Before: training resized in float, inference interpolated differently; now one `resize_frames`."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    train_view = image_to_tensor(img, 64)  # no augmentation: what validation and an un-augmented draw see
    policy = Policy.__new__(Policy)
    policy.cfg = type("C", (), {"cameras": ("cam_high",), "backbone": type("B", (), {"image_size": 64})()})()
    policy.device = torch.device("cpu")
    images, _ = policy._images({"rgb_cam_high": img[None]}, np.array([0]))
    assert torch.equal(images["cam_high"][0], train_view)
    assert torch.equal(frame_to_tensor(resize_frames(img[None], 64)[0]), train_view)


def test_instructions_that_would_be_cut_are_refused():
    """Before: 31 bytes were kept and every plug instruction lost its plug type."""

    from types import SimpleNamespace

    text = "push the rectangular connector all the way into the matching outlet"
    src = SimpleNamespace(cfg=SimpleNamespace(instruction=""), demos={"train": [0], "valid": []},
                          store=SimpleNamespace(instruction=lambda i: text, name=lambda i: "plug.hdf5: demo 0"))
    with pytest.raises(DataError, match="needs 68 bytes tokens"):
        check_instructions([src], 64, "bytes")
    check_instructions([src], 68, "bytes")
    with pytest.raises(DataError, match="needs 12 words tokens"):  # begin + 11 words
        check_instructions([src], 11, "words")
    check_instructions([src], 12, "words")


def test_word_tokens_are_stable_and_tell_instructions_apart():
    """Hashed words: the same ids on every machine and run (CRC-32, not Python's salted hash), case and punctuation
    ignored, and the task-defining words (plug types, colours) get ids of their own."""
    from rho.policy.text import Tokenizer, tokens_of

    assert tokens_of("words", "Push the US-style plug!") == tokens_of("words", "push the us style plug")
    assert tokens_of("words", "push") == [1, 2 + 1597642340 % 4096]  # zlib.crc32(b"push"), pinned
    ids, mask = Tokenizer("words", 6)(["lift the red cube", "lift the blue cube"])
    assert ids.shape == (2, 6) and mask.sum(1).tolist() == [5, 5] and (ids[0] != ids[1]).sum() == 1
    with pytest.raises(ValueError, match="'bytes' or 'words'"):
        tokens_of("chars", "x")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ eval threads
@pytest.mark.parametrize(("cores", "workers", "asked", "want"), [
    (2, 1, 0, 1), (2, 2, 0, 1), (16, 4, 0, 1), (2, 1, 4, 2), (16, 4, 3, 3), (1, 2, 0, 1)])
def test_eval_threads_never_exceed_a_workers_cores(monkeypatch, cores, workers, asked, want):
    """Before: the in-process path kept torch's default (every core): 172 ms per step on a busy machine."""
    monkeypatch.setattr(launch, "cores", lambda: cores)
    assert launch.threads_per_worker(SuiteCfg(torch_threads=asked), workers) == want


def test_in_process_eval_runs_with_its_threads_and_restores_them(monkeypatch):
    seen = []
    monkeypatch.setattr(launch, "run_unit", lambda suite, u, policy: seen.append(torch.get_num_threads()) or u)
    before = torch.get_num_threads()
    assert list(launch.run_units(SuiteCfg(workers=1), ["u"], None)) == ["u"]
    assert seen == [1] and torch.get_num_threads() == before
