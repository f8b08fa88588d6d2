"""Hostile jobs through the runner service, on the local sandbox and on the docker sandbox (a real
dockerd): each is contained and reported."""

import ast
import os
import socket
import sys
from pathlib import Path

import grpc
import pytest

from airlab.settings import RunnerSettings
from airlab.v1 import runner_pb2

from .conftest import docker_env, needs_sandbox, run_to_end, spec

FAILED = runner_pb2.JOB_STATE_FAILED
SUCCEEDED = runner_pb2.JOB_STATE_SUCCEEDED
SECRET = "s3cr3t-value-the-job-must-not-see"

HOSTILE = {
    "network": (
        b"import os, socket\nfor host in ('127.0.0.1', '1.1.1.1'):\n    try:\n"
        b"        socket.create_connection((host, int(os.environ['HOST_PORT'])), timeout=3)\n"
        b"        print('CONNECTED', host)\n"
        b"    except OSError as e:\n        print('blocked', host, e)\nraise SystemExit(3)",
        {},
        lambda job, log: job.state == FAILED and "CONNECTED" not in log and "Network is unreachable" in log,
    ),
    "secret": (
        b"import os, json\nprint(json.dumps(dict(os.environ)))\nprint(open('/proc/1/environ').read())",
        {},
        lambda job, log: SECRET not in log and "AIRLAB_" not in log,
    ),
    "write-outside": (
        b"import os\nfor path in ('/etc/owned', '/tmp/../usr/owned', os.path.expanduser('~/../owned')):\n"
        b"    try:\n        open(path, 'w').write('x'); print('WROTE', path)\n    except OSError as e:\n"
        b"        print('refused', path, e.errno)\nopen('/airlab-owned', 'w')",
        {},
        lambda job, log: job.state == FAILED and "WROTE /etc" not in log and "WROTE /tmp/../usr" not in log,
    ),
    "memory": (
        b"x = bytearray(1024 * 1024 * 1024)\nprint('ALLOCATED')",
        {"memory_mib": 256},
        # Killed (137: SIGKILL), not exited 0 as the job's record used to say.
        lambda job, log: (
            job.state == FAILED
            and "memory limit" in job.reason
            and "ALLOCATED" not in log
            and job.HasField("exit_code")
            and job.exit_code == 137
        ),
    ),
    # Many files, each under the per-file cap, together past the job's disk quota (runner_env: 8 MiB).
    "disk-filler": (
        b"import os, time\nos.makedirs('junk', exist_ok=True)\nfor i in range(64):\n"
        b"    open(f'junk/{i}.bin', 'wb').write(os.urandom(1 << 20))\n    time.sleep(0.05)\n"
        b"print('FILLED')",
        {},
        lambda job, log: job.state == FAILED and "disk quota of 8 MiB" in job.reason and "FILLED" not in log,
    ),
    "fork-bomb": (
        b"import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"wall_seconds": 4},
        lambda job, log: job.state == FAILED,
    ),
    "infinite-loop": (
        b"while True:\n    pass",
        {"wall_seconds": 2},
        lambda job, log: (
            job.state == FAILED and "wall-clock limit of 2 s" in job.reason and not job.HasField("exit_code")
        ),
    ),
    "stdout-flood": (
        b"import sys, json\nline = 'x' * 99 + '\\n'\nfor _ in range(1_000_000):\n    sys.stdout.write(line)\n"
        b"json.dump({'metrics': {'a': 1}, 'seed': 0, 'duration_seconds': 1}, open('result.json', 'w'))",
        {},
        lambda job, log: job.state == SUCCEEDED and len(log) <= 2 * 1024 * 1024,
    ),
    # A failure's text reaches events, reports and LLM prompts: the data values an exception quotes do not.
    "data-in-error": (
        b"cells = ['1.5', 'a-cell-of-the-users-data']\nprint(sum(float(cell) for cell in cells))",
        {},
        lambda job, log: (
            job.state == FAILED
            and "could not convert string to float" in job.reason
            and "a-cell-of-the-users-data" not in job.reason
        ),
    ),
    "invalid-result": (
        b"open('result.json', 'w').write('{\"metrics\": {\"acc\": \"high\"}}')",
        {},
        lambda job, log: (
            job.state == FAILED and "result.json" in job.reason and "finite number" in job.reason
        ),
    ),
}


