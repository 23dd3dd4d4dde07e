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
    claim = slots.acquire(lease_seconds=1, meeting_uuid="m/1 with space==")
    [lease] = slots.view().leases
    assert lease.holder == claim and slots.extend(lease, lease_seconds=60)
    [extended] = slots.view().leases
    assert extended.deadline == lease.deadline + 59
    assert extended.meeting_uuid == "m/1 with space=="
    slots.release(lease.holder)
    assert not slots.extend(lease, lease_seconds=60)


def test_acquire_many_grants_what_is_free_and_says_what_is_left(stack: ProvisionedStack) -> None:
    slots = pool(stack, 12)
    first = slots.acquire_many(5, lease_seconds=60)
    assert len(set(first.claims)) == 5 and first.free_after == 7
    # More than is free: the refusal carries the count, and exactly the free ones are granted.
    second = slots.acquire_many(10, lease_seconds=60)
    assert len(second.claims) == 7 and second.free_after == 0
    assert not set(first.claims) & set(second.claims)
    full = slots.acquire_many(3, lease_seconds=60)
    assert full.claims == () and full.free_after == 0
    slots.release_many(second.claims[:4])
    slots.release_many([])  # nothing to free is not an error
    assert slots.view().in_use == 8
    assert len(slots.acquire_many(10, lease_seconds=60).claims) == 4


def test_acquire_many_grants_nothing_while_backing_off(
    stack: ProvisionedStack, clock: Clock
) -> None:
    slots = pool(stack, 10, clock)
    seconds = slots.back_off()
    assert slots.acquire_many(4, lease_seconds=60).claims == ()
    clock.now += seconds + 0.001
    assert len(slots.acquire_many(4, lease_seconds=60).claims) == 4


def test_concurrent_batch_acquires_never_exceed_the_limit(stack: ProvisionedStack) -> None:
    slots = pool(stack, 25)
    barrier = threading.Barrier(8)

    def grab(_: int) -> tuple[str, ...]:
        barrier.wait()
        return slots.acquire_many(7, lease_seconds=60).claims

    with ThreadPoolExecutor(max_workers=8) as executor:
        granted = [claim for claims in executor.map(grab, range(8)) for claim in claims]
    # 8 x 7 wanted, 25 exist: racers that lose retry for what is left, and nobody overshoots.
    assert len(granted) == len(set(granted)) <= 25
    assert slots.view().in_use == len(granted) >= 7
    # What the racers left is still grantable: no claim was lost in the race.
    assert len(slots.acquire_many(25, lease_seconds=60).claims) == 25 - len(granted)


def test_back_off_doubles_once_per_episode(stack: ProvisionedStack, clock: Clock) -> None:
    slots = pool(stack, 5, clock)
    first = slots.back_off()
    # More 429s from submissions already under way join the running back-off.
    clock.now += 1.0
    assert slots.back_off() == first - 1.0
    assert slots.back_off() == first - 1.0
    clock.now += first
    assert slots.back_off() == 2 * first  # the next episode doubles, once
