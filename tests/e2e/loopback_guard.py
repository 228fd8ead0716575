"""Fails the e2e tier if any of its processes talks to an address outside loopback.

A hard rule of these machines: tests send traffic only to 127.0.0.0/8. The
simulated cluster is built to keep to it (pod and node IPs on loopback,
webhooks dialed at pod IPs), and this guard checks that it does, two ways:

- a sampler reads the kernel's TCP tables (/proc/net/tcp and tcp6) every
  SAMPLE_INTERVAL seconds, and records each connection, established or being
  opened, whose peer is not on loopback and whose socket belongs to the test
  process or one of its descendants: the control plane, kwok, the pulumi
  engine, its plugins, the programs it runs and the helm it embeds;
- `dial_errors` reads the API server's log for the dials it failed, which a
  sampler can miss when a refusal is immediate.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_INTERVAL = 0.25
# TCP states (include/net/tcp_states.h) of a socket that has a peer: every one but
# LISTEN (0A) and CLOSE (07). A connection the peer already closed (CLOSE_WAIT) still
# sent its traffic.
ACTIVE_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0B": "CLOSING",
    "0C": "NEW_SYN_RECV",
}
DIAL = re.compile(r"dial tcp (\[?[0-9a-fA-F.:]+\]?):\d+")


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # tcp6 stores four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return address.ipv4_mapped or address


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_unspecified


def _foreign_sockets() -> dict[str, tuple[str, str]]:
    """inode -> (peer, state) for active sockets whose peer is not on loopback."""
    sockets: dict[str, tuple[str, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state not in ACTIVE_STATES or inode == "0":
                continue
            address, port = remote.split(":")
            peer = _address(address)
            if not is_loopback(peer):
                sockets[inode] = (f"{peer}:{int(port, 16)}", ACTIVE_STATES[state])
    return sockets


def _parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, name) for every process."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # The name is in parentheses and may hold spaces; the parent pid follows it.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[int(pid)] = (int(stat[stat.rindex(")") + 2 :].split()[1]), name)
    return parents


def _owners(inodes: set[str], root: int) -> dict[str, str]:
    """inode -> `name (pid)` for the processes in `root`'s tree that hold one of `inodes`."""
    parents = _parents()

    def in_tree(pid: int) -> bool:
        seen = set()
        while pid not in seen and pid > 1:
            if pid == root:
                return True
            seen.add(pid)
            pid = parents.get(pid, (0, ""))[0]
        return False

    owners: dict[str, str] = {}
    for pid, (_parent, name) in parents.items():
        if not in_tree(pid):
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    owners[target[8:-1]] = f"{name} ({pid})"
        except OSError:
            continue  # the process ended meanwhile
    return owners


@dataclass
class LoopbackGuard:
    """Samples until `stop()`; `violations` lists what it saw, once each."""

    root: int = field(default_factory=os.getpid)
    allowed: Callable[[str, str], bool] = lambda process, peer: False
    """(process name, peer `address:port`) -> whether that connection is expected."""
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LoopbackGuard:
        self._thread = threading.Thread(target=self._run, name="loopback-guard", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.sample()

    def sample(self) -> None:
        self.samples += 1
        foreign = _foreign_sockets()
        if not foreign:
            return
        for inode, owner in _owners(set(foreign), self.root).items():
            peer, state = foreign[inode]
            if self.allowed(owner.rsplit(" (", 1)[0], peer):
                continue
            finding = f"{owner} -> {peer} ({state})"
            if finding not in self.violations:
                self.violations.append(finding)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def dial_errors(log: Path) -> list[str]:
    """The API server's failed dials to addresses outside loopback, from its log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        for match in DIAL.finditer(line):
            if not is_loopback(ipaddress.ip_address(match.group(1).strip("[]"))):
                found.append(line.strip()[:300])
    return found
