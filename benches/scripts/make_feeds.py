#!/usr/bin/env python3
"""Writes N RSS feeds of ITEMS items each as static files: DIR/f/{i}.xml."""
import os
import random
import sys

# A made-up vocabulary: stories that differ like real ones do (a corpus of near-copies
# would make every new entry a candidate duplicate of every other).
def word(n):
    rng = random.Random(n)
    return "".join(rng.choice("abcdefghijklmnoprstuvwyz") for _ in range(3 + n % 7))

VOCABULARY = [word(n) for n in range(5000)]

def text(rng, words):
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))

def main():
    out, n, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(os.path.join(out, "f"), exist_ok=True)
    rng = random.Random(42)
    for i in range(n):
        entries = "".join(
            f"<item><title>Feed {i} story {j}: reading classes across the region</title>"
            f"<link>https://site{i}.example/{j}.html</link><guid>site{i}-{j}</guid>"
            f"<pubDate>Fri, 27 Nov 2026 {j % 24:02d}:{i % 60:02d}:00 +0000</pubDate>"
            f"<description>&lt;p&gt;{text(rng, 40)}&lt;/p&gt;</description></item>"
            for j in range(items)
        )
        with open(os.path.join(out, "f", f"{i}.xml"), "w") as f:
            f.write(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                    f"<title>Feed {i}</title><link>https://site{i}.example/</link>"
                    f"<description>d</description>{entries}</channel></rss>")

if __name__ == "__main__":
    main()
