"""Running a command for a benchmark (wall time and the peak resident set of its processes), and
the commit a result was measured at."""
from __future__ import annotations

import json
import os
import subprocess
import sys

# A child Python runs the command, so RUSAGE_CHILDREN covers exactly that command's processes.
PROBE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(json.dumps({'code': done.returncode, 'seconds': time.perf_counter() - start,\n"
    "                  'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,\n"
    "                  'out': done.stdout + done.stderr}))\n"
)


def measured(args: list, cwd: str | os.PathLike, env: dict) -> dict:
    """Run `args`; return {seconds, peak_kib (largest RSS of any of its processes), out (stdout +
    stderr)}. A non-zero exit stops the benchmark with the command's output tail."""
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}:\n{report['out'][-3000:]}")
    return report


def git_commit(repo: str | os.PathLike) -> str | None:
    """`git describe --always --dirty` of the checkout at `repo`; None outside a git checkout."""
    result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or None
