"""Loading files that may come from someone else without running their code.

`torch.load` with `weights_only` off unpickles arbitrary Python objects, and unpickling can call any function the file
names (`__reduce__`), so a crafted `.pt` runs its payload the moment it is opened. Every checkpoint rho reads goes
through `load_torch`, which uses torch's restricted unpickler (`weights_only=True`: tensors, numbers, strings and
plain containers only) and turns its refusals into one line naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any


class CheckpointError(ValueError):
    """A checkpoint file that could only be loaded by running code from it (refused), or that is corrupted: the
    message is one line naming the file, what is wrong and the fix (`rho` prints it without a traceback)."""


def _reason(e: BaseException) -> str:
    """The informative line of torch's weights-only error (the rest advises turning weights_only off, which we never do)."""
    text = str(e)
    m = re.search(r"(Trying to load unsupported GLOBAL [^\n]*|Unsupported (?:operand|global)[^\n]*)", text)
    if m:
        return m.group(1).strip()
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return lines[0] if lines else type(e).__name__


def load_torch(path: str | Path, what: str, fix: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; a file holding code references, or no torch file at all,
    raises `CheckpointError` with one line: `<what> <path>: <problem>. Fix: <fix>`."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _reason(e)
        if "GLOBAL" in reason or "global" in reason:
            raise CheckpointError(
                f"{what} {path}: refused to load: it names Python code to run while loading ({reason}); rho loads "
                f"checkpoints without unpickling code (torch.load weights_only=True: tensors and plain values only). "
                f"Fix: {fix}") from None
        raise CheckpointError(f"{what} {path}: cannot be read as a torch checkpoint ({reason}). Fix: {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError, IndexError, KeyError,
            TypeError) as e:  # truncated zip, wrong magic number, empty file, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{what} {path}: cannot be read as a torch checkpoint ({type(e).__name__}: {first}). "
                              f"Fix: {fix}") from None


def load_json(path: str | Path, what: str, fix: str, expect: type = dict) -> Any:
    """JSON of `path` (an object by default); unreadable, invalid or of the wrong type → one-line `CheckpointError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{what} {path}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno}). "
                              f"Fix: {fix}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {path}: cannot be read ({type(e).__name__}: {e}). Fix: {fix}") from None
    if not isinstance(data, expect):
        raise CheckpointError(f"{what} {path}: expected a JSON {'object' if expect is dict else expect.__name__}, "
                              f"got {type(data).__name__}. Fix: {fix}")
    return data
