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


# Files a benchmark (or a dvc repro beside it) may rewrite while it runs, or that cannot change a
# measurement: recorded results, Markdown, dvc.lock.
NOT_CODE = (":(exclude)benchmarks/results", ":(exclude)*.md", ":(exclude)dvc.lock")


def git_commit(repo: str | os.PathLike) -> str | None:
    """The short commit of the checkout at `repo`, with "-dirty" when files other than NOT_CODE
    differ from it (`... > benchmarks/results/x.jsonl` empties a tracked file before the
    benchmark asks); None outside a git checkout."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    if head.returncode != 0:
        return None
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
                             cwd=repo, capture_output=True, text=True, check=True)
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")
