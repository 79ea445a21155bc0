"""
The C{twistd sshfinger} plugin's module: L{makeService} wires the services from the parsed options
(L{sshfinger.options}), and is also what C{sshfinger.tac} calls.  Wiring only: every part is built by its own
package.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

from twisted.application import strports
from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from sshfinger.cli.system_users import SystemUsersService
from sshfinger.finger.accesslog import AccessLog, BatchedEventLog
from sshfinger.finger.forward import Forwarder
from sshfinger.finger.onaccept import AnsweringEndpoint
from sshfinger.finger.protocol import FingerFactory
from sshfinger.finger.service import FingerService
from sshfinger.ops.descriptors import raise_descriptor_limit
from sshfinger.ops.endpoints import listen_description
from sshfinger.ops.identity import node_identity
from sshfinger.ops.notify import notify
from sshfinger.ops.reload import ReloadService
from sshfinger.options import DEFAULTS, Options, TwistdOptions
from sshfinger.ssh.checkers import review_passwd_file
from sshfinger.ssh.hostkeys import load_host_keys
from sshfinger.ssh.service import make_ssh_service
from sshfinger.store.service import make_store
from sshfinger.web.service import make_web_service

#: Net new container objects that start a young-generation garbage collection (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


class SSHFingerService(MultiService):
    """
    All of sshfinger's services.  A port that cannot be bound stops twistd with one line and status 1.

    Once started it lets the young generation of the garbage collector grow to L{GC_YOUNG_THRESHOLD} objects:
    the objects of a connection are freed by reference counting when it closes, but a burst of a hundred open
    connections would otherwise set off collections that walk all of them, several times a second under load
    (5-7 % of a finger query's CPU at 128 concurrent connections in C{bench/}).
    """

    log = Logger()

    def privilegedStartService(self) -> None:
        """
        Raise the soft descriptor limit to the hard one (the connection caps, fitted under it when the ports
        start, are then what refuses a flood), and bind the endpoints (as root, if twistd runs as root).

        @raise SystemExit: if an endpoint cannot listen (port in use, no permission).
        """
        before, after = raise_descriptor_limit()
        self.log.info(
            "Descriptor limit {after} (soft limit was {before})", before=before, after=after, outcome="limits"
        )
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"sshfinger: cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}") from None
        except OverflowError as e:  # a port out of range that got past Options (a .tac, makeService's caller)
            raise SystemExit(f"sshfinger: cannot listen: {e}") from None

    def startService(self) -> None:
        """
        Start every service, then raise the young generation's threshold (see the class docstring).
        """
        super().startService()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        notify("READY=1\nSTATUS=serving")

    def stopService(self) -> Any:
        """
        Tell systemd (if it started us with C{Type=notify}) that we are stopping, then stop every service.
        """
        notify("STOPPING=1")
        return super().stopService()


def makeService(config: Mapping[str, Any], reactor: Any = None) -> SSHFingerService:
    """
    Build the services: the store, then the finger endpoint.

    @param config: parsed L{Options} (or a mapping with the same keys, see L{DEFAULTS}).
    @param reactor: the reactor to use; the global one by default.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = {**DEFAULTS, **config}
    top = SSHFingerService()
    store_service = make_store(
        settings["store"],
        reactor,
        audit_keep=int(settings["audit-keep"]),
        audit_max_bytes=int(settings["audit-max-bytes"]),
    )
    store_service.setName("store")
    store_service.setServiceParent(top)
    node_heartbeat = getattr(store_service.store.backend, "node_heartbeat", None)
    if node_heartbeat is not None:  # a store shared by several nodes: register this one
        node_heartbeat(store_service.store, *node_identity(settings)).setServiceParent(top)

    access_log = None
    query_log: AccessLog | BatchedEventLog = BatchedEventLog(reactor)  # in the main log, an event per batch
    if settings.get("access-log"):
        query_log = access_log = AccessLog(settings["access-log"], reactor)
        access_log.setName("access-log")
        access_log.setServiceParent(top)  # before the finger port: opened before it, closed after it

    forwarder = Forwarder(reactor, settings["forward"]) if settings.get("forward") else None
    finger = FingerService(
        store_service.store,
        reactor,
        allow_list=not settings["no-list"],
        match_names=not settings.get("exact"),
        forwarder=forwarder,
    )
    factory = FingerFactory(
        finger,
        reactor,
        timeout=float(settings["finger-timeout"]),
        max_per_peer=int(settings["max-per-peer"]),
        ascii_only=bool(settings["ascii"]),
        query_log=query_log,
        max_connections=int(settings["max-finger-connections"]),
        ipv6_prefix=int(settings["ipv6-prefix"]),
    )
    endpoint = strports.service(listen_description(settings["finger"]), factory, reactor)
    if not settings["no-answer-on-accept"]:
        endpoint.endpoint = AnsweringEndpoint(endpoint.endpoint)
    endpoint.setName("finger")
    endpoint.setServiceParent(top)

    if settings["system-users"]:
        system_users = SystemUsersService(store_service.store, reactor, float(settings["system-users-interval"]))
        system_users.setName("system-users")
        system_users.setServiceParent(top)  # after the store: it is open by the first import
    web = make_web_service(settings, store_service.store, reactor, query_log)
    if web is not None:
        web.setServiceParent(top)

    reload = ReloadService(
        reactor,
        settings.get("passwd_files", []),
        settings.get("json-log"),
        settings.get("log-file"),
        access_log=access_log,
        review_passwd=review_passwd_file,
        run_in_thread=lambda function: deferToThreadPool(reactor, reactor.getThreadPool(), function),
    )
    reload.setName("reload")
    reload.setServiceParent(top)

    if not settings["no-ssh"]:
        if "host_keys" not in settings:
            settings["host_keys"] = load_host_keys(settings["keys"])
        ssh, app = make_ssh_service(settings, store_service.store, finger, reactor)
        app.extra.update(services=top, reactor=reactor)
        ssh.setName("ssh")
        ssh.setServiceParent(top)
    assert IServiceCollection.providedBy(top)
    return top


__all__ = ["DEFAULTS", "GC_YOUNG_THRESHOLD", "Options", "SSHFingerService", "TwistdOptions", "makeService"]
