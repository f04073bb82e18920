#!/usr/bin/env python
"""
Encode and decode rates of the two wire codecs, beside a plain baseline measured in the same run.

    python benchmarks/bench_codec.py            # about 30 s on 2 cores
    python benchmarks/bench_codec.py --quick    # 3 rounds, for a smoke test
    python benchmarks/bench_codec.py --profile "decode dotnet 1MiB"

Cases:

- small: C{PureMessagePacket("Ping from 10.0.0.7")} frames (about 140 bytes), a stream of 10,000
  of them fed to a decoder in 64 KiB chunks;
- small fresh: as a sender makes them, C{codec.encode(PureMessagePacket(text,
  source_origin_identifier=...))} with the current time in each packet, against C{json.dumps}
  of the same envelope with a fresh C{datetime.now(timezone.utc).isoformat()};
- 1MiB: C{DataTransmissionPacket} frames with a 1 MiB payload (about 1.4 MB once base64
  encoded), a stream of 8 of them fed in 64 KiB chunks.

The baseline is what a plain implementation does: C{json.dumps} plus a 4-byte length prefix to
encode (plus C{base64.b64encode} of the payload for 1MiB); to decode, the buffering of Twisted's
C{IntNStringReceiver} (append each read to the unprocessed bytes, split off every complete
frame) and C{json.loads} of each body (plus C{base64.b64decode} of C{Data} for 1MiB).  For 1MiB
a second baseline, which keeps reads in a list and joins them once per frame (as our p2pnet
decoder does), is shown too, so the gain from buffering can be told from the rest.

Ours and the baseline run in alternation, several rounds each (time.perf_counter), so both see
the same machine: rates are the best round, ratios (ours / baseline, in frames per second) the
median of the per-round ratios.  C{--json} also times our codecs with the stdlib json module
in place of orjson.  The script prints the decode targets (see docs/performance.md) and exits 1
when one is missed.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import twisted

import p2pnet_tx
import p2pnet_tx.wire as wire
from p2pnet_tx import DataPayloadFormat, DataTransmissionPacket, PureMessagePacket, get_codec

CHUNK = 64 * 1024
SMALL_FRAMES = 10_000
LARGE_FRAMES = 8
LARGE_PAYLOAD = 1024 * 1024
LARGE_MAX_FRAME = 4 * 1024 * 1024  # a 1 MiB payload is ~1.4 MB of base64 JSON
T0 = datetime(2026, 11, 23, 18, 56, 42, 123456, tzinfo=timezone.utc)
MB = 1e6


# -- The baseline -------------------------------------------------------------------------------


def _base_fields(packet: Any) -> dict[str, Any]:
    return {
        "SourceOriginIdentifier": packet.source_origin_identifier,
        "SourceOriginTime": "2026-11-23T18:56:42.123456Z",
    }


def baseline_small_object(packet: PureMessagePacket) -> dict[str, Any]:
    return {"type": "Message", "packet": {"Message": packet.message, **_base_fields(packet)}}


def baseline_encode_small(objects: list[dict[str, Any]]) -> list[bytes]:
    frames = []
    for obj in objects:
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        frames.append(len(body).to_bytes(4, "big") + body)
    return frames


def baseline_encode_fresh(count: int) -> list[bytes]:
    """What a plain sender does per message: a fresh time, json.dumps, a length prefix."""
    frames = []
    for _ in range(count):
        obj = {"type": "Message", "packet": {
            "Message": "Ping from 10.0.0.7", "SourceOriginIdentifier": "peer_one",
            "SourceOriginTime": datetime.now(timezone.utc).isoformat()}}
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        frames.append(len(body).to_bytes(4, "big") + body)
    return frames


def encode_fresh(codec: Any, count: int) -> list[bytes]:
    """What our sender does per message: a new packet (stamped now), then encode it."""
    encode = codec.encode
    return [
        encode(PureMessagePacket("Ping from 10.0.0.7", source_origin_identifier="peer_one"))
        for _ in range(count)
    ]


def baseline_encode_large(payloads: list[bytes]) -> list[bytes]:
    frames = []
    for payload in payloads:
        obj = {
            "type": "DataTransmit",
            "packet": {
                "Data": base64.b64encode(payload).decode("ascii"),
                "DataType": 2,
                "SourceOriginIdentifier": "peer_one",
                "SourceOriginTime": "2026-11-23T18:56:42.123456Z",
            },
        }
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        frames.append(len(body).to_bytes(4, "big") + body)
    return frames


class BaselineDecoder:
    """Twisted's IntNStringReceiver buffering, then json.loads (and b64decode) of each body."""

    def __init__(self, with_payload: bool) -> None:
        self._unprocessed = b""
        self._with_payload = with_payload

    def feed(self, data: bytes) -> list[Any]:
        alldata = self._unprocessed + data
        offset = 0
        out = []
        while len(alldata) >= offset + 4:
            start = offset + 4
            length = int.from_bytes(alldata[offset:start], "big")
            end = start + length
            if len(alldata) < end:
                break
            obj = json.loads(alldata[start:end])
            if self._with_payload:
                obj["packet"]["Data"] = base64.b64decode(obj["packet"]["Data"])
            out.append(obj)
            offset = end
        self._unprocessed = alldata[offset:]
        return out


