from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.aws_resources import ProvisionedStack
from services.core.slots import SlotPool


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pool(stack: ProvisionedStack, limit: int, clock: Clock | None = None) -> SlotPool:
    return SlotPool(stack.names.slots_table, limit, clock=clock or Clock())


def test_acquire_up_to_the_limit_then_refuse(stack: ProvisionedStack) -> None:
    slots = pool(stack, 2)
    first = slots.acquire(lease_seconds=60)
    second = slots.acquire(lease_seconds=60)
    assert first and second and first != second
    assert slots.acquire(lease_seconds=60) is None
    slots.release(first)
    assert slots.acquire(lease_seconds=60) is not None
    assert slots.view().in_use == 2


def test_claim_becomes_a_job_lease_without_changing_the_count(stack: ProvisionedStack) -> None:
    slots = pool(stack, 1)
    claim = slots.acquire(lease_seconds=60, meeting_uuid="m/1==")
    assert claim
    slots.convert_to_job(claim, "job-1", lease_seconds=3600, meeting_uuid="m/1==")
    view = slots.view()
    assert [(lease.job_id, lease.meeting_uuid) for lease in view.leases] == [("job-1", "m/1==")]
    assert slots.acquire(lease_seconds=60) is None
    slots.release_job("job-1")
    slots.release_job("job-1")  # a duplicate callback is harmless
    assert slots.view().in_use == 0


def test_concurrent_acquires_never_exceed_the_limit(stack: ProvisionedStack) -> None:
    slots = pool(stack, 3)
    barrier = threading.Barrier(12)

    def grab(_: int) -> str | None:
        barrier.wait()
        return slots.acquire(lease_seconds=60)

    with ThreadPoolExecutor(max_workers=12) as executor:
        got = [g for g in executor.map(grab, range(12)) if g]
    assert len(got) == 3
    assert slots.view().in_use == 3


def test_back_off_blocks_acquire_until_it_passes_and_doubles(
    stack: ProvisionedStack, clock: Clock
) -> None:
    slots = pool(stack, 5, clock)
    first = slots.back_off()
    assert slots.acquire(lease_seconds=60) is None
    clock.now += first + 0.001
    assert slots.acquire(lease_seconds=60) is not None
    assert slots.back_off() == first * 2


def test_extend_reports_a_lost_lease(stack: ProvisionedStack) -> None:
    slots = pool(stack, 1)
    claim = slots.acquire(lease_seconds=1)
    assert claim and slots.extend(claim, lease_seconds=60)
    slots.release(claim)
    assert not slots.extend(claim, lease_seconds=60)
