"""Test hosts on one machine: network namespaces joined by veth pairs on a private bridge.

The bridge lives in a namespace of its own (the switch), so nothing is added to the machine's
own network: every packet between the hosts stays inside namespaces this module made. Names
carry the creating process's id, so a run killed outright leaves namespaces that the next run
recognises and removes.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.77.0"
_NAME = re.compile(r"^skc(\d+)-")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def namespaces_supported() -> str | None:
    """None when this machine can make network namespaces; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add), and this run is not root"
    probe = f"skc{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        return f"this machine cannot create network namespaces: {detail}"
    _ip("netns", "del", probe)
    return None


def remove_leftovers() -> None:
    """Delete namespaces of earlier runs whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class Network:
    """A switch and the hosts plugged into it, each with one address on SUBNET.0/24."""

    prefix: str = field(default_factory=lambda: f"skc{os.getpid()}-")
    addresses: dict[str, str] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        remove_leftovers()
        self.switch = self._namespace("switch")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _namespace(self, host: str) -> str:
        name = self.prefix + host
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def add_host(self, host: str, last_octet: int) -> str:
        """A host namespace with eth0 at SUBNET.last_octet; its address."""
        name = self._namespace(host)
        port = f"p-{host}"[:15]
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", name)
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")
        address = f"{SUBNET}.{last_octet}"
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        self.addresses[host] = address
        return address

    def namespace(self, host: str) -> str:
        return self.prefix + host

    def run_in(self, host: str) -> list[str]:
        """The command prefix that runs a program on `host`."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def remove(self) -> None:
        # Deleting a namespace deletes its end of each veth pair, and so the pair.
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()
