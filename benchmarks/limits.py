"""The open-file limit of a process that holds thousands of connections.

Each connection is a file descriptor, and Linux's default soft limit (often 1,024) stops a
process long before 10,000 sessions; the hard limit, which an unprivileged process may raise
its soft limit to, is usually far higher.
"""

from __future__ import annotations

try:
    import resource
except ImportError:  # pragma: no cover (not on Windows)
    resource = None  # type: ignore[assignment]


class DescriptorLimitError(RuntimeError):
    """The hard RLIMIT_NOFILE is below what a measurement needs."""


def raise_open_file_limit(needed: int, what: str) -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit when ``needed`` exceeds it.

    Children started afterwards inherit the new limit.

    Args:
        needed: how many descriptors the process (or its children) will hold at once.
        what: what needs them, for the error message (e.g. "10,000 sessions").

    Returns:
        The soft limit now in force (``needed`` where there are no such limits).

    Raises:
        DescriptorLimitError: the hard limit is below ``needed``; the message names the limit
            and how to raise it.
    """
    if resource is None:  # pragma: no cover
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed if soft == resource.RLIM_INFINITY else soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise DescriptorLimitError(
            f"{what} need about {needed:,} file descriptors, but RLIMIT_NOFILE is {soft:,} "
            f"(soft) / {hard:,} (hard), and only root can raise the hard limit: raise it "
            f"(`ulimit -Hn {needed}` in a root shell, `nofile` in /etc/security/limits.conf, "
            "`LimitNOFILE=` for a systemd unit, `--ulimit nofile=...` for docker) and run again"
        )
    # The hard limit itself where it is finite; where it is unlimited, what is needed (the
    # kernel's nr_open caps an "unlimited" soft limit anyway).
    new_soft = needed if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft
