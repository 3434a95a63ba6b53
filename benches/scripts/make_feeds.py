#!/usr/bin/env python3
"""Writes N RSS feeds of ITEMS items each as static files: DIR/f/{i}.xml."""
import os
import sys

def main():
    out, n, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(os.path.join(out, "f"), exist_ok=True)
    for i in range(n):
        entries = "".join(
            f"<item><title>Feed {i} story {j}: reading classes across the region</title>"
            f"<link>https://site{i}.example/{j}.html</link><guid>site{i}-{j}</guid>"
            f"<pubDate>Fri, 27 Nov 2026 {j % 24:02d}:{i % 60:02d}:00 +0000</pubDate>"
            f"<description>&lt;p&gt;Story {j} of feed {i}: departments held reading classes, "
            f"studied texts number {i * 31 + j} in groups and reported results in their work.&lt;/p&gt;</description></item>"
            for j in range(items)
        )
        with open(os.path.join(out, "f", f"{i}.xml"), "w") as f:
            f.write(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                    f"<title>Feed {i}</title><link>https://site{i}.example/</link>"
                    f"<description>d</description>{entries}</channel></rss>")

if __name__ == "__main__":
    main()
