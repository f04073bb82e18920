"""
What an idle trusted channel holds: C{bench_network.py --only breakdown}.

A PeerNetwork in this process accepts N channels (default 500; 200 with C{--quick}) from a client
child process on 127.0.0.1 (the client modes of L{_netbench}: raw clients over TCP with
C{always_trust}, as the memory figure, then TLS clients with key trust that hold their
channels).  Once every channel is trusted the reactor stops and the objects are counted:

- by object graph: from each server-side channel, everything reachable through
  C{gc.get_referents}, not crossing into what every channel shares (the reactor, the network,
  its factory, handlers, policy, limits, codec, classes, functions, modules); an object reached
  from two channels is shared and not counted.  Sizes are C{sys.getsizeof}.  Each object is
  put under the channel attribute through which it was first reached, and under its type;
- by allocation: C{tracemalloc} from before the first connection to after the last trust,
  grouped by the line that allocated, divided by N.  This includes what the graph cannot reach
  from a channel (the network's tables) and what Twisted allocates outside Python objects' own
  size.

The same is done for a plain Twisted server of L{Int32StringReceiver}s (the memory baseline).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import types
from collections import Counter, defaultdict
from typing import Any

import _netbench as nb
from twisted.internet.base import DelayedCall
from twisted.internet.protocol import Factory

_STOP_TYPES = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
               types.CodeType, types.MethodDescriptorType, types.WrapperDescriptorType)


def _reach(root: Any, stop: set[int]) -> dict[int, tuple[Any, str]]:
    """Objects reachable from C{root} outside C{stop}: id -> (object, first attribute)."""
    seen: dict[int, tuple[Any, str]] = {id(root): (root, "(the protocol instance)")}
    first = []
    holder = getattr(root, "__dict__", None)
    if holder is not None:
        seen[id(holder)] = (holder, "(its __dict__)")
        first = [(value, name) for name, value in holder.items()]
    queue = first
    while queue:
        following = []
        for obj, label in queue:
            if id(obj) in seen or id(obj) in stop or isinstance(obj, _STOP_TYPES):
                continue
            if type(obj).__name__ == "Logger":
                continue
            seen[id(obj)] = (obj, label)
            following.extend((child, label) for child in gc.get_referents(obj))
        queue = following
    return seen


def graph_breakdown(protocols: list[Any], stop: set[int]) -> tuple[dict[str, int], dict[str, int],
                                                                  dict[str, int]]:
    """Bytes per protocol by first attribute and by type; counts by type."""
    reaches = [_reach(p, stop) for p in protocols]
    times_seen: Counter[int] = Counter()
    for reach in reaches:
        times_seen.update(reach.keys())
    by_attr: dict[str, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    count_type: dict[str, int] = defaultdict(int)
    for reach in reaches:
        for key, (obj, label) in reach.items():
            if times_seen[key] > 1:
                continue  # shared by several channels
            size = sys.getsizeof(obj)
            holder = getattr(obj, "__dict__", None)
            if (type(holder) is dict and holder and id(holder) not in reach
                    and not isinstance(obj, types.MethodType)):
                # Python 3.11 keeps small instance dicts inline, out of getsizeof's view:
                # count the dict that __dict__ makes of them (after tracemalloc's snapshot).
                size += sys.getsizeof(holder)
            by_attr[label] += size
            name = type(obj).__qualname__
            by_type[name] += size
            count_type[name] += 1
    n = len(protocols)
    return ({k: v // n for k, v in by_attr.items()}, {k: v // n for k, v in by_type.items()},
            {k: v / n for k, v in count_type.items()})


def _shared(reactor: Any, *objects: Any) -> set[int]:
    stop = {id(reactor), id(sys.modules), id(None)}
    for obj in objects:
        stop.add(id(obj))
        holder = getattr(obj, "__dict__", None)
        if holder is not None:
            stop.add(id(holder))
    return stop


def _wait(reactor: Any, predicate: Any, then: Any, timeout: float) -> None:
    """
    Run the reactor until C{predicate()} or the timeout, call C{then(reached)} with the reactor
    still running (stopping it disconnects everything), then stop it.
    """
    deadline = time.monotonic() + timeout
    from twisted.internet.task import LoopingCall

    def check() -> None:
        reached = predicate()
        if reached or time.monotonic() > deadline:
            loop.stop()
            try:
                then(reached)
            finally:
                reactor.stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    reactor.callWhenRunning(loop.start, 0.2)
    reactor.run()


def run_case(kind: str, n: int) -> None:
    """Accept C{n} channels of C{kind} ("always", "key" or "baseline"), then print the breakdown."""
    from twisted.internet import reactor

    from p2pnet_tx.network import PeerNetwork
    from p2pnet_tx.trust import always_trust

    # Before anything logs: without an observer, Twisted keeps every event in memory.
    nb.start_logging(f"breakdown {kind}")
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    if kind == "baseline":
        factory = Factory.forProtocol(nb.HeldOpen)
        factory.open = 0
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface=nb.LOOPBACK, backlog=1024)
        count = lambda: factory.open  # noqa: E731
        shared = _shared(reactor, factory, port)
    else:
        kwargs = ({"transport": "tcp", "trust_protocol": always_trust} if kind == "always"
                  else {})
        network = PeerNetwork(reactor, limits=nb.server_limits(n), **kwargs)
        port = reactor.listenTCP(0, network.factory, interface=nb.LOOPBACK, backlog=1024)
        network.port_opened(port)
        count = lambda: sum(1 for c in network.active_peer_channels if c.is_trusted)  # noqa
        shared = _shared(reactor, network, network.factory, port, network.handlers,
                         network.policy, network.channel_limits, network.trust_protocol)
    mode = "hs-clients" if kind == "key" else "mem-clients"
    flavor = "ours-tls" if kind == "key" else "ours-tcp"
    clients = nb.Child("--mode", mode, "--flavor", flavor, "--port", port.getHost().port,
                       "--channels", n,
                       "--concurrency", 50, "--budget", 60, *(["--hold"] if kind == "key" else []))
    def analyse(reached: bool) -> None:
        gc.collect()
        after = tracemalloc.take_snapshot()
        if kind == "baseline":
            protocols = [p for p in gc.get_objects() if isinstance(p, nb.HeldOpen)]
        else:
            protocols = [c for c in network.active_peer_channels if c.is_trusted]
            channel = protocols[0]
            shared.update(id(x) for x in (channel.codec, channel.limits, channel.policy,
                                          channel.owner, channel.handlers, channel.clock))
        what = "protocols" if kind == "baseline" else "trusted channels"
        print(f"\n== {kind}: {len(protocols)} {what} (of {n}"
              f"{'' if reached else ', NOT all reached'})")
        if not protocols:
            return
        _print_graph(protocols, shared)
        _print_allocations(before, after, len(protocols))
        if kind != "baseline":
            _print_network_tables(network, len(protocols))
            _print_timers(reactor, len(protocols))
        sys.stdout.flush()

    try:
        _wait(reactor, lambda: count() >= n, analyse, 90)
    finally:
        tracemalloc.stop()
        clients.stop()


def _print_graph(protocols: list[Any], shared: set[int]) -> None:
    by_attr, by_type, count_type = graph_breakdown(protocols, shared)
    total = sum(by_attr.values())
    print(f"  object graph, private to one protocol: {total:,} B")
    print("    by attribute of the protocol (first reached through):")
    for name, size in sorted(by_attr.items(), key=lambda kv: -kv[1]):
        if size >= 16:
            print(f"      {size:6,d} B  {name}")
    print("    by type:")
    for name, size in sorted(by_type.items(), key=lambda kv: -kv[1]):
        if size >= 16:
            print(f"      {size:6,d} B  {count_type[name]:5.1f} x {name}")


def _print_allocations(before: Any, after: Any, n: int) -> None:
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"  tracemalloc: {total / n:,.0f} B per protocol allocated and still live, by line:")
    shown = 0
    for stat in stats:
        per = stat.size_diff / n
        if per < 24 or shown >= 25:
            continue
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/wt-bench/")[-1]
        print(f"      {per:7,.0f} B  {stat.count_diff / n:5.1f} blocks  {where}:{frame.lineno}")
        shown += 1


def _print_network_tables(network: Any, n: int) -> None:
    """The network's per-channel collections: container bytes per channel."""
    rows = []
    for name, value in vars(network).items():
        if isinstance(value, (dict, set, list)) and len(value) >= n // 2:
            rows.append((sys.getsizeof(value) / n, name, len(value)))
    print("  PeerNetwork collections holding one entry per channel (container only, per channel):")
    for per, name, length in sorted(rows, reverse=True):
        print(f"      {per:6.0f} B  {name} ({length:,} entries)")


def _print_timers(reactor: Any, n: int) -> None:
    calls = [c for c in reactor.getDelayedCalls() if isinstance(c, DelayedCall)]
    per = Counter(getattr(c.func, "__qualname__", repr(c.func)) for c in calls)
    size = sum(sys.getsizeof(c) + sys.getsizeof(c.__dict__) + sys.getsizeof(c.args)
               + sys.getsizeof(c.kw) + sys.getsizeof(c.func) for c in calls)
    print(f"  reactor DelayedCalls: {len(calls) / n:.2f} per channel, about {size / n:.0f} B each "
          f"channel (call, __dict__, args, kw, bound method): "
          + ", ".join(f"{k} x{v / n:.2f}" for k, v in per.most_common(5)))


def main(quick: bool) -> int:
    nb.raise_fd_limit()
    n = 200 if quick else 500
    # One reactor run per case: Twisted's global reactor cannot be restarted after stop(), so
    # each case runs in its own child process of this script.
    import subprocess

    for kind in ("always", "key", "baseline"):
        subprocess.run([sys.executable, __file__, kind, str(n)], check=False, timeout=300)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    run_case(sys.argv[1], int(sys.argv[2]))
