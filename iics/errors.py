"""The error for a file that cannot be used as asked, and any error's message on one line."""
from __future__ import annotations

import os
import re
from pathlib import Path


class FileError(ValueError):
    """A file that is missing, cannot be read or written, or does not hold what the caller
    expected. `path` names the file and `reason` says what is wrong; the message is
    "path: reason". Pipeline stages read the two parts to show the path relative to the project,
    after the stage's name."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# torch.load(weights_only=True) of a file that pickles objects (a whole nn.Module saved with
# torch.save(model)): a paragraph on unsafe loading around the one fact that matters.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def pickled_object(error: Exception) -> str | None:
    """The class a weights-only `torch.load` refused to unpickle (a whole nn.Module saved with
    torch.save(model), say), from its error; None for any other error."""
    message = _ANSI_ESCAPE.sub("", str(error))
    found = _UNSUPPORTED_GLOBAL.search(message) if "Weights only load failed" in message else None
    return found.group(1) if found else None


def one_line_reason(error: Exception, limit: int = 160) -> str:
    """An error from torch on one line, cut to `limit` characters: its messages run to paragraphs,
    and load_state_dict's first line ("Error(s) in loading state_dict for ResNet:") only
    announces the lines that say what is wrong. Terminal colour codes are dropped, and a
    weights-only load refused for a pickled object is said in a sentence naming the object."""
    if (what := pickled_object(error)) is not None:  # our own sentence: not cut, its advice is at the end
        return (f"it holds a pickled {what} object, not only tensors, and is not loaded as one: code in a pickle "
                f"could run; save its state_dict() instead")
    message = _ANSI_ESCAPE.sub("", str(error))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    text = " ".join(lines) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
