"""What the stages that run a model share: a broken model ends the stage in one line."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import shown

from iics.features import NonFiniteFeatures


@contextmanager
def model_must_work(stage: str, model_path: Path) -> Iterator[None]:
    """Inside, a model that gives NaN or infinite features ends the stage with one line naming
    `stage` (e.g. "features r01") and the model file, before anything is written."""
    try:
        yield
    except NonFiniteFeatures as error:
        raise SystemExit(f"{stage}: {shown(model_path)}: {error}") from None
