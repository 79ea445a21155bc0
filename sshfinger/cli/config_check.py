"""
C{sshfinger config check FILE}: check a C{twistd sshfinger --config} file without starting the server, with the
same code C{twistd sshfinger} checks it with (L{sshfinger.options.Options}).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from twisted.python import usage


def cmd_config(args: argparse.Namespace, out: TextIO) -> int:
    """
    Check the file; print one line saying it is fine.

    @raise ValueError: with the one line C{twistd sshfinger} would stop with (the tool prints it, exit status 1).
    """
    from sshfinger.options import Options

    options = Options()
    options.check_only = True  # nothing on this host is created: host keys are checked at start and by doctor
    try:
        options.parseOptions(["--config", args.file])
    except usage.UsageError as e:
        raise ValueError(str(e)) from None
    out.write(f"{args.file}: ok (host keys are checked at start and by 'sshfinger doctor')\n")
    return 0


def register(sub: Any) -> None:
    """
    Add the C{config} command to the tool's subcommands (C{argparse}'s C{add_subparsers} result).
    """
    p = sub.add_parser("config", help="check a configuration file for 'twistd sshfinger --config FILE'")
    p.set_defaults(function=cmd_config)
    p.add_argument("action", choices=("check",), help="check: validate FILE without starting the server")
    p.add_argument("file", help="the TOML file")


__all__ = ["cmd_config", "register"]
