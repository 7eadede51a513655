"""kazoo's LockingQueue on drover's queue, for the interop tests.

usage: kazoo_queue.py HOSTS put PATH N [PRIORITY]   put N fresh UUIDs, print each
       kazoo_queue.py HOSTS consume PATH N          get + consume N entries, print each
Optional env KAZOO_AUTH=user:password adds digest auth.
"""
import os
import sys
import uuid

from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue


def main():
    hosts, cmd, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    auth = os.environ.get("KAZOO_AUTH")
    client = KazooClient(hosts=hosts, auth_data=[("digest", auth)] if auth else None)
    client.start(timeout=10)
    queue = LockingQueue(client, path)
    try:
        if cmd == "put":
            priority = int(sys.argv[5]) if len(sys.argv) > 5 else 100
            for _ in range(n):
                value = str(uuid.uuid4())
                queue.put(value.encode(), priority=priority)
                print(value, flush=True)
        elif cmd == "consume":
            for _ in range(n):
                value = queue.get(timeout=10)
                if value is None:
                    sys.exit("kazoo: queue empty after 10 s")
                if not queue.consume():
                    sys.exit("kazoo: consume failed")
                print(value.decode(), flush=True)
        else:
            sys.exit("unknown command " + cmd)
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