pytestmark = needs_sandbox  # the runner serves both backends and always checks its local sandbox


@pytest.fixture
def runner_env(tmp_path, backend, request):
    env = {
        "AIRLAB_WORKSPACE": str(tmp_path / "workspace"),
        "AIRLAB_RUNNER__MAX_LOG_MIB": "2",
        "AIRLAB_RUNNER__MAX_OUTPUT_MIB": "3",
        "AIRLAB_RUNNER__MAX_RESEARCH_STORAGE_MIB": "4",
        "AIRLAB_RUNNER__MAX_CONCURRENT": "4",
        "AIRLAB_RUNNER__MAX_JOB_DISK_MIB": "8",
        # A secret in the runner's own environment: no job may see it.
        "AIRLAB_S3_SECRET_KEY": SECRET,
        "MY_API_TOKEN": SECRET,
    }
    if backend == "docker":
        env.update(docker_env(request.getfixturevalue("docker_image")))
    return env


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_job_is_contained_and_reported(stub, backend, name):
    code, resources, contained = HOSTILE[name]
    # A server on the host's loopback that the network job tries to reach: it must get no connection.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    job_spec = spec(code, f"hostile-{name}", wall_seconds=resources.get("wall_seconds", 20),
                    memory_mib=resources.get("memory_mib", 0))  # fmt: skip
    job_spec.env["HOST_PORT"] = str(listener.getsockname()[1])
    job_spec.backend = backend
    job, lines, _ = run_to_end(stub, job_spec)
    log = "\n".join(lines)
    assert contained(job, log), (runner_pb2.JobState.Name(job.state), job.reason, log[-2000:])
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert job.finished_at.seconds > 0
    assert (
        not os.path.exists("/etc/owned")
        and not os.path.exists("/usr/owned")
        and not os.path.exists("/airlab-owned")
    )


# -- the host's files ----------------------------------------------------------------------------------------

READ_HOST = b"""
import os
for path in ('/etc/shadow', '/root', '/data/world.csv'):
    try:
        print('READ', path, sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read().strip())
    except OSError as e:
        print('refused', path, e.errno)
print('uid', os.getuid(), os.stat('.').st_uid, os.stat('.').st_mode & 0o777)
"""


def test_root_only_and_system_files_cannot_be_mounted(stub, backend, open_folder):
    """What a job may read is checked when the spec arrives: system paths, files only their owner may
    read, world-readable files in folders only their owner may enter, and symlinks to any of them, are
    refused naming the field."""
    secret = open_folder / "secret.csv"
    secret.write_text(f"label\n{SECRET}\n")
    secret.chmod(0o600)
    closed = open_folder / "closed"
    closed.mkdir(mode=0o700)
    readable_inside = closed / "world.csv"
    readable_inside.write_text(f"label\n{SECRET}\n")
    readable_inside.chmod(0o644)
    link = open_folder / "innocent.csv"
    link.symlink_to(secret)
    system_link = open_folder / "shadow.csv"
    system_link.symlink_to("/etc/shadow")
    for source, why in [
        ("/etc/shadow", "system path"),
        ("/root", "system path"),
        (str(secret), "not readable by every user"),
        (str(link), "not readable by every user"),
        (str(readable_inside), f"the folder {closed} is closed to other users"),
        (str(system_link), "system path"),
    ]:
        job_spec = spec(READ_HOST, f"mount-{abs(hash(source))}")
        job_spec.backend = backend
        job_spec.datasets.add(source=source, target="/data/x.csv")
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(runner_pb2.SubmitRequest(spec=job_spec))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, source
        assert "spec.datasets[0].source" in refused.value.details() and why in refused.value.details()


def test_a_job_reads_no_more_of_the_host_than_an_unprivileged_user(stub, backend, open_folder):
    """Even a runner running as root gives its jobs no more than any user has: /etc/shadow and /root are
    out of reach, a world-readable dataset is there. The job runs as a uid of its own (not nobody, not a
    host account), which owns its work dir, 0700."""
    world = open_folder / "world.csv"
    world.write_text("a,b\n1,2\n")
    world.chmod(0o644)
    job_spec = spec(READ_HOST, "read-host")
    job_spec.backend = backend
    job_spec.datasets.add(source=str(world), target="/data/world.csv")
    _, lines, _ = run_to_end(stub, job_spec)
    log = "\n".join(lines)
    assert "READ /data/world.csv a,b" in log, log
    assert "READ /etc/shadow" not in log, log
    # /root holds nothing but the way to the Python that runs experiments, when that lives there (pyenv).
    python_dirs = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.executable)}
    visible = {
        Path("/root") / part for p in python_dirs if p.is_relative_to("/root") for part in p.parts[2:3]
    }
    for line in lines:
        if line.startswith("READ /root "):
            assert {
                Path("/root") / name for name in ast.literal_eval(line[len("READ /root ") :])
            } <= visible, log
    (uid_line,) = [line for line in lines if line.startswith("uid ")]
    uid, work_uid, work_mode = (int(word) for word in uid_line.split()[1:])
    first, last = RunnerSettings().job_uids
    assert first <= uid <= last and work_uid == uid and work_mode == 0o700, uid_line


def test_a_research_reads_its_own_users_uploads_and_nothing_else_of_the_workspace(stub, backend, tmp_path):
    """The workspace's runs, logs and artifacts are never mounted; an upload, private to its user (0600 in
    0700 folders), reaches a job of that user's research through the runner's copy, and no other's."""
    workspace = tmp_path / "workspace"
    upload = workspace / "artifacts" / "uploads" / "ada" / "d1" / "table.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("a,b\n1,2\n")
    upload.chmod(0o600)
    for folder in (upload.parent, upload.parent.parent):
        folder.chmod(0o700)
    (workspace / "logs").mkdir(exist_ok=True)
    (workspace / "logs" / "runner.log").write_text("the runner's log")
    read = b"print('READ', open('/data/x.csv').read().strip())"
    for source, owner, why in [
        (str(upload), "bob", "another user's upload"),
        (str(upload), "", "another user's upload"),
        (str(workspace / "logs" / "runner.log"), "ada", "inside the lab's workspace"),
        (str(workspace / "runs"), "ada", "inside the lab's workspace"),
    ]:
        job_spec = spec(read, f"ws-{abs(hash((source, owner)))}")
        job_spec.backend = backend
        job_spec.datasets.add(source=source, target="/data/x.csv", owner=owner)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(runner_pb2.SubmitRequest(spec=job_spec))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, source
        assert why in refused.value.details(), refused.value.details()
    job_spec = spec(read, "own-upload")
    job_spec.backend = backend
    job_spec.datasets.add(source=str(upload), target="/data/x.csv", owner="ada")
    job, lines, _ = run_to_end(stub, job_spec)
    assert "READ a,b" in lines and "1,2" in lines, (job.reason, lines)


# -- what jobs may keep -----------------------------------------------------------------------------------

WRITE_MODELS = b"""
import json, os
os.makedirs('models', exist_ok=True)
for i in range(int(os.environ['FILES'])):
    open(f'models/part{i}.bin', 'wb').write(os.urandom(1 << 20))
json.dump({'metrics': {'a': 1}, 'seed': 0, 'duration_seconds': 1}, open('result.json', 'w'))
"""


def test_output_caps_per_job_and_per_research_are_enforced_and_reported(stub, backend):
    """The runner here keeps at most 3 MiB of models per job and 4 MiB per research (runner_env): a job
    over its cap fails saying so; a research whose jobs together pass its quota has the next job's
    models refused, and another research is not affected."""

    def run(experiment: str, files: int, research: str = "rquota"):
        job_spec = spec(WRITE_MODELS, experiment, research=research)
        job_spec.env["FILES"] = str(files)
        job_spec.backend = backend
        job, _, _ = run_to_end(stub, job_spec)
        return job

    flood = run("flood", 4)
    assert flood.state == FAILED and "hold 4.0 MiB, more than the 3.0 MiB one job may keep" in flood.reason
    assert run("first", 3).state == SUCCEEDED  # 3 of the research's 4 MiB
    over = run("second", 2)
    assert over.state == FAILED
    assert "research rquota has stored 3.0 MiB of its 4.0 MiB storage quota" in over.reason
    assert run("other", 2, research="rother").state == SUCCEEDED
