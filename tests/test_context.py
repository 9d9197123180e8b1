"""One current transaction and span per execution context: threads, asyncio tasks, generators."""

import asyncio
import contextvars
import threading

from conftest import exported

import oxapm


def test_threads_start_without_the_callers_transaction(client):
    client.begin_transaction("request")
    seen = {}

    def worker():
        seen["transaction"] = oxapm.get_transaction_id()
        with oxapm.capture_span("in-thread") as span:
            seen["span"] = span

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    client.end_transaction("t")
    assert seen == {"transaction": None, "span": None}
    assert exported(client).spans == []


def test_a_context_copied_into_a_thread_carries_the_transaction(client):
    transaction = client.begin_transaction("request")
    ctx = contextvars.copy_context()
    ids = []

    def worker():
        with oxapm.capture_span("copied") as span:
            ids.append((oxapm.get_transaction_id(), span.parent_id))

    thread = threading.Thread(target=ctx.run, args=(worker,))
    thread.start()
    thread.join()
    client.end_transaction("t")
    assert ids == [(transaction.id, transaction.id)]
    assert exported(client).spans[0]["name"] == "copied"


def test_concurrent_thread_transactions_do_not_mix(client):
    barrier = threading.Barrier(8)
    errors = []

    def request(n):
        try:
            transaction = client.begin_transaction("request")
            barrier.wait()
            for i in range(20):
                with oxapm.capture_span("span-%d-%d" % (n, i)):
                    assert oxapm.get_transaction_id() == transaction.id
            client.end_transaction("req-%d" % n)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = exported(client)
    by_id = {t["id"]: t["name"] for t in events.transactions}
    assert len(by_id) == 8
    for span in events.spans:
        n = span["name"].split("-")[1]
        assert by_id[span["transaction_id"]] == "req-%s" % n
    assert all(t["span_count"]["started"] == 20 for t in events.transactions)


def test_asyncio_tasks_inherit_at_creation_and_stay_apart(client):
    async def handler(n):
        transaction = client.begin_transaction("request")
        async with oxapm.async_capture_span("outer-%d" % n) as outer:

            async def child():
                # A task created inside the span sees it as its parent.
                with oxapm.capture_span("child-%d" % n) as span:
                    await asyncio.sleep(0)
                    return span.parent_id, oxapm.get_transaction_id()

            parent_id, transaction_id = await asyncio.create_task(child())
            assert parent_id == outer.id and transaction_id == transaction.id
            await asyncio.sleep(0.001 * (n % 3))
            assert oxapm.get_span_id() == outer.id
        client.end_transaction("req-%d" % n)

    async def main():
        await asyncio.gather(*(asyncio.create_task(handler(n)) for n in range(20)))

    asyncio.run(main())
    events = exported(client)
    names = {t["id"]: t["name"] for t in events.transactions}
    assert len(names) == 20
    for span in events.spans:
        assert names[span["transaction_id"]].split("-")[1] == span["name"].split("-")[1]


def test_generator_spans_do_not_leak_into_the_consumer(client):
    client.begin_transaction("job")

    def produce():
        with oxapm.capture_span("producing"):
            yield 1
            yield 2

    gen = produce()
    values = []
    for value in gen:
        values.append(value)
    assert values == [1, 2]
    assert oxapm.get_span_id() is None
    with oxapm.capture_span("after") as after:
        assert after.parent_id == oxapm.get_transaction_id()
    client.end_transaction("t")
    names = sorted(s["name"] for s in exported(client).spans)
    assert names == ["after", "producing"]


def test_generator_finished_in_another_context_restores_cleanly(client):
    client.begin_transaction("job")

    def produce():
        with oxapm.capture_span("gen"):
            yield "first"
            yield "second"

    gen = produce()
    assert next(gen) == "first"
    # Resume it in a copied context: the span's token belongs to the original one.
    ctx = contextvars.copy_context()
    assert ctx.run(next, gen) == "second"
    ctx.run(lambda: list(gen))
    with oxapm.capture_span("still-works") as span:
        assert span is not None
    client.end_transaction("t")
    assert sorted(s["name"] for s in exported(client).spans) == ["gen", "still-works"]
