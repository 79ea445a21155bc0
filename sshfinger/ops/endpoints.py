"""
Endpoint descriptions as sshfinger uses them.
"""

#: Listen queue of TCP endpoints that do not set one (Twisted's default, 50, drops connection bursts).
BACKLOG = 1024


def with_backlog(description: str) -> str:
    """
    Add C{backlog=1024} to a C{tcp:} endpoint description that does not set a backlog.
    """
    if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
        return f"{description}:backlog={BACKLOG}"
    return description
