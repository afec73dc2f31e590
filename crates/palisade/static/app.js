// Palisade console: no framework. Confirmation of destructive forms and the dashboard's live updates (SSE).
"use strict";
document.addEventListener("submit", (ev) => {
  const msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const src = new EventSource(live.getAttribute("data-src"));
  const text = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = String(v); };
  const calls = document.getElementById("live-calls");
  src.addEventListener("status", (m) => {
    const d = JSON.parse(m.data);
    text("calls-now", d.calls);
    text("registered-now", d.registered);
  });
  src.addEventListener("call_started", (m) => {
    const d = JSON.parse(m.data);
    if (!calls) return;
    const li = document.createElement("li");
    li.dataset.call = d.call_id;
    li.textContent = d.caller + " \u2192 " + d.callee;
    calls.appendChild(li);
  });
  src.addEventListener("call_ended", (m) => {
    const d = JSON.parse(m.data);
    if (!calls) return;
    for (const li of Array.from(calls.children)) if (li.dataset.call === d.call_id) li.remove();
  });
  src.addEventListener("security", (m) => {
    const d = JSON.parse(m.data);
    const body = document.getElementById("live-events");
    if (!body) return;
    const tr = document.createElement("tr");
    for (const v of [new Date(d.at).toISOString(), d.kind, d.reason, d.source, d.user || ""]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > 20) body.removeChild(body.lastChild);
  });
});
