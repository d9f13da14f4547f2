"""The error for a file that cannot be used as asked."""
from __future__ import annotations

import os
from pathlib import Path


class FileError(ValueError):
    """A file that is missing, cannot be read or written, or does not hold what the caller
    expected. `path` names the file and `reason` says what is wrong; the message is
    "path: reason". Pipeline stages read the two parts to show the path relative to the project,
    after the stage's name."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason
