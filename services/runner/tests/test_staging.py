"""A job's datasets are checked again when it starts and copied from what was checked: a link swapped in
after Submit changes nothing, a folder's links are left out, and each running job has a uid of its own."""

import os
from pathlib import Path

import pytest

from airlab.dataset_access import DataPlaces
from airlab.errors import InvalidArgument
from airlab.v1 import runner_pb2
from airlab_runner.sandbox import JobIdentities
from airlab_runner.staging import DatasetStager, copy_checked


def mount(source, owner="ada"):
    return runner_pb2.DatasetMount(source=str(source), target="/data/table.csv", owner=owner)


def test_a_link_swapped_after_the_check_is_refused_or_copied_as_checked(open_folder, tmp_path):
    table = open_folder / "table.csv"
    table.write_text("a,b\n1,2\n")
    table.chmod(0o644)
    link = open_folder / "data.csv"
    link.symlink_to(table)
    stager = DatasetStager(DataPlaces())
    ((copy, target),) = stager.stage([mount(link)], tmp_path / "run1")
    assert Path(copy).read_text() == "a,b\n1,2\n" and target == "/data/table.csv"
    assert os.stat(copy).st_mode & 0o777 == 0o444
    # Swapped for the host's /proc after Submit accepted it: the job's start refuses it.
    link.unlink()
    link.symlink_to("/proc/self")
    with pytest.raises(InvalidArgument, match="system path"):
        stager.stage([mount(link)], tmp_path / "run2")
    # A folder on the way replaced by a link between the check and the open: refused, not followed.
    folder = open_folder / "tables"
    folder.mkdir(mode=0o755)
    (folder / "t.csv").write_text("x\n")
    (folder / "t.csv").chmod(0o644)
    os.rename(folder, open_folder / "real")
    folder.symlink_to(open_folder / "real")
    with pytest.raises(InvalidArgument, match="changed since it was checked"):
        copy_checked(str(folder / "t.csv"), tmp_path / "copy.csv", "f", host=True)


def test_a_folder_is_copied_without_its_links(open_folder, tmp_path):
    images = open_folder / "pets"
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "1.png").write_bytes(b"png")
    (images / "cat" / "shadow.png").symlink_to("/etc/shadow")
    (images / "dog").symlink_to("/root")
    copy_checked(str(images), tmp_path / "pets", "f", host=False)
    copied = sorted(p.relative_to(tmp_path / "pets").as_posix() for p in (tmp_path / "pets").rglob("*"))
    assert copied == ["cat", "cat/1.png"]


def test_each_running_job_has_a_uid_of_its_own_that_no_host_account_has(monkeypatch):
    import airlab_runner.sandbox as sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    taken = {1_950_000_001}
    monkeypatch.setattr(sandbox, "_host_account", lambda uid: uid in taken)
    identities = JobIdentities((1_950_000_000, 1_950_000_002))
    leased = [identities.lease(f"j{n}") for n in range(2)]
    assert {uid for uid, _ in leased} == {1_950_000_000, 1_950_000_002}
    assert all(uid == gid for uid, gid in leased)
    with pytest.raises(sandbox.SandboxUnavailable, match="in use or a host account"):
        identities.lease("j3")
    identities.release(leased[0])
    assert identities.lease("j3") == leased[0]
    for bad in [(0, 10), (65_000, 70_000), (5000, 4000)]:
        with pytest.raises(ValueError, match="job uids"):
            JobIdentities(bad)
