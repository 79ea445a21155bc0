"""
The RFC 1288 finger server, as small parts:

  - L{constants}: tuning constants and the fixed lines a peer may receive;
  - L{query}: the query grammar (L{query.parse_query});
  - L{service}: L{service.IFingerService}, which every front end adapts, and L{service.FingerService};
  - L{render}: the text of answers (sanitising, records, listings, display widths, the output cap);
  - L{cache}, L{limits}, L{deadlines}: the reply cache, per-peer limits, connection deadlines;
  - L{respond}: a query line to the bytes that answer it (L{respond.Responder.respond});
  - L{protocol}: the protocol (it knows only its transport) and the factory that wires the parts;
  - L{onaccept}: answering on the accepted socket, which nothing else knows about;
  - L{accesslog}: where queries are recorded;
  - L{forward}: one-hop forwarding to allowed hosts.
"""
