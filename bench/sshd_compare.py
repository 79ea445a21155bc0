"""
SSH key login + exec side by side: sshfinger against a private OpenSSH sshd, same client, same machine, same run
(section 2 of C{run.py}).

The private sshd has its own config, host key and authorized_keys (the bench's client key, for root) in the
bench's temporary directory and listens on a free loopback port; the system's sshd is never touched.  It needs
C{/usr/sbin/sshd} (C{apt-get install openssh-server}; the bench does not install it) and root (sshd's privilege
separation); without them its rows say why instead of measuring.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import HOST, Login, free_port, key_login, timed_batch
from servers import Servers, setup_step
from table import Table, Target, login_row, ratio_row

SSHD = "/usr/sbin/sshd"
PARALLEL = 8
#: Client options of each comparison: OpenSSH's defaults (sshd then negotiates a post-quantum key exchange,
#: Conch offers curve25519), and both forced to the same key exchange.
VARIANTS = {"client defaults": [], "curve25519": ["-o", "KexAlgorithms=curve25519-sha256"]}
#: sshfinger against sshd: at most half the login time, at least twice the logins per second.
MEDIAN_TARGET = Target("p50", "<=", 0.5, "x")
RATE_TARGET = Target("rate", ">=", 2, "x")


def sshd_missing() -> str | None:
    """
    Why a private sshd cannot run here, or L{None} if it can.
    """
    if not os.path.exists(SSHD):
        return f"{SSHD} missing (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "needs root (sshd's privilege separation)"
    return None


def start_sshd(servers: Servers) -> int:
    """
    Start a private sshd (see the module docstring) among C{servers}; return its port.
    """
    directory = servers.directory / "sshd"
    directory.mkdir()
    setup_step(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host_key")])
    shutil.copy(f"{servers.key}.pub", directory / "authorized_keys")
    port = free_port()
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress {HOST}\nHostKey {directory / 'host_key'}\nPidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PrintMotd no\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    servers.start("sshd", [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")], [port])
    return port


def login_rows(
    table: Table, label: str, port: int, pid: int, key: Path, user: str, options: Sequence[str], runs: int,
    parallel: int,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """
    Add two rows for one server: key login + C{whoami} C{runs} times one at a time, and C{parallel} times with
    L{PARALLEL} clients at once (C{rate} = logins/s); return both rows.
    """
    login = key_login(port, key, user=user, options=options)
    login()  # warm up
    sequential, _, cpu, note = timed_batch(pid, lambda: [login() for _ in range(runs)])
    one = login_row(table, f"{label}, one at a time x{runs}", sequential, note=note, cpu=cpu)

    def in_parallel() -> list[Login]:
        with ThreadPoolExecutor(PARALLEL) as executor:
            return list(executor.map(lambda _: login(), range(parallel)))

    logins, wall, cpu, note = timed_batch(pid, in_parallel)
    many = login_row(table, f"{label}, {PARALLEL} parallel x{parallel}", logins, wall, f"rate = logins/s; {note}",
                     cpu)  # fmt: skip
    return one, many


def measure_ssh(
    servers: Servers, table: Table, ssh: int, quick: bool, with_sshd: bool, results: dict[str, Any]
) -> None:
    """
    Section 2: key login + exec on sshfinger (SSH port C{ssh}, server C{sshfinger-ssh}) and, if C{with_sshd} and
    it can run, on a private sshd; the ratios against their targets.  C{--quick}: fewer logins, client defaults
    only.
    """
    first = key_login(ssh, servers.key)()
    if not first[1]:
        table.section("ssh")
        table.add("sshfinger key login+exec", errors=1, note=f"first login failed: {first[2][:100]}")
        results["ssh_error"] = first[2]
        return
    missing = sshd_missing() if with_sshd else "skipped (--no-sshd)"
    sshd = None if missing else start_sshd(servers)
    runs, parallel = (8, 16) if quick else (20, 40)
    variants = list(VARIANTS.items())[: 1 if quick else None]
    for variant, options in variants:
        table.section(f"2. ssh key login + exec whoami (-> {first[2]!r}), OpenSSH client, {variant}")
        ours = login_rows(table, "sshfinger", ssh, servers.pid("sshfinger-ssh"), servers.key, "admin", options,
                          runs, parallel)  # fmt: skip
        theirs: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        if sshd is None:
            table.add("OpenSSH sshd", note=f"not measured: {missing}")
        else:
            theirs = login_rows(table, "OpenSSH sshd", sshd, servers.pid("sshd"), servers.key, "root", options,
                                runs, parallel)  # fmt: skip
        ratios = (
            ratio_row(table, "ratio sshfinger/sshd, one at a time", ours[0], theirs[0], "ratios (x)", MEDIAN_TARGET),
            ratio_row(table, f"ratio sshfinger/sshd, {PARALLEL} parallel", ours[1], theirs[1], "ratios (x)",
                      RATE_TARGET),
        )  # fmt: skip
        results[f"ssh_{variant.replace(' ', '_')}"] = {"sshfinger": ours, "sshd": theirs, "ratios": ratios,
                                                        "sshd_missing": missing}  # fmt: skip
    if sshd is not None:
        servers.stop("sshd")
