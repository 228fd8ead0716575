"""The e2e tier's loopback guard reads the kernel's TCP tables and the API server's log right.

The guard itself runs in the e2e tier (tests/e2e/conftest.py); here its parsing
is checked on lines in the kernel's and the API server's formats, since a test
may not open a connection outside loopback to watch it being caught.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tests.e2e.loopback_guard import _address, dial_errors, is_loopback


def test_addresses_decode_from_proc_net_tcp_and_tcp6():
    # /proc/net/tcp: 127.0.0.1 and 203.0.113.80, little-endian hex.
    assert _address("0100007F") == ipaddress.ip_address("127.0.0.1")
    assert _address("507100CB") == ipaddress.ip_address("203.0.113.80")
    # /proc/net/tcp6: ::1, and ::ffff:10.0.0.1 (IPv4-mapped, read as IPv4).
    assert _address("00000000000000000000000001000000") == ipaddress.ip_address("::1")
    assert _address("0000000000000000FFFF00000100000A") == ipaddress.ip_address("10.0.0.1")


def test_only_loopback_and_unbound_addresses_are_loopback():
    for address in ("127.0.0.1", "127.64.0.9", "::1", "0.0.0.0"):
        assert is_loopback(ipaddress.ip_address(address)), address
    for address in ("10.96.0.1", "172.16.0.1", "192.168.1.1", "203.0.113.80", "2001:db8::1"):
        assert not is_loopback(ipaddress.ip_address(address)), address


def test_dial_errors_name_the_api_servers_dials_outside_loopback(tmp_path: Path):
    log = tmp_path / "kube-apiserver.log"
    log.write_text(
        "W1202 dispatcher.go:217] Failed calling webhook, failing open x.linkerd.io: failed calling webhook "
        '"x": Post "https://127.64.0.7:8443/?timeout=10s": dial tcp 127.64.0.7:8443: connect: connection refused\n'
        "E1202 available_controller.go:460] v1alpha1.tap.linkerd.io failed with: "
        'Get "https://10.96.12.4:443/apis": dial tcp 10.96.12.4:443: i/o timeout\n'
        "I1202 something unrelated\n"
    )
    (found,) = dial_errors(log)
    assert "10.96.12.4" in found
