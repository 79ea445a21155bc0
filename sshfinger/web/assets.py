"""
The two static files the pages load: a style sheet (light and dark, readable on a phone) and the script that
follows C{/events} and updates the page in place.  Kept here as text so the package needs no data files; served
with long-lived caching by L{sshfinger.web.resources.Asset}.

The script builds every element with C{textContent}, never C{innerHTML}, so stored text is never parsed as HTML.
"""

from __future__ import annotations

STYLE_CSS = b"""\
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fdfdfc; --muted: #666; --line: #ddd; --accent: #0b57d0; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6e6; --bg: #141414; --muted: #9a9a9a; --line: #333; --accent: #8ab4f8; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 16px/1.5 system-ui, sans-serif;
       color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
header { display: flex; justify-content: space-between; color: var(--muted); }
#live::before { content: "\\25CB live"; font-size: 0.8rem; }
#live.on::before { content: "\\25CF live"; color: #2e7d32; }
h1 { font-size: 1.4rem; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top;
         overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; }
td.updated, .abs, .never { color: var(--muted); white-space: nowrap; }
tr.flash td { animation: flash 1.5s ease-out; }
@keyframes flash { from { background: rgba(255, 200, 0, 0.35); } to { background: transparent; } }
p.status { font-size: 1.1rem; }
pre.plan { white-space: pre-wrap; overflow-wrap: anywhere; padding: 0.75rem; border: 1px solid var(--line);
           font: 14px/1.4 ui-monospace, monospace; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
@media (max-width: 36rem) {
  td.updated, th:nth-child(4) { display: none; }
  td.name, th:nth-child(2) { display: none; }
}
"""

LIVE_JS = b"""\
"use strict";
(function () {
  if (!window.EventSource) { return; }
  var page = document.body.getAttribute("data-page");
  var indicator = document.getElementById("live");
  function ago(iso) {
    if (!iso) { return "never updated"; }
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var n = Math.floor(seconds / units[i][1]);
        return n + " " + units[i][0] + (n === 1 ? "" : "s") + " ago";
      }
    }
    return "just now";
  }
  function timeElement(iso) {
    var el = document.createElement(iso ? "time" : "span");
    if (iso) { el.setAttribute("datetime", iso); el.title = iso; } else { el.className = "never"; }
    el.textContent = ago(iso);
    return el;
  }
  function cell(cls, child) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (typeof child === "string") { td.textContent = child; } else { td.appendChild(child); }
    return td;
  }
  function row(user) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-login", user.login);
    var a = document.createElement("a");
    a.href = "/~" + encodeURIComponent(user.login);
    a.textContent = user.login;
    tr.appendChild(cell("", a));
    tr.appendChild(cell("name", user.name));
    tr.appendChild(cell("status", user.status));
    tr.appendChild(cell("updated", timeElement(user.updated)));
    return tr;
  }
  function findRow(login) {
    var rows = document.querySelectorAll("#users tbody tr");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-login") === login) { return rows[i]; }
    }
    return null;
  }
  function showUser(user) {
    if (page === "list") {
      var tbody = document.querySelector("#users tbody");
      var fresh = row(user);
      var old = findRow(user.login);
      if (old) { tbody.replaceChild(fresh, old); } else {
        var rows = tbody.querySelectorAll("tr"), before = null;
        for (var i = 0; i < rows.length; i++) {
          if (rows[i].getAttribute("data-login") > user.login) { before = rows[i]; break; }
        }
        tbody.insertBefore(fresh, before);
      }
      fresh.className = "flash";
    } else if (page === "user") {
      var article = document.querySelector("article");
      if (!article || article.getAttribute("data-login") !== user.login) { return; }
      article.querySelector(".name").textContent = user.name;
      article.querySelector(".status").textContent = user.status;
      var updated = article.querySelector(".updated");
      updated.textContent = "Updated ";
      updated.appendChild(timeElement(user.updated));
      var plan = article.querySelector(".plan");
      var fresh = document.createElement(user.plan ? "pre" : "p");
      fresh.className = "plan";
      fresh.textContent = user.plan || "No plan.";
      plan.parentNode.replaceChild(fresh, plan);
    }
  }
  function gone(login) {
    if (page === "list") {
      var old = findRow(login);
      if (old) { old.parentNode.removeChild(old); }
    } else if (page === "user") {
      var article = document.querySelector("article");
      if (article && article.getAttribute("data-login") === login) {
        article.querySelector(".status").textContent = "(no longer listed)";
      }
    }
  }
  function refresh() {
    if (page !== "list") { return; }
    fetch("/api/users", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (data) {
      var tbody = document.querySelector("#users tbody");
      while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
      data.users.forEach(function (user) { tbody.appendChild(row(user)); });
    }).catch(function () {});
  }
  var opened = false;
  var source = new EventSource("/events");
  source.addEventListener("open", function () {
    indicator.className = "on";
    if (opened) { refresh(); }
    opened = true;
  });
  source.addEventListener("error", function () { indicator.className = ""; });
  source.addEventListener("user", function (e) { showUser(JSON.parse(e.data)); });
  source.addEventListener("gone", function (e) { gone(JSON.parse(e.data).login); });
  setInterval(function () {
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) { times[i].textContent = ago(times[i].getAttribute("datetime")); }
  }, 30000);
})();
"""

__all__ = ["LIVE_JS", "STYLE_CSS"]
