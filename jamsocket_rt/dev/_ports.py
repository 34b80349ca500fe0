"""Whose is a listening port? Linux's /proc tells, so a backend is not taken for ready when
another process took its port first.

The dev server picks a free port for each backend and hands it over in ``PORT``; between the
pick and the backend's bind, another program (a test server, another dev server) may take the
port. Its accepting connections then looked like the backend being ready, and the proxy sent
the sessions to a stranger (HTTP 404 on the Socket.IO path). Where /proc is readable, the
listening socket must belong to the backend's process group.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["group_listens_on"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


def _listening_inodes(port: int) -> set[str] | None:
    """The inodes of the sockets listening on ``port`` (any address), or None without /proc."""
    found: set[str] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                local_port = fields[1].rsplit(":", 1)[1]
                if int(local_port, 16) == port:
                    found.add(fields[9])
    return found if readable else None


def _group_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # After the command (in parentheses, which may hold spaces): state, ppid, pgrp...
        return int(stat.rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def _family(leader: int) -> list[int]:
    """``leader`` and its descendants still in its process group (from
    /proc/PID/task/TID/children: no scan of the whole of /proc)."""
    found, pending = [], [leader]
    while pending:
        pid = pending.pop()
        if _group_of(pid) != leader:
            continue  # it left the group (a session of its own): not the backend
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except (OSError, ValueError):
                continue
    return found


def group_listens_on(pgid: int, port: int) -> bool | None:
    """Whether the process ``pgid`` (a group's leader) or one it started holds the socket
    listening on ``port``.

    Returns:
        True or False where /proc says; None where it cannot tell (not Linux, no access).
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in _family(pgid):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False
