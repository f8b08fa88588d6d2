"""The CPU plan: which cores the local LLM server holds and which each experiment slot gets."""

import pytest

from airlab.cpus import THREAD_VARIABLES, CpuSettings, SlotCpus, pin_command, plan_cpus, whole_cpus


def plan(cores: int, *, local_llm: bool = True, **settings):
    return plan_cpus(CpuSettings(cores=list(range(cores)), **settings), local_llm=local_llm)


def test_two_cores_with_a_local_llm_give_it_one_and_experiments_the_other():
    split = plan(2)
    assert (split.llm, split.experiments) == ((0,), (1,))
    # Two slots share the one experiment core, each with one thread at normal priority.
    assert split.slot(0, 2) == split.slot(1, 2) == SlotCpus((1,), 1, idle_priority=False)


def test_a_larger_host_reserves_a_quarter_for_the_llm_and_splits_the_rest_evenly():
    big = plan(16)
    assert big.llm == (0, 1, 2, 3)
    assert [big.slot(i, 3).cores for i in range(3)] == [(4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)]


def test_no_local_llm_gives_every_core_to_experiments():
    alone = plan(4, local_llm=False)
    assert alone.llm == ()
    assert alone.slot(0, 1) == SlotCpus((0, 1, 2, 3), 4)


def test_an_explicit_count_wins_and_is_bounded_by_the_host():
    assert plan(4, llm_cores=2).llm == (0, 1)
    assert plan(4, llm_cores=0).llm == ()
    assert plan(2, llm_cores=8).llm == (0, 1)


def test_when_the_llm_holds_every_core_jobs_take_turns_with_it():
    turns = plan(2, llm_cores=2)
    assert turns.slot(0, 2) == SlotCpus((0,), 1, idle_priority=True)
    assert turns.slot(1, 2) == SlotCpus((1,), 1, idle_priority=True)


def test_a_slot_outside_the_plan_is_refused():
    with pytest.raises(ValueError, match="slot 2 of 2"):
        plan(2).slot(2, 2)


def test_threads_are_capped_by_the_cpu_limit_and_sized_in_every_library():
    slot = SlotCpus((0, 1, 2, 3), 4).capped(1500)
    assert slot.threads == 2 and slot.cores == (0, 1, 2, 3)
    assert slot.env() == dict.fromkeys(THREAD_VARIABLES, "2")
    assert {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOKY_MAX_CPU_COUNT"} <= set(slot.env())
    assert whole_cpus(100) == 1 and whole_cpus(2000) == 2 and whole_cpus(2001) == 3


def test_the_pin_prefix_sets_affinity_and_idle_priority_before_the_program_starts():
    assert pin_command((1,)) == ["taskset", "--cpu-list", "1"]
    assert pin_command((0, 1), idle_priority=True) == ["taskset", "--cpu-list", "0,1", "chrt", "--idle", "0"]
