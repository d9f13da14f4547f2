"""stages/run.py, the launcher every dvc.yaml command goes through: a stage run in a child of the
warm process behaves as the same script run by `python` in its own process (arguments, working
directory, environment, standard streams, exit status, errors, signals), and a warm process that
cannot start leaves the stage to run in the launcher's own process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the warm process is Linux only")

PROBE = '''
import json, os, sys, time
report = {"argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("PROBE_MARKER"),
          "stage": os.environ.get("DVC_STAGE"), "stdin": sys.stdin.readline().strip(),
          "torch_loaded": "torch" in sys.modules, "pid": os.getpid(), "parent": os.getppid(),
          "path0": sys.path[0], "main": __name__, "umask": os.umask(0o022),
          "stdin_is_devnull": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
          "project_loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("iics", "common", "run"))}
print(json.dumps(report), flush=True)
print("to stderr", file=sys.stderr)
action = sys.argv[1] if len(sys.argv) > 1 else ""
if action == "message":
    raise SystemExit("probe: the input is broken")
if action == "raise":
    def fail():
        return {}["missing"]
    fail()
if action == "sleep":
    time.sleep(60)
sys.exit(int(action) if action.isdigit() else 0)
'''


@pytest.fixture
def stages(tmp_path) -> Path:
    """A stages/ folder holding the launcher and a probe script."""
    folder = tmp_path / "project" / "stages"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text((REPO / "stages" / "run.py").read_text())
    (folder / "probe.py").write_text(PROBE)
    return folder


SHARED = uuid.uuid4().hex  # one warm process for this module's tests, started by the first


def environment(warm: bool, **extra: str) -> dict:
    """The environment of a launch, with or without the warm process. The marker keeps this
    module's warm processes apart from any other's."""
    return {**os.environ, "IICS_WARM": "1" if warm else "0", "PROBE_MARKER": extra.pop("marker", SHARED), **extra}


def launch(stages: Path, args: list[str], env: dict, stdin: str = "line from stdin\n",
           umask: int = 0o022) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(stages / "run.py"), *args], cwd=stages.parent, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120, umask=umask)


def report(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.splitlines()[0])


def test_a_stage_runs_in_a_child_of_the_warm_process_as_it_would_in_its_own(stages):
    warm_env = environment(True, DVC_STAGE="features@r01")
    first = launch(stages, ["probe", "7", "x y"], warm_env)
    second = launch(stages, ["probe", "7", "x y"], {**warm_env, "DVC_STAGE": "features@r02"}, umask=0o077)
    cold = launch(stages, ["probe", "7", "x y"], environment(False, DVC_STAGE="features@r01"))
    assert first.returncode == second.returncode == cold.returncode == 7
    assert first.stderr == second.stderr == cold.stderr == "to stderr\n"
    warm_report, again, cold_report = report(first), report(second), report(cold)
    # The same script, arguments, directory, environment, stdin and umask as in its own process ...
    for key in ("argv", "cwd", "marker", "stdin", "path0", "main", "umask"):
        assert warm_report[key] == cold_report[key], key
    assert warm_report["argv"] == ["7", "x y"] and warm_report["stdin"] == "line from stdin"
    assert warm_report["cwd"] == str(stages.parent) and warm_report["path0"] == str(stages)
    assert (warm_report["stage"], again["stage"]) == ("features@r01", "features@r02")  # each stage its own
    assert (warm_report["umask"], again["umask"]) == (0o022, 0o077)
    # ... but started with torch imported, by the one warm process that serves both runs.
    assert warm_report["torch_loaded"] and again["torch_loaded"] and not cold_report["torch_loaded"]
    # Nothing of the project is: each stage imports the code as it is now.
    assert warm_report["project_loaded"] == again["project_loaded"] == []
    assert warm_report["parent"] == again["parent"] != warm_report["pid"]
    assert warm_report["pid"] != again["pid"]


@pytest.mark.parametrize("action", ["message", "raise", "0", "3"])
def test_a_stage_ends_the_launcher_as_it_would_end_python(stages, action):
    """Exit status and stderr equal those of `python stages/probe.py`: a SystemExit message in
    one line, a traceback from the script's own frames on."""
    plain = subprocess.run([sys.executable, str(stages / "probe.py"), action], cwd=stages.parent,
                           env=environment(False), input="", capture_output=True, text=True)
    warm = launch(stages, ["probe", action], environment(True), stdin="")
    cold = launch(stages, ["probe", action], environment(False), stdin="")
    assert warm.returncode == cold.returncode == plain.returncode
    assert warm.stderr == cold.stderr == plain.stderr
    if action == "raise":
        assert plain.stderr.splitlines()[2].startswith(f'  File "{stages / "probe.py"}"')
        assert "run.py" not in warm.stderr and plain.stderr.endswith("KeyError: 'missing'\n")


