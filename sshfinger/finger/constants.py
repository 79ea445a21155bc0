"""
The finger server's tuning constants and the fixed lines a peer may receive, in one place.

Every other module of L{sshfinger.finger} reads these from here (as C{constants.NAME} where a test may patch
them); the defaults of the command-line options (C{--max-per-peer}, C{--max-finger-connections}) are here too.
"""

from __future__ import annotations

#: Longest query accepted, in bytes, not counting its line ending.
MAX_QUERY = 512
#: Most accounts an empty query lists (the answer is also capped in bytes); a huge store costs no more.
LIST_MAX = 1000
#: Most long entries a C{/W} query without a user returns (each is a whole record).
LONG_LIST_MAX = 50
#: Most accounts a query matching real names returns.
MATCH_MAX = 20
#: Most accounts whose real names are indexed for matching queries; a larger store matches logins only.
NAME_INDEX_MAX = 200_000
#: Answers kept for reuse (the cache is emptied when it grows past this many or L{CACHE_BYTES}).
CACHE_SIZE = 10_000
#: Bytes of encoded answers kept for reuse.
CACHE_BYTES = 16 * 1024 * 1024
#: Largest answer in bytes; a longer one ends with L{sshfinger.finger.render.TRUNCATED}.
MAX_OUTPUT = 65536

#: Longest query text kept in a log event, in characters (after escaping).
LOG_QUERY_CHARS = 100

#: Most connections open (counting a new one) for which a new TCP connection's waiting query is read as it is
#: made; in a burst beyond that, the reactor reads it on its next turn (see L{sshfinger.finger.protocol}).
READ_AT_ONCE_MAX = 16

#: Most seconds between two checks for connections past their deadline.
SWEEP_INTERVAL = 1.0
#: Seconds a peer has to send its query, and again to read the answer (C{--finger-timeout}).
TIMEOUT = 10.0

#: Most concurrent connections from one address (C{--max-per-peer}).
MAX_PER_PEER = 20
#: Most concurrent finger connections in all (C{--max-finger-connections}): well under the 1024 descriptors
#: systemd gives a service by default, leaving room for SSH, the store and the logs.  Past it the oldest
#: connection still open is closed to make room, so idle connections cannot lock out real queries.
MAX_CONNECTIONS = 512

#: IPv6 hosts whose network (their per-address key) is remembered rather than worked out again.
PEER_KEYS_MAX = 65536

#: Listing queries (the empty query, C{/W} alone) and forwarded queries one address may make per second, on
#: average...
LIST_RATE = 2.0
#: ... and in a burst.
LIST_BURST = 10.0
#: Seconds a listing query past its address's budget waits for its refusal: a client flooding listings one
#: after another then makes one a second, instead of keeping the server busy accepting its connections.
LIST_PENALTY = 1.0
#: Addresses whose listing budget is remembered; past this many the full ones are forgotten.
LIST_PEERS_MAX = 10_000

#: Seconds to connect to a host a query is forwarded to (C{--forward}), and then to read its whole answer.
FORWARD_CONNECT_TIMEOUT = 3.0
FORWARD_READ_TIMEOUT = 5.0
#: Bytes of a forwarded answer kept; the rest is cut.
FORWARD_MAX_BYTES = 16384
#: Forwarded queries under way at once; past this, refused.
FORWARD_IN_FLIGHT = 16

#: Most seconds a line of the access log (C{--access-log}) waits in memory before it is written.
FLUSH_INTERVAL = 0.1
#: Characters of the access log waiting in memory that cause an immediate write.
BUFFER_LIMIT = 65536
#: Queries waiting in memory that cause an immediate event (the default query log, in the main log).
BATCH_LINES = 1000

#: The fixed lines a peer may receive.
LIST_DENIED = "Finger online user list denied"
FORWARD_DENIED = "Finger forwarding service denied"
FORWARD_BUSY = "finger: too many forwarded queries under way, try again later"
QUERY_TOO_LONG = "finger: query too long"
TOO_MANY = "finger: too many connections from your address, try again later"
TOO_MANY_LISTINGS = "finger: too many user lists or forwarded queries from your address, try again later"
INTERNAL_ERROR = "Internal error in server"
