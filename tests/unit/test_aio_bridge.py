"""The greenlet bridge: sync code awaiting on the event loop through ``wait_for``."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time

import pytest

from framework.aio import BridgeError, in_bridge, run_in_greenlet, wait_for
from framework.pauses import pause


class Refused(Exception):
    pass


async def _answer(value: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return value


async def _refuse(message: str) -> int:
    await asyncio.sleep(0)
    raise Refused(message)


def _sum_of_answers(values: list[int]) -> int:
    """Sync code, as the store's is: each call 'blocks' on an awaitable."""
    return sum(wait_for(_answer(value)) for value in values)


def test_sync_code_gets_the_results_of_what_it_awaits() -> None:
    assert asyncio.run(run_in_greenlet(_sum_of_answers, [1, 2, 3])) == 6


def test_the_result_and_arguments_pass_through_unchanged() -> None:
    def echo(*args: object, **kwargs: object) -> tuple[object, ...]:
        return (args, kwargs)

    assert asyncio.run(run_in_greenlet(echo, 1, "two", three=3)) == ((1, "two"), {"three": 3})


def test_an_awaited_exception_is_raised_in_the_sync_code_where_it_waited() -> None:
    def catches() -> str:
        try:
            wait_for(_refuse("no"))
        except Refused as error:
            return f"caught {error}"
        return "not raised"

    assert asyncio.run(run_in_greenlet(catches)) == "caught no"


def test_an_exception_the_sync_code_lets_out_reaches_the_awaiting_task() -> None:
    def fails() -> int:
        wait_for(_answer(1))
        raise Refused("from sync code")

    async def main() -> None:
        with pytest.raises(Refused, match="from sync code"):
            await run_in_greenlet(fails)

    asyncio.run(main())


def test_an_awaited_exception_not_caught_by_the_sync_code_reaches_the_task() -> None:
    def lets_it_through() -> int:
        return wait_for(_refuse("through"))

    async def main() -> None:
        with pytest.raises(Refused, match="through"):
            await run_in_greenlet(lets_it_through)

    asyncio.run(main())


def test_wait_for_outside_a_bridge_is_refused_and_never_blocks() -> None:
    coroutine = _answer(1)
    with pytest.raises(BridgeError, match="run_in_greenlet"):
        wait_for(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED, "closed, not left unawaited"
    assert not in_bridge()


def test_wait_for_in_a_task_but_outside_a_bridge_is_refused() -> None:
    """Inside the loop itself, blocking on the loop would hang it: refused there too."""

    async def main() -> None:
        with pytest.raises(BridgeError):
            wait_for(asyncio.sleep(0))

    asyncio.run(main())


def test_wait_for_from_a_thread_started_inside_a_bridge_is_refused() -> None:
    """A thread has no way back to the loop's greenlet: refused, not a hang."""

    def starts_a_thread() -> list[str]:
        seen: list[str] = []

        def other() -> None:
            try:
                wait_for(asyncio.sleep(0))
            except BridgeError:
                seen.append("refused")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(5)
        return seen

    assert asyncio.run(run_in_greenlet(starts_a_thread)) == ["refused"]


def test_many_bridged_calls_interleave_on_one_thread() -> None:
    """200 calls each waiting 50 ms twice finish in about that time, not 200 times it."""
    order: list[tuple[int, str]] = []

    def step(number: int) -> int:
        order.append((number, "before"))
        wait_for(asyncio.sleep(0.05))
        order.append((number, "between"))
        value = wait_for(_answer(number, 0.05))
        order.append((number, "after"))
        return value * 2

    async def main() -> list[int]:
        return await asyncio.gather(*(run_in_greenlet(step, n) for n in range(200)))

    started = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert results == [n * 2 for n in range(200)]
    assert elapsed < 2.0, f"the calls ran one after another ({elapsed:.2f} s)"
    # Every call had started before the first one went on: they waited side by side.
    first_between = order.index((0, "between"))
    assert {number for number, stage in order[:first_between] if stage == "before"} == set(
        range(200)
    )


def test_pause_in_a_bridge_lets_the_loop_run_other_tasks() -> None:
    """The retry backoff's ``pause`` awaits: a ticker keeps ticking while a command waits."""
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(10):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    def waits() -> str:
        pause(0.2)
        return "done"

    async def main() -> str:
        ticking = asyncio.create_task(ticker())
        result = await run_in_greenlet(waits)
        await ticking
        return result

    assert asyncio.run(main()) == "done"
    assert len(ticks) == 10 and ticks[-1] - ticks[0] < 0.19, "the loop was blocked"


def test_pause_outside_a_bridge_sleeps_the_thread() -> None:
    started = time.perf_counter()
    pause(0.05)
    assert time.perf_counter() - started >= 0.05


def test_the_bridged_code_sees_the_callers_context_and_does_not_change_it() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    def reads_and_sets() -> str:
        seen = request_id.get()
        request_id.set("changed inside")
        wait_for(asyncio.sleep(0))
        return seen

    async def main() -> tuple[str, str]:
        request_id.set("r-1")
        seen = await run_in_greenlet(reads_and_sets)
        return seen, request_id.get()

    assert asyncio.run(main()) == ("r-1", "r-1")


def test_cancelling_the_task_unwinds_the_sync_code() -> None:
    unwound: list[str] = []

    def long_wait() -> None:
        try:
            wait_for(asyncio.sleep(10))
        finally:
            unwound.append("finally ran")

    async def main() -> None:
        task = asyncio.create_task(run_in_greenlet(long_wait))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert unwound == ["finally ran"]


def test_in_bridge_tells_the_bridged_code_apart() -> None:
    assert asyncio.run(run_in_greenlet(in_bridge)) is True
