"""What the stages that load a model share: a checkpoint that is missing, cannot be read or holds
another backbone than params.yaml names ends the stage in one line. Under `dvc repro` the files
are there and match; a stage script run by hand (after `model.backbone` changed, or before the
stage that writes its model) meets these."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from common import shown

from iics.checkpoint import CheckpointError


@contextmanager
def checkpoints_must_load(stage: str) -> Iterator[None]:
    """Inside, a CheckpointError ends the stage with one line naming `stage` (e.g. "features r01")
    and the file, before anything is written."""
    try:
        yield
    except CheckpointError as error:
        raise SystemExit(f"{stage}: {shown(error.path)}: {error.reason}") from None