class JoinOnceBaselineDecoder:
    """As L{BaselineDecoder}, but keeping reads in a list and joining them once per frame."""

    def __init__(self, with_payload: bool) -> None:
        self._chunks: list[bytes] = []
        self._held = 0
        self._needed = 4
        self._with_payload = with_payload

    def feed(self, data: bytes) -> list[Any]:
        if self._held + len(data) < self._needed:
            self._chunks.append(data)
            self._held += len(data)
            return []
        self._chunks.append(data)
        alldata = b"".join(self._chunks)
        offset = 0
        out = []
        while len(alldata) >= offset + 4:
            start = offset + 4
            end = start + int.from_bytes(alldata[offset:start], "big")
            if len(alldata) < end:
                self._needed = end - offset
                break
            obj = json.loads(alldata[start:end])
            if self._with_payload:
                obj["packet"]["Data"] = base64.b64decode(obj["packet"]["Data"])
            out.append(obj)
            offset = end
        else:
            self._needed = 4
        rest = alldata[offset:]
        self._chunks = [rest] if rest else []
        self._held = len(rest)
        return out


# -- Measuring ----------------------------------------------------------------------------------


def chunks_of(stream: bytes) -> list[bytes]:
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def _timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def compare(ours: Callable[[], Any], baseline: Callable[[], Any], rounds: int
            ) -> tuple[float, float, float]:
    """
    Time C{ours} and C{baseline} in alternation, C{rounds} times each (the order flips every
    round), so that both see the same machine; return the best time of each and the median of
    the per-round ratios baseline time / our time.
    """
    ours_times, base_times, ratios = [], [], []
    for i in range(rounds):
        if i % 2:
            ours_time, base_time = _timed(ours), _timed(baseline)
        else:
            base_time, ours_time = _timed(baseline), _timed(ours)
        ours_times.append(ours_time)
        base_times.append(base_time)
        ratios.append(base_time / ours_time)
    return min(ours_times), min(base_times), statistics.median(ratios)


def decode_all(make_decoder: Callable[[], Any], chunks: list[bytes], expected: int) -> None:
    decoder = make_decoder()
    count = 0
    for chunk in chunks:
        count += len(decoder.feed(chunk))
    if count != expected:
        raise AssertionError(f"decoded {count} frames, expected {expected}")


class Row:
    def __init__(self, name: str, frames: int, ours_bytes: int, base_bytes: int,
                 measured: tuple[float, float, float]) -> None:
        self.name, self.frames = name, frames
        self.ours_bytes, self.base_bytes = ours_bytes, base_bytes
        self.ours, self.base, self.ratio = measured

    def line(self) -> str:
        return (
            f"{self.name:<27}{self.frames / self.ours:>12,.0f}"
            f"{self.ours_bytes / self.ours / MB:>9.1f}"
            f"{self.frames / self.base:>14,.0f}{self.base_bytes / self.base / MB:>9.1f}"
            f"{self.ratio:>9.2f}x"
        )


HEADER = (
    f"{'case':<27}{'ours fr/s':>12}{'MB/s':>9}{'baseline fr/s':>14}{'MB/s':>9}{'ratio':>10}\n"
    f"{'':<27}{'(best)':>12}{'':>9}{'(best)':>14}{'':>9}{'(median)':>10}"
)


def small_cases(rounds: int) -> tuple[list[Row], dict[str, Callable[[], Any]]]:
    packets = [
        PureMessagePacket("Ping from 10.0.0.7", source_origin_identifier="peer_one",
                          source_origin_time=T0 + timedelta(microseconds=37 * i))
        # Distinct times (within one second), as a sender's packets have: not one shared
        # datetime, which format_timestamp would recognise and not write again.
        for i in range(SMALL_FRAMES)
    ]
    objects = [baseline_small_object(p) for p in packets]
    base_stream = b"".join(baseline_encode_small(objects))
    base_chunks = chunks_of(base_stream)
    base_encode = lambda: baseline_encode_small(objects)  # noqa: E731
    base_fresh = lambda: baseline_encode_fresh(SMALL_FRAMES)  # noqa: E731
    base_decode = lambda: decode_all(  # noqa: E731
        lambda: BaselineDecoder(False), base_chunks, SMALL_FRAMES)
    rows, work = [], {}
    for name in ("p2pnet", "dotnet"):
        codec = get_codec(name)
        stream = b"".join(map(codec.encode, packets))
        chunks = chunks_of(stream)
        encode = lambda codec=codec: list(map(codec.encode, packets))  # noqa: E731
        decode = lambda codec=codec, chunks=chunks: decode_all(  # noqa: E731
            codec.decoder, chunks, SMALL_FRAMES)
        work[f"encode {name} small"], work[f"decode {name} small"] = encode, decode
        rows.append(Row(f"encode {name} small", SMALL_FRAMES, len(stream), len(base_stream),
                        compare(encode, base_encode, rounds)))
        fresh = lambda codec=codec: encode_fresh(codec, SMALL_FRAMES)  # noqa: E731
        work[f"encode {name} small fresh"] = fresh
        rows.append(Row(f"encode {name} small fresh", SMALL_FRAMES, len(stream),
                        len(base_stream), compare(fresh, base_fresh, rounds)))
        rows.append(Row(f"decode {name} small", SMALL_FRAMES, len(stream), len(base_stream),
                        compare(decode, base_decode, rounds)))
    return rows, work


