"""Running a command for a benchmark (wall time and the peak resident set of its processes), and
the commit a result was measured at."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

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
    stderr)}. A non-zero exit stops the benchmark with the command's output tail. Stages started
    through stages/run.py run as children of the warm process, outside the command's process tree,
    so their own report (`peak host memory: N MiB`, which every stage prints at exit with
    IICS_REPORT_MEMORY=1, set here) counts too."""
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], cwd=cwd,
                            env={**env, "IICS_REPORT_MEMORY": "1"}, capture_output=True, text=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}:\n{report['out'][-3000:]}")
    reported = [int(line.split()[3]) * 1024 for line in report["out"].splitlines()
                if line.startswith("peak host memory:")]
    report["peak_kib"] = max([report["peak_kib"], *reported])
    return report


# Files a benchmark (or a dvc repro beside it) may rewrite while it runs, or that cannot change a
# measurement: recorded results, Markdown, dvc.lock.
NOT_CODE = (":(exclude)benchmarks/results", ":(exclude)*.md", ":(exclude)dvc.lock")


def git_commit(repo: str | os.PathLike) -> str | None:
    """The short commit of the checkout at `repo`; None outside a git checkout. Where code differs
    from it (tracked files other than NOT_CODE changed, or untracked files that git does not ignore,
    such as a new module not yet added), "-dirty-" and 8 hex digits
    of a SHA-256 over the change follow: two runs with different uncommitted changes are told apart,
    and the same change on the same commit gives the same digits again. NOT_CODE is left out
    (`... > benchmarks/results/x.jsonl` empties a tracked file before the benchmark asks). None
    too where git is not installed (a GPU machine handed a copy of the tree)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    if head.returncode != 0:
        return None

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args, "--", ".", *NOT_CODE], cwd=repo, capture_output=True, check=True).stdout

    changed = git("diff", "HEAD", "--binary")
    untracked = sorted(git("ls-files", "--others", "--exclude-standard", "-z").split(b"\0")[:-1])
    if not changed and not untracked:
        return head.stdout.strip()
    digest = hashlib.sha256(changed)
    for name in untracked:
        digest.update(b"\0" + name + b"\0" + (Path(repo) / os.fsdecode(name)).read_bytes())
    return f"{head.stdout.strip()}-dirty-{digest.hexdigest()[:8]}"
