"""
The web face's pages, JSON API and WebFinger, over raw HTTP on a fake reactor: status codes, headers, escaping
of hostile stored text, conditional requests, and hidden accounts never appearing.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys

from sshfinger.model.account import Actor
from sshfinger.model.sshsig import fingerprint
from sshfinger.web import resources
from sshfinger.web.views import ACTIVITY_JSON, PROFILE_REL
from tests.unit.test_sshsig import line_of, sign
from tests.unit.webhelpers import BREAKOUT, HOST, SCRIPT, WebTestCase

ALIAS = "https://mastodon.example/@alice"
ADMIN = Actor("root", "shell")


class PageTests(WebTestCase):
    """
    C{/} and C{/~LOGIN}.
    """

    def test_listing(self) -> None:
        """
        C{/} lists the visible accounts with links to their pages, and not the hidden one.
        """
        response = self.get("/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-type"), "text/html; charset=utf-8")
        self.assertIn(b'<a href="/~alice">alice</a>', response.body)
        self.assertIn(b"Down the rabbit hole", response.body)
        self.assertIn(b"5 minutes ago", response.body)
        self.assertNotIn(b"secret", response.body)
        self.assertNotIn(b"Hidden Person", response.body)

    def test_security_headers(self) -> None:
        """
        Every answer (a page, a 404, a 405) has a strict CSP, nosniff and a Referrer-Policy; pages load no
        script or style from another host and contain no inline script.
        """
        for response in (self.get("/"), self.get("/nothing"), self.get("/", method="DELETE")):
            csp = response.header("content-security-policy") or ""
            self.assertIn("default-src 'none'", csp)
            self.assertIn("script-src 'self'", csp)
            self.assertEqual(response.header("x-content-type-options"), "nosniff")
            self.assertEqual(response.header("referrer-policy"), "no-referrer")
        body = self.get("/~alice").body
        self.assertNotIn(b"http://", body)
        self.assertNotIn(b"https://", body)
        self.assertNotIn(b"<script>", body)
        self.assertIn(b'<script src="/static/live.js" defer></script>', body)

    def test_user_page(self) -> None:
        """
        C{/~alice} shows her name, status, the age and absolute time of the update, office, phone and plan;
        never her role, keys or who made the last change.
        """
        response = self.get("/~alice")
        self.assertEqual(response.status, 200)
        body = response.body.decode()
        for text in ("Alice Liddell", "Down the rabbit hole", "5 minutes ago", "2027-01-15T07:55:00Z", "B12",
                     "555-0100", '<pre class="plan">Follow the White Rabbit.</pre>'):  # fmt: skip
            self.assertIn(text, body)
        for text in ("admin", "ssh-ed25519", "user"):
            self.assertNotIn(f">{text}<", body)
        self.assertNotIn("ssh-ed25519", body)

    def test_signed_plan(self) -> None:
        """
        A plan signed with one of the account's keys shows who signed it on the page and in the JSON; once the
        plan changes, the mark is gone (issue 22).
        """
        key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        plan = "Signed and sealed."
        self.successResultOf(self.store.update("alice", {"keys": [line_of(key)], "plan": plan}, ADMIN))
        self.successResultOf(
            self.store.update("alice", {"plan": plan, "plan_signature": sign(key, plan.encode() + b"\n")}, ADMIN)
        )
        mark = "Plan signed with ED25519 key " + fingerprint(key)
        self.assertIn(f'<p class="signed">{mark}</p>', self.get("/~alice").body.decode())
        self.assertEqual(json.loads(self.get("/api/users/alice").body)["plan_signed"], mark)
        self.successResultOf(self.store.update("alice", {"plan": "Edited since."}, ADMIN))
        self.assertNotIn(b'class="signed"', self.get("/~alice").body)
        self.assertIsNone(json.loads(self.get("/api/users/alice").body)["plan_signed"])

    def test_hidden_and_unknown_same_404(self) -> None:
        """
        A hidden account, an unknown one and an impossible login all get the very same 404.
        """
        answers = [self.get(path) for path in ("/~secret", "/~nobody", "/~%3Cscript%3E", "/~alice/extra")]
        self.assertEqual({r.status for r in answers}, {404})
        self.assertEqual(len({r.body for r in answers}), 1)
        self.assertNotIn(b"secret", answers[0].body)

    def test_hostile_strings_escaped(self) -> None:
        """
        A status of C{<script>} and a name of C{"><img onerror=...>} render as text on both pages; the escape
        character of a stored terminal sequence is gone.
        """
        for path in ("/", "/~mallory"):
            body = self.get(path).body
            self.assertNotIn(SCRIPT.encode(), body)
            self.assertNotIn(b"<img", body)
            self.assertIn(b"&lt;script&gt;alert(1)&lt;/script&gt;", body)
            self.assertIn(b"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;", body)
        self.assertNotIn(b"\x1b", self.get("/~mallory").body)
        self.assertIn(b"[2Jcleared", self.get("/~mallory").body)

    def test_static_assets(self) -> None:
        """
        The style sheet follows the reader's colour scheme; the script never parses stored text as HTML.
        """
        css = self.get("/static/style.css")
        self.assertEqual(css.status, 200)
        self.assertIn(b"prefers-color-scheme: dark", css.body)
        js = self.get("/static/live.js")
        self.assertEqual(js.header("content-type"), "text/javascript; charset=utf-8")
        self.assertIn(b'new EventSource("/events")', js.body)
        self.assertNotIn(b"innerHTML", js.body)

    def test_no_listing_of_folders(self) -> None:
        """
        Folders (C{/static/}, C{/api}, C{/.well-known/}) are not listed: 404.
        """
        for path in ("/static/", "/static", "/api", "/.well-known/", "/static/../api"):
            self.assertEqual(self.get(path).status, 404, path)


class MethodTests(WebTestCase):
    """
    Only GET and HEAD, and OPTIONS for CORS.
    """

    def test_other_methods_refused(self) -> None:
        """
        POST, PUT, DELETE and TRACE get 405 with an C{Allow} header.
        """
        for method in ("POST", "PUT", "DELETE", "TRACE"):
            response = self.get("/api/users", method=method)
            self.assertEqual(response.status, 405, method)
            self.assertEqual(response.header("allow"), "GET, HEAD, OPTIONS")

    def test_head(self) -> None:
        """
        HEAD answers the headers of GET and no body.
        """
        response = self.get("/api/users/alice", method="HEAD")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(response.body, b"")

    def test_options_cors(self) -> None:
        """
        OPTIONS on WebFinger answers 204 with the CORS headers.
        """
        response = self.get("/.well-known/webfinger", method="OPTIONS")
        self.assertEqual(response.status, 204)
        self.assertEqual(response.header("access-control-allow-origin"), "*")
        self.assertIn("GET", response.header("access-control-allow-methods") or "")


class ApiTests(WebTestCase):
    """
    C{/api/users} and C{/api/users/LOGIN}.
    """

    def test_users(self) -> None:
        """
        The list has the visible accounts' public fields only.
        """
        response = self.get("/api/users")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("access-control-allow-origin"), "*")
        users = json.loads(response.body)["users"]
        self.assertEqual([u["login"] for u in users], ["alice", "mallory", "root"])
        self.assertFalse(json.loads(response.body)["more"])
        self.assertEqual(
            set(users[0]), {"login", "name", "status", "plan", "office", "phone", "fediverse", "plan_signed", "updated"}
        )
        self.assertNotIn(b"secret", response.body)
        self.assertNotIn(b"admin", response.body)

    def test_user(self) -> None:
        """
        One account's fields; hostile text is escaped so the JSON holds no raw angle brackets.
        """
        alice = json.loads(self.get("/api/users/alice").body)
        self.assertEqual(alice["status"], "Down the rabbit hole")
        self.assertEqual(alice["updated"], "2027-01-15T07:55:00Z")
        raw = self.get("/api/users/mallory").body
        self.assertNotIn(b"<", raw)
        self.assertEqual(json.loads(raw)["status"], SCRIPT)
        self.assertEqual(json.loads(raw)["name"], BREAKOUT)
        self.assertEqual(self.get("/api/users/secret").status, 404)
        self.assertEqual(self.get("/api/users/nobody").status, 404)

    def test_list_capped(self) -> None:
        """
        The list page and C{/api/users} show at most L{resources.LIST_LIMIT} accounts and say there are more.
        """
        self.patch(resources, "LIST_LIMIT", 2)
        body = json.loads(self.get("/api/users").body)
        self.assertEqual(([u["login"] for u in body["users"]], body["more"]), (["alice", "mallory"], True))
        page = self.get("/").body
        self.assertIn(b"Only the first 2 accounts are listed.", page)
        self.assertNotIn(b"/~root", page)
        self.assertEqual(self.get("/~root").status, 200)

    def test_conditional(self) -> None:
        """
        A matching C{If-None-Match} or a current C{If-Modified-Since} gets 304 with no body; once the account
        changes, the old ETag gets 200 and a new ETag.
        """
        first = self.get("/api/users/alice")
        etag, modified = first.header("etag"), first.header("last-modified")
        assert etag is not None and modified is not None
        self.assertEqual(self.get("/api/users/alice", {"If-None-Match": etag}).status, 304)
        self.assertEqual(self.get("/api/users/alice", {"If-None-Match": f'"x", W/{etag}'}).status, 304)
        self.assertEqual(self.get("/api/users/alice", {"If-Modified-Since": modified}).body, b"")
        self.assertEqual(self.get("/api/users/alice", {"If-Modified-Since": modified}).status, 304)
        self.assertEqual(self.get("/", {"If-None-Match": self.get("/").header("etag") or ""}).status, 304)
        self.reactor.advance(10)
        self.successResultOf(self.store.update("alice", {"status": "Late"}, ADMIN))
        again = self.get("/api/users/alice", {"If-None-Match": etag})
        self.assertEqual(again.status, 200)
        self.assertNotEqual(again.header("etag"), etag)
        self.assertEqual(json.loads(again.body)["status"], "Late")

    def test_change_visible_at_once(self) -> None:
        """
        Hiding an account removes it from the list and its page at once (the cache follows the store version).
        """
        self.assertEqual(self.get("/api/users/alice").status, 200)
        self.successResultOf(self.store.update("alice", {"hidden": True}, ADMIN))
        self.assertEqual(self.get("/api/users/alice").status, 404)
        self.assertNotIn(b"alice", self.get("/api/users").body)
        self.assertNotIn(b"alice", self.get("/").body)


class WebFingerTests(WebTestCase):
    """
    C{/.well-known/webfinger} (RFC 7033).
    """

    def finger(self, query: str) -> tuple[int, dict[str, object] | None, str | None]:
        """
        Query WebFinger; return the status, the decoded JRD (if 200) and the CORS header.
        """
        response = self.get(f"/.well-known/webfinger?{query}")
        body = json.loads(response.body) if response.status == 200 else None
        if response.status == 200:
            self.assertEqual(response.header("content-type"), "application/jrd+json")
        return response.status, body, response.header("access-control-allow-origin")

    def test_account(self) -> None:
        """
        C{acct:alice@HOST} answers her subject and a profile-page link to C{/~alice}, with CORS.
        """
        status, jrd, cors = self.finger(f"resource=acct:alice@{HOST}")
        self.assertEqual((status, cors), (200, "*"))
        assert jrd is not None
        self.assertEqual(jrd["subject"], f"acct:alice@{HOST}")
        self.assertEqual(
            jrd["links"], [{"rel": PROFILE_REL, "type": "text/html", "href": f"http://{HOST}/~alice"}]
        )
        self.assertNotIn("aliases", jrd)
        self.assertEqual(self.finger(f"resource=acct%3AALICE%40{HOST.upper()}")[0], 200)

    def test_fediverse_alias(self) -> None:
        """
        An account's fediverse alias is returned as an alias and a C{self} link of type activity+json.
        """
        self.successResultOf(self.store.update("alice", {"fediverse": ALIAS}, Actor("alice", "shell")))
        _, jrd, _ = self.finger(f"resource=acct:alice@{HOST}")
        assert jrd is not None
        self.assertEqual(jrd["aliases"], [ALIAS])
        self.assertIn({"rel": "self", "type": ACTIVITY_JSON, "href": ALIAS}, jrd["links"])

    def test_rel_filter(self) -> None:
        """
        One C{rel} keeps only its links; repeated C{rel}s keep each; an unknown rel keeps none (but the subject).
        """
        self.successResultOf(self.store.update("alice", {"fediverse": ALIAS}, Actor("alice", "shell")))
        base = f"resource=acct:alice@{HOST}"
        rels = lambda query: [link["rel"] for link in self.finger(query)[1]["links"]]  # type: ignore[index]  # noqa: E731
        self.assertEqual(rels(f"{base}&rel=self"), ["self"])
        self.assertEqual(rels(f"{base}&rel=http%3A%2F%2Fwebfinger.net%2Frel%2Fprofile-page"), [PROFILE_REL])
        self.assertEqual(rels(f"{base}&rel=self&rel=http%3A%2F%2Fwebfinger.net%2Frel%2Fprofile-page"),
                         [PROFILE_REL, "self"])  # fmt: skip
        self.assertEqual(rels(f"{base}&rel=avatar"), [])

    def test_profile_url_resource(self) -> None:
        """
        The profile page's URL is accepted as a resource too.
        """
        self.assertEqual(self.finger(f"resource=https://{HOST}/~alice")[0], 200)

    def test_bad_requests(self) -> None:
        """
        A missing, empty, repeated or malformed resource gets 400.
        """
        for query in ("", "resource=", f"resource=acct:alice@{HOST}&resource=acct:bob@{HOST}", "resource=alice",
                      "resource=acct:alice", "resource=acct:@example.org", "resource=%FF%FE",
                      "resource=ftp://example.org/~alice"):  # fmt: skip
            self.assertEqual(self.finger(query)[0], 400, query)

    def test_not_found(self) -> None:
        """
        Unknown and hidden accounts, another host and an impossible login all get 404, not their record.
        """
        for query in (f"resource=acct:nobody@{HOST}", f"resource=acct:secret@{HOST}",
                      "resource=acct:alice@elsewhere.example", f"resource=acct:%3Cx%3E@{HOST}",
                      f"resource=https://{HOST}/~secret"):  # fmt: skip
            status, _, _ = self.finger(query)
            self.assertEqual(status, 404, query)
        self.assertNotIn(b"secret", self.get(f"/.well-known/webfinger?resource=acct:secret@{HOST}").body)