def large_cases(rounds: int) -> tuple[list[Row], dict[str, Callable[[], Any]]]:
    payloads = [os.urandom(LARGE_PAYLOAD) for _ in range(LARGE_FRAMES)]
    packets = [
        DataTransmissionPacket(p, DataPayloadFormat.MISC_DATA,
                               source_origin_identifier="peer_one", source_origin_time=T0)
        for p in payloads
    ]
    base_stream = b"".join(baseline_encode_large(payloads))
    base_chunks = chunks_of(base_stream)
    base_encode = lambda: baseline_encode_large(payloads)  # noqa: E731
    base_decode = lambda: decode_all(  # noqa: E731
        lambda: BaselineDecoder(True), base_chunks, LARGE_FRAMES)
    join_once = lambda: decode_all(  # noqa: E731
        lambda: JoinOnceBaselineDecoder(True), base_chunks, LARGE_FRAMES)
    rows, work = [], {}
    for name in ("p2pnet", "dotnet"):
        codec = get_codec(name)
        stream = b"".join(map(codec.encode, packets))
        chunks = chunks_of(stream)
        encode = lambda codec=codec: list(map(codec.encode, packets))  # noqa: E731
        decode = lambda codec=codec, chunks=chunks: decode_all(  # noqa: E731
            lambda: codec.decoder(LARGE_MAX_FRAME), chunks, LARGE_FRAMES)
        work[f"encode {name} 1MiB"], work[f"decode {name} 1MiB"] = encode, decode
        rows.append(Row(f"encode {name} 1MiB", LARGE_FRAMES, len(stream), len(base_stream),
                        compare(encode, base_encode, rounds)))
        rows.append(Row(f"decode {name} 1MiB", LARGE_FRAMES, len(stream), len(base_stream),
                        compare(decode, base_decode, rounds)))
        rows.append(Row("  vs join-once baseline", LARGE_FRAMES, len(stream), len(base_stream),
                        compare(decode, join_once, rounds)))
    return rows, work


class _StdlibJson:
    """Stands in for orjson in p2pnet_tx.wire, to see what orjson buys."""

    JSONDecodeError = json.JSONDecodeError

    @staticmethod
    def loads(data: Any) -> Any:
        if isinstance(data, memoryview):
            data = bytes(data)
        return json.loads(data)

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def with_stdlib_json(run: Callable[[], Any]) -> Any:
    saved = wire.orjson
    wire.orjson = _StdlibJson  # type: ignore[assignment]
    try:
        return run()
    finally:
        wire.orjson = saved


TARGETS = {
    "decode p2pnet small": 1.0,
    "decode dotnet small": 0.8,
    "decode p2pnet 1MiB": 1.5,
    "decode dotnet 1MiB": 1.5,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds per figure (ours and baseline alternate; default 9)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke test")
    parser.add_argument("--json", action="store_true",
                        help="also time our codecs with stdlib json in place of orjson")
    parser.add_argument("--profile", metavar="CASE",
                        help='profile one case with cProfile, e.g. "decode dotnet 1MiB"')
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    started = time.perf_counter()

    print(f"p2pnet_tx {p2pnet_tx.__version__}, Python {platform.python_version()} "
          f"({platform.python_implementation()}), Twisted {twisted.__version__}, "
          f"orjson {orjson.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{rounds} rounds; decoders fed {CHUNK // 1024} KiB chunks\n")

    small, small_work = small_cases(rounds)
    large, large_work = large_cases(rounds)
    work = {**small_work, **large_work}
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [work[args.profile]() for _ in range(rounds)])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return 0

    print(HEADER)
    for row in small + large:
        print(row.line())

    print("\ntargets (decode, ours / baseline):")
    met = True
    by_name = {row.name: row for row in small + large}
    for name, target in TARGETS.items():
        ratio = by_name[name].ratio
        met = met and ratio >= target
        print(f"  {name:<22} {ratio:5.2f}x  target >= {target}x  "
              f"{'met' if ratio >= target else 'MISSED'}")

    if args.json:
        print("\nour codecs with orjson and with stdlib json (frames/s, best; "
              "ratio = orjson / json, median):")
        for name in work:
            job = work[name]
            orjson_time, json_time, ratio = compare(job, lambda: with_stdlib_json(job), rounds)
            frames = SMALL_FRAMES if name.endswith("small") else LARGE_FRAMES
            print(f"  {name:<22}{frames / orjson_time:>12,.0f}{frames / json_time:>12,.0f}"
                  f"{ratio:>8.2f}x")

    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
