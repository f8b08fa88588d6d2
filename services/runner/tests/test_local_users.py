"""The identity boundary between a running job and the other users of its host, attacked for real: while
a job runs, a process of another uid (the host's `nobody`, a login user, the uid another job would get)
tries to read the job's files and environment through /proc, forge its result.json and kill it. Each
attempt is refused by the kernel, and the job ends with its own result (the first attack report found
all three possible when jobs ran as `nobody`)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from airlab.settings import RunnerSettings
from airlab.v1 import runner_pb2

from .conftest import docker_env, needs_sandbox, spec

pytestmark = needs_sandbox

# The job leaves a secret in its work dir and its environment, then waits (up to 60 s) for the test to
# let it end; it then writes its own result.
VICTIM = b"""
import json, os, pathlib, time
pathlib.Path("secret.txt").write_text("the-jobs-own-secret")
print("ready", flush=True)
for _ in range(600):
    if pathlib.Path("release").exists():
        break
    time.sleep(0.1)
json.dump({"metrics": {"accuracy": 0.25}, "seed": 0, "duration_seconds": 1}, open("result.json", "w"))
"""

# What another user tries, in the shell (nothing of the lab's Python needed): each line says whether the
# kernel let it through.
ATTACK = r"""
pid=$1; inside=$2; workdir=$3
forged='{"metrics": {"accuracy": 1.0}, "seed": 0, "duration_seconds": 1}'
for path in "/proc/$pid/root$inside/secret.txt" "/proc/$pid/cwd/secret.txt" "/proc/$pid/environ" \
            "$workdir/secret.txt"; do
  if cat "$path" >/dev/null 2>&1; then echo "READ $path"; else echo "refused $path"; fi
done
if ls "/proc/$pid/root/" >/dev/null 2>&1; then echo "LISTED /proc/$pid/root"; else echo "refused ls"; fi
if echo "$forged" > "$workdir/result.json" 2>/dev/null
then echo "FORGED"; else echo "refused forge"; fi
if kill -9 "$pid" 2>/dev/null; then echo "KILLED"; else echo "refused kill"; fi
"""


@pytest.fixture
def runner_env(tmp_path, backend, request):
    env = {"AIRLAB_WORKSPACE": str(tmp_path / "workspace"), "AIRLAB_RUNNER__HOST": "test-host"}
    if backend == "docker":
        env.update(docker_env(request.getfixturevalue("docker_image")))
    return env


def job_processes() -> dict[int, int]:
    """pid -> uid of every process whose uid lies in the runner's job range."""
    first, last = RunnerSettings().job_uids
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if first <= uid <= last:
            found[int(entry.name)] = uid
    return found


def wait_for_victim(work_root: Path, timeout: float = 60) -> tuple[int, int, Path]:
    """The running job's python process: (pid, uid, its work dir on the host)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secrets = list(work_root.glob("*/**/secret.txt"))
        for pid, uid in job_processes().items():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"main.py" in cmdline and secrets:
                return pid, uid, secrets[0].parent
        time.sleep(0.2)
    raise AssertionError(f"no running job with its secret under {work_root}")


@pytest.mark.parametrize("attacker", ["nobody", "login-user", "another-job"])
def test_another_user_of_the_host_cannot_read_forge_or_kill_a_running_job(
    stub, runner_env, backend, attacker
):
    job_spec = spec(VICTIM, f"victim-{attacker}", wall_seconds=90)
    job_spec.backend = backend
    job = stub.Submit(runner_pb2.SubmitRequest(spec=job_spec))
    work_root = Path(runner_env["AIRLAB_WORKSPACE"]) / "runs"
    pid, uid, workdir = wait_for_victim(work_root)
    first, last = RunnerSettings().job_uids
    other_job = last if uid != last else first
    attacker_uid = {"nobody": 65534, "login-user": 1000, "another-job": other_job}[attacker]
    assert attacker_uid != uid
    inside = os.readlink(f"/proc/{pid}/cwd")  # the work dir as the job sees it
    # As root the same paths lead to the secret: the refusals below are the kernel's, not wrong paths.
    assert Path(f"/proc/{pid}/root{inside}/secret.txt").read_text() == "the-jobs-own-secret"

    attempt = subprocess.run(
        ["/bin/sh", "-c", ATTACK, "attack", str(pid), inside, str(workdir)],
        user=attacker_uid,
        group=attacker_uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    said = attempt.stdout
    assert said.count("refused") == 7, said + attempt.stderr
    assert "READ" not in said and "LISTED" not in said and "FORGED" not in said and "KILLED" not in said

    (workdir / "release").touch()
    final = None
    for update in stub.WatchJob(runner_pb2.WatchJobRequest(id=job.id), timeout=90):
        if update.WhichOneof("update") == "final":
            final = update.final
    assert final is not None and final.state == runner_pb2.JOB_STATE_SUCCEEDED, final
    (stored,) = (Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts").glob(f"**/victim-{attacker}/result.json")
    assert json.loads(stored.read_text())["metrics"] == {"accuracy": 0.25}
