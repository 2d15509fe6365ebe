"""What verification finds wrong after a resize or a revert, and how it polls libvirt until things settle."""

from __future__ import annotations

import pytest

from collector.actions.changes import Change, StepChanges
from collector.actions.snapshot import DomainSnapshot
from collector.actions.verify import poll_until_settled, revert_problems, target_problems
from collector.errors import ConnectionFailedError, HypervisorError, VmNotFoundError
from core.plan import SizeSpec
from tests.helpers.snapshots import GIB, snapshot

LIVE = StepChanges(changes=(Change("memory_bytes", 8 * GIB, 4 * GIB, "live", "now"),))
TARGET = SizeSpec(4, 4 * GIB, "c1.2")


def test_a_vm_at_its_target_has_no_problems() -> None:
    after = snapshot(mem=4 * GIB, max_mem=8 * GIB)
    assert target_problems(after, snapshot(), TARGET, LIVE) == []


@pytest.mark.parametrize(("after", "problem"), [
    (snapshot(mem=4 * GIB, cfg_vcpus=2), "config vCPUs 2 != 4"),
    (snapshot(mem=4 * GIB, labels={"machine_type": "g1.1"}), "label machine_type 'g1.1' != 'c1.2'"),
    (snapshot(mem=8 * GIB, cfg_mem=4 * GIB), f"live memory {8 * GIB} != {4 * GIB}"),
    (snapshot(running=False, mem=4 * GIB), "state shutoff, expected running"),
])
def test_each_difference_from_the_target_is_named(after: DomainSnapshot, problem: str) -> None:
    assert target_problems(after, snapshot(), TARGET, LIVE) == [problem]


def test_a_hot_plug_upsize_is_checked_live_too() -> None:
    upsize = StepChanges(changes=(Change("vcpus", 4, 6, "live", "now"),))
    after = snapshot(vcpus=4, cfg_vcpus=6, mem=4 * GIB)
    assert target_problems(after, snapshot(), SizeSpec(6, 4 * GIB, "c1.2"), upsize) == [
        "live vCPUs 4 != 6 after hot-plug"]


def test_a_revert_is_compared_with_the_saved_state() -> None:
    saved = snapshot()
    assert revert_problems(snapshot(), saved) == []
    assert revert_problems(snapshot(labels={}), saved) == ["labels differ from the saved ones"]
    assert revert_problems(snapshot(running=False), saved) == ["state shutoff != saved running"]


def test_polling_retries_what_it_is_told_to_and_returns_the_first_settled_read() -> None:
    reads: list[DomainSnapshot | HypervisorError] = [
        ConnectionFailedError("libvirtd restarting"), snapshot(mem=6 * GIB), snapshot(mem=4 * GIB)]

    def read() -> DomainSnapshot:
        item = reads.pop(0)
        if isinstance(item, HypervisorError):
            raise item
        return item

    snap, problems = poll_until_settled(read, lambda s: [] if s.live_memory_bytes == 4 * GIB else ["not yet"],
                                        timeout_s=30.0, poll_s=0.0,
                                        retry=lambda exc: isinstance(exc, ConnectionFailedError))
    assert (snap.live_memory_bytes, problems, reads) == (4 * GIB, [], [])


def test_polling_raises_what_it_may_not_retry_and_stops_at_the_timeout() -> None:
    def gone() -> DomainSnapshot:
        raise VmNotFoundError("undefined")

    with pytest.raises(VmNotFoundError):
        poll_until_settled(gone, lambda s: [], timeout_s=30.0, poll_s=0.0, retry=lambda exc: False)
    snap, problems = poll_until_settled(snapshot, lambda s: ["never settles"], timeout_s=0.0, poll_s=0.0,
                                        retry=lambda exc: False)
    assert problems == ["never settles"] and snap == snapshot()
