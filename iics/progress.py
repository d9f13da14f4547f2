"""Whether long steps draw progress bars: the rule every stage and `python -m iics.embedding` follow."""
from __future__ import annotations

import os


def show_progress() -> bool:
    """A progress bar when IICS_PROGRESS is 1, none when it is 0, else (auto, the default) only
    when stderr is a terminal, so piped logs (CI, files) stay free of bars."""
    setting = os.environ.get("IICS_PROGRESS", "auto")
    return setting == "1" or (setting == "auto" and os.isatty(2))
