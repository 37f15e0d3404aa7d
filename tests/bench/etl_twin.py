#!/usr/bin/env python3
"""Python asyncio twin of troupe's seed ETL pipeline, used as a benchmark baseline.

Mirrors the seed AsyncPipeline + StreamingPipeline.batch_stream without the
artificial sleeps: extract -> 8 concurrent sha256 transform workers (bounded
queues, maxsize 100) -> batches of 50 -> one JSON line per record in --out.

    python3 etl_twin.py --count N --out PATH
"""
import argparse
import asyncio
import hashlib
import json

WORKERS, QUEUE_SIZE, BATCH_SIZE = 8, 100, 50
DONE = object()  # end-of-stream sentinel


async def extract(n):
    for i in range(n):
        yield {"id": i, "value": f"raw_{i}"}


async def transform(inq, outq):
    while (rec := await inq.get()) is not DONE:
        body = hashlib.sha256(rec["value"].encode()).hexdigest()
        await outq.put({"seq": rec["id"], "key": "", "body": body, "attrs": {}})
    await outq.put(DONE)


async def batch_stream(q, size, producers):
    batch, finished = [], 0
    while finished < producers:
        if (rec := await q.get()) is DONE:
            finished += 1
            continue
        batch.append(rec)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def run(count, out):
    inq, outq = asyncio.Queue(QUEUE_SIZE), asyncio.Queue(QUEUE_SIZE)
    workers = [asyncio.create_task(transform(inq, outq)) for _ in range(WORKERS)]

    async def feed():
        async for rec in extract(count):
            await inq.put(rec)
        for _ in workers:
            await inq.put(DONE)

    feeder = asyncio.create_task(feed())
    with open(out, "w") as f:
        async for batch in batch_stream(outq, BATCH_SIZE, WORKERS):
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in batch)
    await asyncio.gather(feeder, *workers)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--out", default="/dev/stdout")
    args = ap.parse_args()
    asyncio.run(run(args.count, args.out))
