"""Run one stage script and record which params.yaml keys it reads.

    python tests/params_trace.py OUT.json stages/intra_cluster.py r00

The script runs as `dvc repro` would run it, except that `common.load_params` hands it a dict
that notes every key path read (`clustering.rerank.k1`). Reading a whole group (iterating it,
its length, its items) notes the group's own path. OUT.json gets the sorted list of paths.
"""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path


class TracedDict(dict):
    """A params group that appends the dotted path of every key read to `log`."""

    def __init__(self, data: dict, path: tuple, log: set):
        super().__init__(data)
        self._path = path
        self._log = log

    def _value(self, key, value):
        path = self._path + (str(key),)
        if isinstance(value, dict):
            return TracedDict(value, path, self._log)
        self._log.add(".".join(path))
        if isinstance(value, list):  # lists are leaves: their elements are read as a whole
            return list(value)
        return value

    def _whole(self) -> None:
        self._log.add(".".join(self._path))

    def __getitem__(self, key):
        return self._value(key, super().__getitem__(key))

    def get(self, key, default=None):
        if key not in self:
            return default
        return self[key]

    def __contains__(self, key) -> bool:
        self._log.add(".".join(self._path + (str(key),)))
        return super().__contains__(key)

    def __iter__(self):
        self._whole()
        return super().__iter__()

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def keys(self):
        self._whole()
        return super().keys()

    def values(self):
        self._whole()
        return super().values()

    def items(self):
        self._whole()
        return super().items()


def main() -> None:
    out, script, *args = sys.argv[1:]
    script_path = Path(script).resolve()
    sys.path.insert(0, str(script_path.parent))
    import common  # the stage's helper module, imported before the stage binds load_params

    read: set = set()
    plain_load = common.load_params
    common.load_params = lambda: TracedDict(plain_load(), (), read)
    sys.argv = [str(script_path), *args]
    try:
        runpy.run_path(str(script_path), run_name="__main__")
    finally:
        Path(out).write_text(json.dumps(sorted(p for p in read if p)))


if __name__ == "__main__":
    main()
