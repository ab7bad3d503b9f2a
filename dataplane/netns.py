"""Network-namespace labs for interoperability tests and experiments (needs root).

A ``NetnsLab`` creates namespaces with names unique to this run, wires them
with veth pairs, configures addresses and devices with iproute2 (``ip``), and
opens sockets inside a namespace (pyroute2's setns for the calling thread).
Everything it created is removed on ``close()`` -- also when the body of a
``with NetnsLab() as lab:`` block raises -- so a failed test leaves nothing
behind.  Addresses should come from 192.0.2.0/24 or 198.18.0.0/15.

This is driver code (it does IO); the VXLAN cores never import it.

Example::

    with NetnsLab("vx") as lab:
        a, b = lab.namespace("a"), lab.namespace("b")
        lab.veth(a, "a0", b, "b0")
        lab.address(a, "a0", "198.18.0.1/24"); lab.address(b, "b0", "198.18.0.2/24")
        lab.vxlan(a, "vx0", vni=42, local="198.18.0.1", remote="198.18.0.2", device="a0")
        with lab.inside(b):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from types import TracebackType

NAMESPACE_NAME_BYTES_MAX = 64
COMMAND_TIMEOUT_SECONDS = 20.0
_run_counter = itertools.count()


class NetnsError(RuntimeError):
    """A namespace command failed (not root, no iproute2, kernel refused)."""


def available() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's 'ip' command"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel exposes no network namespaces"
    return None


def run_ip(*arguments: str, namespace: str | None = None) -> str:
    """Run ``ip ARGS`` (inside ``namespace`` when given); return stdout or raise NetnsError."""
    command = ["ip"] + (["-n", namespace] if namespace else []) + list(arguments)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetnsError(f"{' '.join(command)}: {error}") from error
    if completed.returncode != 0:
        raise NetnsError(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(prefix: str) -> list[str]:
    """Delete namespaces ``<prefix>-<pid>-...`` left by a process that no longer exists
    (a run killed before its cleanup); namespaces of live processes are never touched."""
    removed = []
    for line in run_ip("netns", "list").splitlines():
        name = line.split(" ")[0]
        parts = name[len(prefix) + 1 :].split("-") if name.startswith(prefix + "-") else []
        if len(parts) >= 2 and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            run_ip("netns", "delete", name)
            removed.append(name)
    return removed


class NetnsLab:
    """Namespaces and links for one test run; removes them all on close."""

    def __init__(self, prefix: str = "shoal") -> None:
        reason = available()
        if reason is not None:
            raise NetnsError(reason)
        # Unique per process and per lab, so parallel runs never collide.
        self.prefix = f"{prefix}-{os.getpid()}-{next(_run_counter)}"
        self.namespaces: list[str] = []
        remove_stale(prefix)

    def __enter__(self) -> NetnsLab:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def namespace(self, suffix: str) -> str:
        """Create namespace ``<prefix>-<suffix>`` with loopback up; return its name."""
        name = f"{self.prefix}-{suffix}"
        if len(name) > NAMESPACE_NAME_BYTES_MAX:
            raise NetnsError(f"namespace name {name!r} longer than {NAMESPACE_NAME_BYTES_MAX}")
        run_ip("netns", "add", name)
        self.namespaces.append(name)
        run_ip("link", "set", "lo", "up", namespace=name)
        return name

    def veth(self, namespace_a: str, name_a: str, namespace_b: str, name_b: str, mtu: int = 1500) -> None:
        """A veth pair created directly inside the two namespaces (never in the root one), up."""
        run_ip("link", "add", name_a, "netns", namespace_a, "mtu", str(mtu), "type", "veth",
               "peer", "name", name_b, "netns", namespace_b, "mtu", str(mtu))
        run_ip("link", "set", name_a, "up", namespace=namespace_a)
        run_ip("link", "set", name_b, "up", namespace=namespace_b)

    def address(self, namespace: str, device: str, cidr: str) -> None:
        """Add an address; IPv6 ones skip duplicate address detection (usable at once)."""
        run_ip("address", "add", cidr, "dev", device, *(["nodad"] if ":" in cidr else []), namespace=namespace)

    def vxlan(self, namespace: str, name: str, *, vni: int, local: str, remote: str, device: str,
              dst_port: int = 4789, udp_checksum: bool = False, learning: bool = False,
              mac: str | None = None) -> None:
        """A kernel vxlan device sending to ``remote`` (default FDB entry), up.

        ``udp_checksum``: over IPv4, send checksums (``udpcsum``); over IPv6,
        checksums are the default and ``udp_checksum=False`` means zero checksums
        sent and accepted (``udp6zerocsumtx udp6zerocsumrx``, RFC 6935/6936)."""
        arguments = ["link", "add", name]
        if mac:
            arguments += ["address", mac]
        arguments += ["type", "vxlan", "id", str(vni), "local", local, "remote", remote, "dev", device,
                      "dstport", str(dst_port)]
        if ":" in local:
            arguments += [] if udp_checksum else ["udp6zerocsumtx", "udp6zerocsumrx"]
        else:
            arguments += ["udpcsum" if udp_checksum else "noudpcsum"]
        arguments += [] if learning else ["nolearning"]
        run_ip(*arguments, namespace=namespace)
        run_ip("link", "set", name, "up", namespace=namespace)

    def disable_ipv6(self, namespace: str) -> None:
        """Keep IPv6 autoconfiguration chatter (RS, MLD, DAD) off the wire."""
        with self.inside(namespace):
            for device in ("all", "default"):
                with open(f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6", "w", encoding="ascii") as handle:
                    handle.write("1")

    def disable_checksum_offload(self, namespace: str, device: str) -> None:
        """Make ``device`` write final checksums in software (``ethtool -K DEV tx off``).

        With offload on, a veth peer and its packet sockets see CHECKSUM_PARTIAL
        packets whose UDP checksum field holds only the pseudo-header sum."""
        from pyroute2 import Ethtool

        with self.inside(namespace):
            ethtool = Ethtool()
            try:
                features = ethtool.get_features(device)
                for name, feature in features.features.items():
                    if name.startswith("tx-checksum"):
                        feature.enable = False
                ethtool.set_features(device, features)
            finally:
                ethtool.close()

    def mac(self, namespace: str, device: str) -> str:
        links = json.loads(run_ip("-j", "link", "show", "dev", device, namespace=namespace))
        return str(links[0]["address"])

    @contextlib.contextmanager
    def inside(self, namespace: str) -> Iterator[None]:
        """Run the block with this thread in ``namespace``; sockets opened here stay there."""
        from pyroute2 import netns

        if namespace not in self.namespaces:
            raise NetnsError(f"namespace {namespace!r} was not created by this lab")
        netns.pushns(namespace)
        try:
            yield
        finally:
            netns.popns()

    def close(self) -> None:
        """Delete every namespace this lab made (their devices go with them)."""
        failures = []
        while self.namespaces:
            name = self.namespaces.pop()
            try:
                run_ip("netns", "delete", name)
            except NetnsError as error:
                failures.append(str(error))
        if failures:
            raise NetnsError("cleanup failed: " + "; ".join(failures))
