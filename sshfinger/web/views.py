"""
What the web face shows of an account: pure functions from an L{Account} to public fields, JSON, WebFinger JRD
documents and HTML pages.  No Twisted here.

Only public fields ever leave this module: the login, name, status, plan, office, phone, fediverse alias and the
time of the last update.  Never the role, keys, the hidden flag or who made the last change (that login may be a
hidden account's).  Every stored string passes through L{sshfinger.finger.render.sanitize} (control characters
and bidi overrides gone) and, in HTML, through L{html.escape}.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from sshfinger.finger.render import age_text, sanitize
from sshfinger.model.account import Account
from sshfinger.model.sshsig import signed_plan_line

#: The WebFinger link relation of a profile page (RFC 7033 section 4.4.4.1 example, also Mastodon's).
PROFILE_REL = "http://webfinger.net/rel/profile-page"

#: The media type of the ActivityPub actor that a C{self} link points at.
ACTIVITY_JSON = "application/activity+json"


def _line(text: str) -> str:
    return sanitize(text)


def public_fields(account: Account) -> dict[str, Any]:
    """
    The fields of C{account} anyone may see, sanitized: a mapping ready for JSON.
    """
    return {
        "login": _line(account.login),
        "name": _line(account.real_name),
        "status": _line(account.status),
        "plan": "\n".join(_line(line) for line in account.plan.split("\n")) if account.plan else "",
        "office": _line(account.office),
        "phone": _line(account.phone),
        "fediverse": _line(account.fediverse),
        "plan_signed": signed_plan_line(account.plan, account.plan_signature, account.keys),
        "updated": iso_time(account.updated_at),
    }


def iso_time(stamp: float) -> str | None:
    """
    The UTC time C{stamp} in ISO 8601 (C{"2026-12-05T12:00:00Z"}), or L{None} for never (0) or a bad stamp.
    """
    if not stamp:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    except (OverflowError, ValueError, OSError):
        return None


def to_json(value: object) -> bytes:
    """
    Encode C{value} as compact UTF-8 JSON; C{<}, C{>} and C{&} are escaped too, so the text is inert even if a
    browser were to sniff it as HTML.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8", "replace")


def user_json(account: Account) -> bytes:
    """
    The body of C{/api/users/LOGIN}.
    """
    return to_json(public_fields(account))


def users_json(accounts: Iterable[Account], more: bool = False) -> bytes:
    """
    The body of C{/api/users}: C{{"users": [...], "more": false}} of every visible account in C{accounts};
    C{more} says the list was cut.
    """
    return to_json({"users": [public_fields(a) for a in accounts if not a.hidden], "more": more})


def jrd(account: Account, host: str, base_url: str, rels: Iterable[str] = ()) -> bytes:
    """
    The WebFinger (RFC 7033) JSON Resource Descriptor of C{account}.

    @param host: the host part of C{acct:} resources this server answers for.
    @param base_url: the scheme and authority the request came to (C{"https://example.org"}), for the profile
        page link.
    @param rels: the requested C{rel} values; when any are given, only links with one of them are returned.
    """
    login = sanitize(account.login)
    links: list[dict[str, str]] = [
        {"rel": PROFILE_REL, "type": "text/html", "href": f"{base_url}/~{quote(login)}"},
    ]
    document: dict[str, Any] = {"subject": f"acct:{login}@{host}"}
    alias = sanitize(account.fediverse)
    if alias:
        document["aliases"] = [alias]
        links.append({"rel": "self", "type": ACTIVITY_JSON, "href": alias})
    wanted = set(rels)
    document["links"] = [link for link in links if not wanted or link["rel"] in wanted]
    return to_json(document)


