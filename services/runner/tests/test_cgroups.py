"""The local sandbox's cgroup set-up written into a fake cgroup filesystem (plain files in a temporary
directory, named as such): limits and the cpuset of a pinned job, on v2 and on v1. The real v1 hierarchy
of this machine is exercised by test_cpu_pinning.py."""

from airlab_runner.sandbox import Limits
from airlab_runner.sandbox.cgroups import JobCgroup


def fake_v2(root):
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    return root


def fake_v1(root):
    for controller in ("memory", "cpu", "pids", "cpuset"):
        (root / controller).mkdir()
        (root / controller / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    return root


def test_v2_writes_the_limits_and_the_jobs_cores(tmp_path):
    root = fake_v2(tmp_path)
    cgroup = JobCgroup(
        "airlab", "j1", Limits(cpu_millis=2000, memory_mib=256, pids=64), root=root, cores=(2, 3)
    )
    cgroup.create()
    group = root / "airlab" / "j1"
    assert (group / "memory.max").read_text() == str(256 << 20)
    assert (group / "cpu.max").read_text() == "200000 100000"
    assert (group / "pids.max").read_text() == "64"
    assert (group / "cpuset.cpus").read_text() == "2,3"
    assert (root / "airlab" / "cgroup.subtree_control").read_text() == "+cpuset"
    assert cgroup.cpuset


def test_v2_without_cores_leaves_the_cpuset_alone(tmp_path):
    root = fake_v2(tmp_path)
    cgroup = JobCgroup("airlab", "j2", Limits(), root=root)
    cgroup.create()
    assert not (root / "airlab" / "j2" / "cpuset.cpus").exists() and not cgroup.cpuset


def test_v1_makes_a_cpuset_group_with_the_parents_memory_nodes(tmp_path):
    root = fake_v1(tmp_path)
    cgroup = JobCgroup("airlab", "j3", Limits(), root=root, cores=(1,))
    cgroup.create()
    parent, group = root / "cpuset" / "airlab", root / "cpuset" / "airlab" / "j3"
    assert (parent / "cpuset.cpus").read_text() == "0-3" and (parent / "cpuset.mems").read_text() == "0"
    assert (group / "cpuset.cpus").read_text() == "1" and (group / "cpuset.mems").read_text() == "0"
    assert group / "cgroup.procs" in cgroup.procs_files() and cgroup.cpuset
