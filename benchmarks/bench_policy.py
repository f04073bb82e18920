"""
Block-list lookups (RELIABILITY.md row 13): median time of a membership test in a full
50,000-entry list of IP addresses, beside a plain Python set of the same strings.

    python benchmarks/bench_policy.py
"""

from __future__ import annotations

import statistics
import time

from p2pnet_tx.policy import DEFAULT_BLOCK_LIST_SIZE, BlockList

LOOKUPS = 20_000


def address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def median_lookup(contains, keys: list[str]) -> float:
    samples = []
    for key in keys:
        start = time.perf_counter()
        contains(key)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    entries = [address(n) for n in range(DEFAULT_BLOCK_LIST_SIZE)]
    blocked = BlockList.of_ips(*entries)
    baseline = set(entries)
    keys = [address(n * 7 % (2 * DEFAULT_BLOCK_LIST_SIZE)) for n in range(LOOKUPS)]
    ours = median_lookup(blocked.__contains__, keys)
    plain = median_lookup(baseline.__contains__, keys)
    print(f"block list of {len(blocked)} IPs, {LOOKUPS} lookups (half hits)")
    print(f"  BlockList   median {ours * 1e6:7.2f} us  (target < 5 us)")
    print(f"  plain set   median {plain * 1e6:7.2f} us")
    print(f"  ratio       {ours / plain:7.1f} x  (BlockList normalises the address first)")


if __name__ == "__main__":
    main()