# HTML pages.  Scripts and styles are separate files (the Content-Security-Policy allows no inline code).

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/live.js" defer></script>
</head>
<body data-page="{page}">
<header><a href="/">{host}</a> <span id="live" title="live updates"></span></header>
<main>
"""

_FOOT = """</main>
</body>
</html>
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _time_html(stamp: float, now: float) -> str:
    when = iso_time(stamp)
    if when is None:
        return '<span class="never">never updated</span>'
    return f'<time datetime="{when}" title="{when}">{_e(age_text(now - stamp))}</time>'


def listing_page(accounts: Iterable[Account], host: str, now: float, more: bool = False) -> bytes:
    """
    The page at C{/}: a table of the visible accounts with their name, status and the age of the last update;
    C{more} adds a line saying the list was cut.
    """
    rows = []
    for account in accounts:
        if account.hidden:
            continue
        login = sanitize(account.login)
        rows.append(
            f'<tr data-login="{_e(login)}"><td><a href="/~{_e(quote(login))}">{_e(login)}</a></td>'
            f'<td class="name">{_e(sanitize(account.real_name))}</td>'
            f'<td class="status">{_e(sanitize(account.status))}</td>'
            f'<td class="updated">{_time_html(account.updated_at, now)}</td></tr>'
        )
    body = (
        _HEAD.format(title=f"who is on {_e(host)}", page="list", host=_e(host))
        + f"<h1>Who is on {_e(host)}</h1>\n"
        + '<table id="users"><thead><tr><th>Login</th><th>Name</th><th>Status</th><th>Updated</th></tr></thead>\n'
        + "<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n"
        + (f'<p class="more">Only the first {len(rows)} accounts are listed.</p>\n' if more else "")
        + _FOOT
    )
    return body.encode("utf-8", "replace")


def user_page(account: Account, host: str, now: float) -> bytes:
    """
    The page at C{/~LOGIN}: name, status, the last update (relative, with the absolute time), office and phone
    when set, the fediverse alias, the plan as preformatted text and, while its signature verifies, who signed it.
    """
    fields = public_fields(account)
    login = fields["login"]
    parts = [
        _HEAD.format(title=f"{_e(login)} on {_e(host)}", page="user", host=_e(host)),
        f'<article data-login="{_e(login)}">\n<h1>{_e(login)}</h1>\n',
        f'<p class="name">{_e(fields["name"])}</p>\n',
        f'<p class="status">{_e(fields["status"])}</p>\n',
        f'<p class="updated">Updated {_time_html(account.updated_at, now)}',
        f' <span class="abs">({_e(fields["updated"])})</span></p>\n' if fields["updated"] else "</p>\n",
        "<dl>\n",
    ]
    for label, key in (("Office", "office"), ("Phone", "phone")):
        if fields[key]:
            parts.append(f"<dt>{label}</dt><dd>{_e(fields[key])}</dd>\n")
    if fields["fediverse"]:
        alias = _e(fields["fediverse"])
        parts.append(f'<dt>Fediverse</dt><dd><a rel="me nofollow" href="{alias}">{alias}</a></dd>\n')
    parts.append("</dl>\n")
    plan = fields["plan"]
    parts.append(f'<pre class="plan">{_e(plan)}</pre>\n' if plan else '<p class="plan">No plan.</p>\n')
    if fields["plan_signed"]:
        parts.append(f'<p class="signed">{_e(fields["plan_signed"])}</p>\n')
    parts.append("</article>\n" + _FOOT)
    return "".join(parts).encode("utf-8", "replace")


def error_page(code: int, message: str) -> bytes:
    """
    A small HTML error page (the same for every unknown or hidden account).
    """
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{code}</title>'
        f'<link rel="stylesheet" href="/static/style.css"></head>'
        f"<body><main><h1>{code}</h1><p>{_e(message)}</p></main></body></html>\n"
    ).encode()


__all__ = [
    "ACTIVITY_JSON",
    "PROFILE_REL",
    "error_page",
    "iso_time",
    "jrd",
    "listing_page",
    "public_fields",
    "to_json",
    "user_json",
    "user_page",
    "users_json",
]
