"""VLM backbones: camera images + the language instruction → prefix tokens for the action expert.

Two kinds behind one interface (`Backbone.forward(images, image_mask, instruction) -> (tokens, mask)`):
    builtin  a small CNN (or ViT) per camera + a hashed-word (or byte) text encoder fused by a transformer; trains
             from scratch on a CPU.
    hf       any Hugging Face transformers VLM that exposes `get_image_features` and a decoder (SmolVLM/Idefics3,
             PaliGemma, Gemma 3, LLaVA-style...), loaded by hub id or local path, cut at a chosen decoder layer,
             optionally frozen or LoRA-adapted (peft).

Also the pre-LN transformer block shared with the action expert.

Shapes (legend): b batch, k cameras, s image side, n prefix tokens (k·image tokens + text tokens), t text tokens,
d width, D backbone output width.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812 -- the universal torch idiom
from torch import Tensor, nn

from .config import BUILTIN_PATCH, BackboneCfg
from .text import Tokenizer

# --------------------------------------------------------------------------- shared transformer layers


Attend = Literal["self", "context", "both"]  # what a block's queries attend to: themselves, a cached context, or both


class Block(nn.Module):
    """Parallel pre-LN transformer block (GPT-J/PaLM): attention and MLP read the same normalized input, so the
    block costs one fused input and one bias-free fused output projection (which also adds the residual) — few,
    large matmuls, which is what makes the expert fast on a CPU.

    `attend` picks the keys: "self" (the tokens themselves), "context" (cached K/V only: cross-attention, no K/V
    projection of its own) or "both" (context and self in one attention call). `multi_query=True` shares one K/V
    head across the query heads (as pi0's Gemma-300M expert does): smaller projections and caches, and the heads
    fold into the query axis, so attention is a single-head call with no transposes.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4, multi_query: bool = False,
                 attend: Attend = "self") -> None:
        super().__init__()
        self.heads, self.head_dim, self.hidden = heads, width // heads, mlp_ratio * width
        self.multi_query, self.attend = multi_query, attend
        kv_dim = self.head_dim if multi_query else width  # width of K (and of V)
        kv_dims = [] if attend == "context" else [kv_dim, kv_dim]
        self.splits = [width, *kv_dims, self.hidden]  # q, (k, v,) MLP hidden
        self.norm = nn.LayerNorm(width)
        self.inp = nn.Linear(width, sum(self.splits))
        self.out = nn.Linear(width + self.hidden, width, bias=False)  # [attention, MLP] → residual update

    @abc.abstractmethod
    def forward(self, x: Tensor, attn_mask: Tensor | None = None, ctx: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x (b, n, d); attn_mask (b, 1, 1, keys) bool, True = attend (keys: context then self); ctx: K, V each
        (b, kv_heads, n_ctx, d/heads), kv_heads = 1 if multi_query else heads → (b, n, d)"""
        b, n, d = x.shape
        # functional calls, not submodule calls: dispatch is a visible share of a ~100 µs CPU block
        h = F.layer_norm(x, (d,), self.norm.weight, self.norm.bias, self.norm.eps)
        q, *kv, u = F.linear(h, self.inp.weight, self.inp.bias).split(self.splits, dim=-1)
        if self.multi_query:  # heads fold into the query axis: (b, 1, n·heads, dh) against (b, 1, keys, dh)
            q = q.reshape(b, 1, n * self.heads, self.head_dim)
            kv = [t[:, None] for t in kv]
        else:
            q, *kv = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (q, *kv))
        if self.attend == "context":
            assert ctx is not None, "a context block needs the cached context K/V"
            k, v = ctx
        elif self.attend == "both" and ctx is not None:
            k, v = torch.cat([ctx[0], kv[0]], dim=2), torch.cat([ctx[1], kv[1]], dim=2)
        else:
            k, v = kv
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        a = a.reshape(b, n, d) if self.multi_query else a.transpose(1, 2).reshape(b, n, d)
        z = torch.cat([a, F.gelu(u)], dim=-1)  # (b, n, d + hidden)
        return torch.addmm(x.reshape(b * n, d), z.reshape(b * n, -1), self.out.weight.t()).view(b, n, d)


def key_mask(mask: Tensor) -> Tensor | None:
    """(b, m) bool key-validity → (b, 1, 1, m) SDPA mask, or None when every key is valid (faster kernel)."""
    return None if bool(mask.all()) else mask[:, None, None, :]


# --------------------------------------------------------------------------- interface


class Backbone(nn.Module, abc.ABC):
    """images (b, k, 3, s, s) in [0, 1], image_mask (b, k) bool, instruction list[str] of b
    → tokens (b, n, D), mask (b, n) bool (True = valid). `n` is fixed for a given config."""

    out_dim: int

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def freeze_(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)

    @abc.abstractmethod
    def forward(self, images: Tensor, image_mask: Tensor, instruction: list[str]) -> tuple[Tensor, Tensor]:
        """Implemented by each subclass."""


def build_backbone(cfg: BackboneCfg, num_cameras: int, hf_source: str | None = None,
                   pretrained: bool = True) -> Backbone:
    """The backbone of `cfg.kind`. hf: weights from `hf_source or cfg.hf_model`; `pretrained=False` builds the
    architecture only (a checkpoint's state_dict fills it)."""
    if cfg.kind == "builtin":
        return BuiltinBackbone(cfg, num_cameras) if cfg.vision == "vit" else ConvBackbone(cfg, num_cameras)
    return HfBackbone(cfg, hf_source or cfg.hf_model, pretrained)


# --------------------------------------------------------------------------- builtin


class _TextFusion(Backbone):
    """What both builtin backbones share: the instruction's tokens (`backbone.tokenizer`: bytes or hashed words,
    see rho.policy.text), and `depth` bidirectional transformer blocks fusing camera tokens with them. Subclasses make the camera tokens (b, k, m, w)."""

    def __init__(self, cfg: BackboneCfg) -> None:
        super().__init__()
        w = cfg.width
        self.out_dim = w
        self.tokenizer = Tokenizer(cfg.tokenizer, cfg.max_text_tokens)
        self.txt_emb = nn.Embedding(self.tokenizer.vocab_size, w)
        self.txt_pos = nn.Parameter(torch.randn(1, cfg.max_text_tokens, w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, cfg.heads) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(w)

    def fuse(self, x: Tensor, image_mask: Tensor, instruction: list[str],
             tokens: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """camera tokens x (b, k, m, w), image_mask (b, k) → tokens (b, k·m + t, w), mask (b, k·m + t);
        `tokens`: the instruction's (ids, mask) when the caller has them already"""
        b, k, m, _ = x.shape
        img_mask = image_mask[:, :, None].expand(b, k, m)
        ids, txt_mask = tokens if tokens is not None else self.tokenizer(instruction)  # (b, t)
        t = self.txt_emb(ids.to(x.device)) + self.txt_pos
        tokens = torch.cat([x.flatten(1, 2), t], dim=1)  # (b, n, w)
        mask = torch.cat([img_mask.flatten(1), txt_mask.to(x.device)], dim=1)  # (b, n); the begin token is valid
        attn = key_mask(mask)
        for blk in self.blocks:
            tokens = blk(tokens, attn)
        return self.norm(tokens), mask


class BuiltinBackbone(_TextFusion):
    """Patch-embedded cameras (shared ViT stem, per-camera embedding) and instruction tokens, fused by `depth`
    bidirectional transformer blocks — a VLM small enough to train from scratch on a CPU (`backbone.vision=vit`)."""

    def __init__(self, cfg: BackboneCfg, num_cameras: int) -> None:
        super().__init__(cfg)
        w, grid = cfg.width, cfg.image_size // BUILTIN_PATCH
        self.patch = nn.Conv2d(3, w, BUILTIN_PATCH, BUILTIN_PATCH)
        self.img_pos = nn.Parameter(torch.randn(1, 1, grid * grid, w) * 0.02)  # per patch
        self.cam_emb = nn.Parameter(torch.randn(1, max(num_cameras, 1), 1, w) * 0.02)  # per camera
        if cfg.freeze:
            self.freeze_()

    def forward(self, images: Tensor, image_mask: Tensor, instruction: list[str]) -> tuple[Tensor, Tensor]:
        b, k = images.shape[:2]
        # (b·k, 3, s, s) → (b, k, g², w): one conv for every camera
        x = self.patch((images.flatten(0, 1) - 0.5) / 0.25).flatten(2).transpose(1, 2)
        return self.fuse(x.view(b, k, -1, x.shape[-1]) + self.img_pos + self.cam_emb[:, :k], image_mask, instruction)


class SpatialSoftmax(nn.Module):
    """features (B, C, H, W) → (B, K, 2) expected image coordinates in [-1, 1] (x right, y down) of K learned
    keypoints: a 1×1 conv makes K heat maps, a softmax over each map's pixels weights the pixel coordinates
    (Levine et al. 2016; robomimic's and Diffusion Policy's image encoders). Localizes to sub-pixel precision."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.to_maps = nn.Conv2d(channels, keypoints, 1)
        self.log_temp = nn.Parameter(torch.zeros(()))  # learned softmax temperature (log)

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        maps = self.to_maps(x).flatten(2) / self.log_temp.exp()  # (B, K, H·W)
        attn = maps.softmax(-1)
        ys = torch.linspace(-1.0, 1.0, H, device=x.device, dtype=attn.dtype)
        xs = torch.linspace(-1.0, 1.0, W, device=x.device, dtype=attn.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(H * W, 2)  # (H·W, 2): (x, y)
        return attn @ grid  # (B, K, 2)


def _conv_gn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(min(8, cout // 4), cout),
                         nn.ReLU(inplace=True))


class ConvStem(nn.Module):
    """A small ResNet-style CNN with GroupNorm (batch-size independent, EMA-friendly): per stage one stride-2 conv
    and one residual 3×3 conv. (B, 3, s, s) → (B, C, s/2^stages, s/2^stages)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        self.res = nn.ModuleList()
        cin = 3
        for c in channels:
            self.down.append(_conv_gn(cin, c, 2))
            self.res.append(_conv_gn(c, c, 1))
            cin = c
        self.out_channels = cin

    def forward(self, x: Tensor, film: Tensor | None = None) -> Tensor:
        """`film` (B, 2·ΣC): per stage, (scale, shift) of its output channels, x ← x·(1 + scale) + shift."""
        at = 0
        for down, res in zip(self.down, self.res, strict=True):
            x = down(x)
            x = x + res(x)
            if film is not None:
                c = x.shape[1]
                scale, shift = film[:, at:at + c], film[:, at + c:at + 2 * c]
                x = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
                at += 2 * c
        return x


class ConvBackbone(_TextFusion):
    """The builtin VLM with a CNN vision path (`backbone.vision=cnn`): each camera goes through its own small
    GroupNorm CNN; a spatial softmax turns its feature map into K keypoints (sub-pixel image coordinates, each one
    token: coordinates + a learned keypoint embedding) plus one token of the globally pooled features; these and
    the instruction's tokens are fused by `depth` bidirectional transformer blocks. A ViT with 16-px patches
    at 96 px sees a 3 cm block as a fraction of one patch; keypoints localize it to a fraction of a pixel."""

    def __init__(self, cfg: BackboneCfg, num_cameras: int) -> None:
        super().__init__(cfg)
        w, k = cfg.width, max(num_cameras, 1)
        self.keypoints = cfg.keypoints
        chans = tuple(int(c) for c in cfg.cnn_channels)
        self.stems = nn.ModuleList(ConvStem(chans) for _ in range(k))  # one CNN per camera (robomimic, ACT)
        self.softmax = nn.ModuleList(SpatialSoftmax(chans[-1], cfg.keypoints) for _ in range(k))
        self.kp_proj = nn.Linear(2, w)
        self.pool_proj = nn.Linear(chans[-1], w)
        self.kp_emb = nn.Parameter(torch.randn(1, k, cfg.keypoints + 1, w) * 0.02)  # per camera, keypoint (+ pool)
        # FiLM (Perez et al. 2018; RT-1's instruction-conditioned image encoder): per camera, the mean word embedding
        # → every stage's channel scales and shifts; zero-initialized, so training starts from the plain CNN
        self.film = nn.ModuleList(nn.Linear(w, 2 * sum(chans)) for _ in range(k)) if cfg.film else None
        if self.film is not None:
            for lin in self.film:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        if cfg.freeze:
            self.freeze_()

    def forward(self, images: Tensor, image_mask: Tensor, instruction: list[str]) -> tuple[Tensor, Tensor]:
        per_cam = []
        tokens, text = (self.tokenizer(instruction), None) if self.film is not None else (None, None)
        if tokens is not None:
            m = tokens[1].to(images.device)[..., None].float()
            text = (self.txt_emb(tokens[0].to(images.device)) * m).sum(1) / m.sum(1).clamp(min=1)  # (b, w) mean word
        for j in range(images.shape[1]):
            film = self.film[j](text) if text is not None else None
            f = self.stems[j]((images[:, j] - 0.5) / 0.25, film)  # (b, C, h, w)
            kp = self.kp_proj(self.softmax[j](f))  # (b, K, w)
            pooled = self.pool_proj(f.mean((2, 3)))[:, None]  # (b, 1, w)
            per_cam.append(torch.cat([kp, pooled], 1))
        x = torch.stack(per_cam, 1) + self.kp_emb[:, : images.shape[1]]  # (b, k, K + 1, w)
        return self.fuse(x, image_mask, instruction, tokens)


# --------------------------------------------------------------------------- hf

# VLMs whose get_image_features takes (batch, images, 3, H, W) and drops all-zero images
_FIVE_D_PIXELS = {"idefics2", "idefics3", "smolvlm"}


class HfBackbone(Backbone):
    """A transformers VLM used as an encoder: each camera goes through `get_image_features` (vision tower +
    connector), the instruction through the tokenizer and input embeddings, and the decoder runs over
    [camera tokens..., text tokens] (causal, as the model was trained) up to layer `hf_layer`, whose output
    (after the final norm) is the prefix. The decoder layers past `hf_layer` and the LM head are not kept."""

    def __init__(self, cfg: BackboneCfg, source: str, pretrained: bool = True) -> None:
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("backbone.kind=hf needs `transformers` (pip install 'transformers>=5.23,<6')") from e
        self.cfg, self.source = cfg, source
        if pretrained:
            self.vlm = AutoModel.from_pretrained(source, dtype=torch.float32)
        else:
            self.vlm = AutoModel.from_config(AutoConfig.from_pretrained(source), dtype=torch.float32)
        self.tokenizer, self.processor, mean, std = _load_text_and_image_processing(source)
        if self.tokenizer.pad_token is None:  # e.g. Llama-style tokenizers: pads are masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.register_buffer("pix_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pix_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        vcfg = getattr(self.vlm.config, "vision_config", None)
        if not hasattr(self.vlm, "get_image_features") or vcfg is None:
            raise ValueError(f"{source}: {type(self.vlm).__name__} has no get_image_features/vision_config; "
                             "backbone.kind=hf supports VLMs that expose them (SmolVLM, Idefics3, PaliGemma, ...)")
        self.vision_size = int(vcfg.image_size)
        self.five_d = self.vlm.config.model_type in _FIVE_D_PIXELS
        self.decoder = self.vlm.get_decoder()
        self.kept_layers = _truncate_decoder(self.decoder, cfg.hf_layer)
        self.out_dim = int(self.vlm.get_input_embeddings().embedding_dim)
        if cfg.freeze or cfg.lora_rank > 0:
            self.freeze_()
        if cfg.lora_rank > 0:
            _add_lora(self.decoder, cfg.lora_rank)

    def train(self, mode: bool = True) -> HfBackbone:
        super().train(mode)
        if not self.trainable:  # a frozen VLM keeps dropout off
            self.vlm.eval()
        return self

    def save_pretrained_files(self, out_dir: str | Path) -> None:
        """Config + tokenizer/processor files, so a checkpoint rebuilds the architecture without the hub."""
        self.vlm.config.save_pretrained(out_dir)
        (self.processor or self.tokenizer).save_pretrained(out_dir)

    def embed_images(self, images: Tensor) -> Tensor:
        """images (b, k, 3, s, s) in [0, 1] → (b, k·i, D), i image tokens per camera"""
        b = images.shape[0]
        x = images.flatten(0, 1)
        if x.shape[-1] != self.vision_size or x.shape[-2] != self.vision_size:
            x = F.interpolate(x, size=(self.vision_size, self.vision_size), mode="bilinear", align_corners=False)
        x = (x - self.pix_mean) / self.pix_std
        if self.five_d:
            # Idefics-style models silently drop all-zero images as padding; a real image can be exactly 0 after
            # normalization (uniform grey), which would break the fixed token count — nudge one value.
            zero = (x == 0).flatten(1).all(1)
            x[zero, 0, 0, 0] = 1e-6
            x = x[:, None]  # (b·k, 1, 3, H, W)
        out = self.vlm.get_image_features(pixel_values=x.to(self.vlm.dtype))
        feats = getattr(out, "pooler_output", out)
        if isinstance(feats, list | tuple):
            feats = torch.stack([f.reshape(-1, f.shape[-1]) for f in feats])
        return feats.reshape(b, -1, feats.shape[-1])

    def forward(self, images: Tensor, image_mask: Tensor, instruction: list[str]) -> tuple[Tensor, Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            img = self.embed_images(images)  # (b, k·i, D)
            tok = self.tokenizer(instruction, padding="max_length", truncation=True,
                                 max_length=self.cfg.max_text_tokens, return_tensors="pt")
            ids, txt_mask = tok["input_ids"].to(img.device), tok["attention_mask"].to(img.device).bool()  # (b, t)
            txt = self.vlm.get_input_embeddings()(ids)  # (b, t, D)
            # The decoder sees every camera token (a missing camera is a black image): every causal row then has
            # a valid key, so no NaN. Missing cameras are masked for the expert instead.
            lm_mask = torch.cat([torch.ones(img.shape[:2], dtype=torch.long, device=img.device), txt_mask.long()], 1)
            out = self.decoder(inputs_embeds=torch.cat([img, txt], 1), attention_mask=lm_mask, use_cache=False)
            per_cam = img.shape[1] // images.shape[1]
            mask = torch.cat([image_mask.repeat_interleave(per_cam, dim=1), txt_mask], dim=1)  # (b, n)
            return out.last_hidden_state.float(), mask


def _load_text_and_image_processing(source: str):
    """(tokenizer, processor or None, pixel mean, pixel std): the processor's normalization when it has one."""
    from transformers import AutoProcessor, AutoTokenizer

    processor = None
    try:
        processor = AutoProcessor.from_pretrained(source)
    # a bare tokenizer (tiny test models) has no processor; a processor may also need an optional package
    except (OSError, ValueError, TypeError, KeyError, ImportError):
        processor = None
    tokenizer = getattr(processor, "tokenizer", None) or AutoTokenizer.from_pretrained(source)
    if tokenizer is processor:
        processor = None
    image_proc = getattr(processor, "image_processor", None)
    mean = list(getattr(image_proc, "image_mean", None) or [0.5, 0.5, 0.5])
    std = list(getattr(image_proc, "image_std", None) or [0.5, 0.5, 0.5])
    return tokenizer, processor, mean, std


def _truncate_decoder(decoder: nn.Module, layer: int) -> int:
    """Keep decoder layers up to and including `layer` (Python index); returns how many are kept."""
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(decoder).__name__}: no `layers` ModuleList to cut at hf_layer")
    n = len(layers)
    if not -n <= layer < n:
        raise ValueError(f"hf_layer={layer} out of range for a decoder of {n} layers")
    keep = layer % n + 1
    decoder.layers = layers[:keep]
    return keep


def _add_lora(decoder: nn.Module, rank: int) -> None:
    """LoRA (peft) on every linear layer of the kept decoder layers, the only trainable weights of a backbone
    frozen beforehand (the policy's prefix projection is outside the backbone and trains too)."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = [name for name, m in decoder.named_modules() if isinstance(m, nn.Linear) and name.startswith("layers.")]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    inject_adapter_in_model(config, decoder)
    for name, p in decoder.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

