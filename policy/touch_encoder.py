"""Touch and proprioception encoders: raw, continuous signals → a few expert context tokens, never through the VLM.

Touch is not tokenized as text: each pad's taxel grid, with its short history (and its change over the history:
contact onset, slip) as channels, is pooled to at most 4×4 cells; a per-cell MLP shared by all cells and pads
embeds the forces, the cells are flattened in place (so the token keeps where on the pad the force is — centre of
pressure, edge contact) and projected, and the pad's net force is added — one token per pad, a pad embedding
telling them apart. Linear layers rather than tiny convolutions: on a CPU they are several times faster, and the
encoder runs once per re-plan, inside the reactive loop.

Shapes (legend): b batch, P pads, S touch history, r×c taxels, d expert width, p proprio dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 -- the universal torch idiom
from torch import Tensor, nn

_POOL = 4  # larger grids are average-pooled to at most 4×4 cells, so the token projection stays small


class TouchEncoder(nn.Module):
    """taxels (b, P, S, r, c, 3) + net forces (b, P, 3) → (b, P, d)"""

    def __init__(self, pads: int, history: int, taxel_shape: tuple[int, int], width: int, hidden: int = 32) -> None:
        super().__init__()
        r, c = taxel_shape
        self.history, self.cells = history, (min(r, _POOL), min(c, _POOL))
        self.cell_mlp = nn.Sequential(nn.Linear(3 * history + 3, hidden), nn.GELU(approximate="tanh"),
                                      nn.Linear(hidden, hidden))
        self.grid_proj = nn.Linear(hidden * self.cells[0] * self.cells[1], width)
        self.net_proj = nn.Linear(3, width)
        self.pad_emb = nn.Parameter(torch.randn(1, pads, width) * 0.02)
        self.out = nn.Sequential(nn.GELU(approximate="tanh"), nn.Linear(width, width))

    def forward(self, touch: Tensor, touch_net: Tensor) -> Tensor:
        b, P, S, r, c, _ = touch.shape
        if self.history != S:
            raise ValueError(f"touch history {S} != expert.touch_history {self.history}")
        x = torch.cat([touch.permute(0, 1, 3, 4, 2, 5).reshape(b, P, r, c, 3 * S),
                       touch[:, :, -1] - touch[:, :, 0]], dim=-1)  # (b, P, r, c, 3S + 3)
        if (r, c) != self.cells:  # mean over blocks of taxels (b·P, ch, r, c) → (b, P, r', c', ch)
            x = F.adaptive_avg_pool2d(x.flatten(0, 1).permute(0, 3, 1, 2), self.cells)
            x = x.permute(0, 2, 3, 1).reshape(b, P, *self.cells, -1)
        grid = self.grid_proj(self.cell_mlp(x).flatten(2))  # (b, P, d)
        return self.out(grid + self.net_proj(touch_net)) + self.pad_emb


class ProprioEncoder(nn.Module):
    """proprio (b, p) → (b, 1, d)"""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.GELU(approximate="tanh"), nn.Linear(width, width))

    def forward(self, proprio: Tensor) -> Tensor:
        return self.net(proprio)[:, None]
