#!/usr/bin/env python3
"""The Planet-style baseline: fetch and parse every feed with feedparser on 16 threads, no
storage. Usage: planet_baseline.py URLS STATE [--conditional]

It always writes the ETag/Last-Modified it got to STATE; only with --conditional does it send
the ones already there (a reference for the warm case: a stateless Planet downloads and
parses every feed again). Prints one line: seconds, feeds, feeds that answered 304."""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import feedparser

def fetch(url, state):
    previous = state.get(url, {})
    d = feedparser.parse(url, etag=previous.get("etag"), modified=previous.get("modified"))
    return url, getattr(d, "status", 0), d.get("etag"), d.get("modified"), len(d.entries)

def main():
    urls = [line.strip() for line in open(sys.argv[1]) if line.strip()]
    state_file = sys.argv[2]
    state = {}
    if "--conditional" in sys.argv[3:]:
        try:
            state = json.load(open(state_file))
        except (OSError, ValueError):
            pass
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda u: fetch(u, state), urls))
    elapsed = time.perf_counter() - started
    json.dump({u: {"etag": e, "modified": m} for u, _, e, m, _ in results}, open(state_file, "w"))
    print(f"{elapsed:.3f} {len(urls)} {sum(1 for _, s, *_ in results if s == 304)}")

if __name__ == "__main__":
    main()
