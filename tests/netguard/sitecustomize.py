"""The test suite's network guard, in every Python process it starts.

Python imports ``sitecustomize`` at start-up from the first folder on ``sys.path`` that has one. ``tests/conftest.py``
puts this folder first on the ``PYTHONPATH`` that the suite's subprocesses inherit (a CLI run, a local Ray's dashboard,
agents and workers), so each of them installs the same audit hook as the test process itself. The hook refuses
(``OSError``, as an offline machine would) every attempt to resolve or reach a host that is not loopback, and
appends a line naming the process, the host and the calling code to the file named by ``RESNET_EXPLORER_NET_LOG``;
the suite fails on any line there. An audit hook sees what ``socket`` does at the C level too, so it catches every
library (urllib3, httpx, asyncio, grpc's Python side), not only the functions a test could patch.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys

LOG = "RESNET_EXPLORER_NET_LOG"  # the file that collects every process's attempts, one JSON object a line

# The socket events that name a peer (PEP 578's table), and where their host or address sits in the arguments.
_NAME_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"}
_ADDRESS_LOOKUPS = {"socket.gethostbyaddr", "socket.getnameinfo"}
_PEER_CALLS = {"socket.connect", "socket.sendto", "socket.sendmsg"}


def is_loopback(host: object) -> bool:
    """Whether ``host`` names this machine's loopback (``localhost``, 127.0.0.0/8, ::1); an unset host (a wildcard
    or a Unix socket's path) reaches nothing either."""
    if host is None or host in ("", b"", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    text = str(host).split("%")[0]
    if text.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def outside_host(event: str, args: tuple) -> object | None:
    """The host an audit event would resolve or reach beyond this machine, else ``None``."""
    if event in _NAME_LOOKUPS or event in _ADDRESS_LOOKUPS:
        host = args[0] if args else None
        if event == "socket.getnameinfo" and isinstance(host, tuple):
            host = host[0]
    elif event in _PEER_CALLS:
        address = args[1] if len(args) > 1 else None
        if not isinstance(address, tuple):  # a Unix socket's path, or no address (sendmsg on a connected socket)
            return None
        host = address[0]
    else:
        return None
    return None if is_loopback(host) else host


def _caller() -> list[str]:
    """The code that asked, innermost first, without the socket module's own frames: what a failure names."""
    frame, stack = sys._getframe(2), []
    while frame is not None and len(stack) < 40:
        name = frame.f_code.co_filename
        if not name.endswith(("socket.py", "sitecustomize.py")):
            stack.append(f"{name}:{frame.f_lineno} ({frame.f_code.co_name})")
        frame = frame.f_back
    return stack


def _audit(event: str, args: tuple) -> None:
    if not event.startswith("socket."):
        return
    host = outside_host(event, args)
    if host is None:
        return
    record = {"pid": os.getpid(), "argv": sys.argv[:4], "event": event, "host": repr(host), "from": _caller()}
    path = os.environ.get(LOG)
    if path:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (json.dumps(record) + "\n").encode())
        finally:
            os.close(descriptor)
    raise OSError(f"the test suite may not reach beyond this machine: {event} {host!r}")


def install() -> None:
    """Guard this process (once; an audit hook cannot be removed)."""
    if not getattr(sys, "_resnet_explorer_net_guard", False):
        sys.addaudithook(_audit)
        sys._resnet_explorer_net_guard = True


def read_attempts(path: str | os.PathLike) -> list[dict]:
    """Every attempt recorded in ``path`` so far."""
    try:
        with open(path) as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def _chain() -> None:
    """Run the ``sitecustomize`` this one shadows (a distribution's own), so the guard changes nothing else."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


if os.environ.get(LOG) and __name__ == "sitecustomize":
    install()
    _chain()
