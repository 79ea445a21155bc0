"""
Tests for L{sshfinger.ops.logs}: which events the text logs keep.
"""

from __future__ import annotations

import io

from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ops.logs import observer


class ObserverTests(SynchronousTestCase):
    """
    L{observer}, the twistd log observer factory.
    """

    def test_kept_and_dropped(self) -> None:
        """
        Info and above are written, debug is not; Conch's namespaces write only warnings and above.
        """
        stream = io.StringIO()
        write = observer(stream)
        for namespace, level, text in [
            ("sshfinger.ssh.server.UserAuthServer", LogLevel.info, "login accepted"),
            ("sshfinger.ssh.server.ServerTransport", LogLevel.debug, "kex alg"),
            ("twisted.conch.ssh.session", LogLevel.info, "Executing command"),
            ("twisted.conch.ssh.connection.SSHConnection", LogLevel.warn, "bad channel"),
            ("twisted.internet.base", LogLevel.info, "Main loop terminated."),
        ]:
            Logger(namespace=namespace, observer=write).emit(level, text)
        lines = stream.getvalue().splitlines()
        self.assertEqual([line.split(" ", 1)[1] for line in lines], [
            "[sshfinger.ssh.server.UserAuthServer#info] login accepted",
            "[twisted.conch.ssh.connection.SSHConnection#warn] bad channel",
            "[twisted.internet.base#info] Main loop terminated.",
        ])  # fmt: skip
