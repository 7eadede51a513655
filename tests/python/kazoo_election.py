"""A kazoo Election contender, for the interop tests.

usage: kazoo_election.py HOSTS PATH IDENTIFIER
Prints "leader" when elected, then leads until stdin closes (or the process dies).
"""
import sys

from kazoo.client import KazooClient


def lead():
    print("leader", flush=True)
    sys.stdin.read()


def main():
    hosts, path, identifier = sys.argv[1], sys.argv[2], sys.argv[3]
    client = KazooClient(hosts=hosts, timeout=2.0)
    client.start(timeout=10)
    print("started", flush=True)
    client.Election(path, identifier).run(lead)
    client.stop()
    client.close()


if __name__ == "__main__":
    main()
