# sshfinger as a .tac file: twistd -ny sshfinger.tac
#
# Edit these values, then run it.  `twistd sshfinger --help` explains each one; the plugin and this file build
# exactly the same services (sshfinger.tap.makeService), and values are checked the same way.  As they stand they
# are what `make run` sets up: run it once (then stop it), and `twistd -ny sshfinger.tac` in the clone serves the
# same demo store with the same password file and host keys.

FINGER = "tcp:1079:interface=127.0.0.1"  # finger endpoint; "tcp:79" as root with twistd -u/-g
SSH = "tcp:2222:interface=127.0.0.1"  # SSH endpoint
STORE = "run/sshfinger.db"  # SQLite user store (created if missing), or "memory"
KEYS = "keys"  # directory of the SSH host keys (generated on first start)
AUTH = ["file:run/passwd"]  # --auth values; public keys in the store always work
ADMINS = ["admin"]  # logins that are admins whatever the store says
LIST_USERS = True  # answer the empty query with the list of users
ASCII_ONLY = False  # ASCII-only answers for old finger clients
ACCESS_LOG = None  # a file for the one line per finger query (batched, cheap); None: the main log

from twisted.application.service import Application

from sshfinger.tap import TwistdOptions, makeService

options = TwistdOptions()  # a bad value stops twistd with one line
options.parseOptions(
    ["--finger", FINGER, "--ssh", SSH, "--store", STORE, "--keys", KEYS]
    + [arg for auth in AUTH for arg in ("--auth", auth)]
    + [arg for admin in ADMINS for arg in ("--admin", admin)]
    + ([] if LIST_USERS else ["--no-list"])
    + (["--ascii"] if ASCII_ONLY else [])
    + (["--access-log", ACCESS_LOG] if ACCESS_LOG else [])
)
application = Application("sshfinger")
makeService(options).setServiceParent(application)