def wait_until_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_to_the_launcher_ends_the_stage(stages, sent):
    """Ctrl-C and termination are passed on to the stage, and a launcher killed outright takes its
    stage with it (the warm process sees it hang up)."""
    launcher = subprocess.Popen([sys.executable, str(stages / "run.py"), "probe", "sleep"], cwd=stages.parent,
                                env=environment(True), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage = json.loads(launcher.stdout.readline())
    launcher.send_signal(sent)
    status = launcher.wait(timeout=30)
    assert wait_until_gone(stage["pid"])
    assert status == {signal.SIGTERM: -signal.SIGTERM, signal.SIGINT: 130, signal.SIGKILL: -signal.SIGKILL}[sent]
    if sent == signal.SIGINT:  # the stage saw KeyboardInterrupt, as under Ctrl-C in its own process
        assert launcher.stderr.read().rstrip().endswith("KeyboardInterrupt")


def test_the_warm_process_leaves_once_idle(stages):
    launcher = stages / "run.py"
    launcher.write_text(launcher.read_text().replace("IDLE_SECONDS = 20.0", "IDLE_SECONDS = 1.0"))
    result = launch(stages, ["probe"], environment(True, marker=uuid.uuid4().hex))
    assert result.returncode == 0
    warm = report(result)["parent"]
    assert warm != os.getpid()
    assert wait_until_gone(warm, seconds=15)


def test_a_warm_process_that_cannot_start_is_reported_and_the_stage_runs_in_the_launcher(stages, tmp_path):
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise RuntimeError('no torch here')\n")
    env = environment(True, marker=uuid.uuid4().hex, PYTHONPATH=str(broken))
    result = launch(stages, ["probe", "4"], env)
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        "stages/run.py: the warm process could not start: RuntimeError: no torch here; running probe.py in this "
        "process", "to stderr"]
    assert not report(result)["torch_loaded"]


@pytest.mark.parametrize("args", [[], ["--help"], ["missing"], ["../probe"], ["run"]])
def test_a_stage_name_that_names_no_script_is_one_line(stages, args):
    result = launch(stages, args, environment(True))
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "usage: python stages/run.py STAGE" in result.stderr
    if args and not args[0].startswith("-"):
        assert result.stderr.startswith(f"stages/run.py: no stage script stages/{args[0]}.py")


def test_every_dvc_stage_runs_through_the_launcher():
    import yaml
    from tiny_repo import stage_command

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    commands = [stage.get("do", stage)["cmd"] for stage in stages.values()]
    assert commands  # stage_command refuses a command that does not go through stages/run.py
    assert all((REPO / stage_command(cmd)[0]).is_file() for cmd in commands)


def test_a_launcher_without_stdin_still_hands_the_stage_over(stages):
    """A closed standard stream (a launcher started with fd 0 closed) reaches the stage as
    /dev/null rather than sending the stage back to the launcher's own process."""
    result = subprocess.run([sys.executable, str(stages / "run.py"), "probe"], cwd=stages.parent,
                            env=environment(True), preexec_fn=lambda: os.close(0),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "to stderr\n"
    assert report(result)["torch_loaded"] and report(result)["stdin_is_devnull"]
