"""kazoo LockingQueue take+consume throughput, for the queue benchmark.

usage: kazoo_bench.py HOSTS PATH CONSUMERS ITEMS
Fills PATH with ITEMS entries, then CONSUMERS processes (one session each) get + consume
until the queue is empty. Prints one JSON line: {"consumers", "items", "seconds", "per_sec"}.
"""
import json
import multiprocessing as mp
import sys
import time

from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue


def consumer(hosts, path, start, counts, last, idx):
    client = KazooClient(hosts=hosts)
    client.start(timeout=10)
    queue = LockingQueue(client, path)
    start.wait()
    n = 0
    while True:
        value = queue.get(timeout=1)
        if value is None:
            break
        if queue.consume():
            n += 1
            last[idx] = time.monotonic()
    counts[idx] = n
    client.stop()
    client.close()


def main():
    hosts, path, consumers, items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = KazooClient(hosts=hosts)
    client.start(timeout=10)
    queue = LockingQueue(client, path)
    batch = [b"00000000-0000-4000-8000-000000000000"] * 500
    left = items
    while left > 0:
        queue.put_all(batch[: min(500, left)])
        left -= min(500, left)
    client.stop()
    client.close()

    start = mp.Event()
    counts = mp.Array("i", consumers)
    last = mp.Array("d", consumers)
    procs = [mp.Process(target=consumer, args=(hosts, path, start, counts, last, i)) for i in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every consumer connect before the clock starts
    t0 = time.monotonic()
    start.set()
    for p in procs:
        p.join()
    # consumers linger 1 s on the empty queue before they stop: the clock ends at the last consume
    seconds = max(last) - t0
    total = sum(counts)
    print(json.dumps({"consumers": consumers, "items": total, "seconds": seconds, "per_sec": total / seconds}))


if __name__ == "__main__":
    main()
