// The live alert queue of a hub board or hospital inbox.
// Rows are upserted by alert id from the page's initial state and from the alert stream
// (ws/hub/<code>/ or ws/hospital/<code>/). The socket replays what was missed by sequence
// number after every reconnect, so a dropped connection never loses an alert.
(function () {
  "use strict";
  const table = document.getElementById("alert-queue");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const labels = JSON.parse(document.getElementById("board-labels").textContent);
  const state = document.getElementById("live-state");
  const empty = document.getElementById("queue-empty");
  const actionsTemplate = document.getElementById("row-actions");
  const [fStatus, fSeverity, fRule] = (table.dataset.filters || "||").split("|");
  const CLOSED = new Set(["resolved", "dismissed"]);
  const alerts = new Map();
  let lastSeq = Number(table.dataset.head || 0);
  let socket = null;
  let retry = 500;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function visible(a) {
    if (table.dataset.hospital && a.escalated_to !== table.dataset.hospital) return false;
    if (fStatus ? a.status !== fStatus : CLOSED.has(a.status)) return false;
    if (fSeverity && a.severity !== fSeverity) return false;
    if (fRule && !(fRule.endsWith(":") ? a.rule.startsWith(fRule) : a.rule === fRule)) return false;
    return true;
  }

  function order(a, b) {
    const rank = (x) => (x.severity === "critical" ? 0 : 1);
    return rank(a) - rank(b) || String(a.opened_at).localeCompare(String(b.opened_at)) || a.id - b.id;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text == null ? "" : String(text);
    tr.appendChild(td);
    return td;
  }

  function row(a) {
    const tr = document.createElement("tr");
    tr.id = `alert-${a.id}`;
    tr.dataset.alertId = a.id;
    tr.dataset.status = a.status;
    tr.className = `sev-${a.severity}` + (a.news2 && a.news2.risk === "high" ? " risk-high" : "");
    const badge = document.createElement("span");
    badge.className = `badge ${a.severity}`;
    badge.textContent = labels[a.severity] || a.severity;
    cell(tr, badge);
    const link = document.createElement("a");
    link.href = `/patients/${a.patient_id}/`;
    link.textContent = a.patient_name;
    cell(tr, link);
    const finding = cell(tr, a.message);
    if (a.last_action && a.last_action.note && ["request_info", "hand_back", "accept", "escalate"].includes(a.last_action.action)) {
      const note = document.createElement("div");
      note.className = "last-note";
      note.textContent = `${a.last_action.by || ""}: ${a.last_action.note}`;
      finding.appendChild(note);
    }
    if (a.news2) {
      const n = document.createElement("span");
      n.className = "news2";
      const risk = labels[a.news2.risk] || a.news2.risk;
      const missing = a.news2.missing || [];
      if (missing.length) {
        // A partial score is a lower bound: never let it read as "low risk".
        const names = missing.map((m) => labels[m] || m).join(", ");
        n.classList.add("partial");
        n.textContent = ` NEWS2 ≥${a.news2.total} (${risk}; ${labels.news2_partial.replace("%(missing)s", names)})`;
      } else {
        n.textContent = ` NEWS2 ${a.news2.total} (${risk})`;
      }
      finding.appendChild(n);
    }
    const status = [labels[a.status] || a.status];
    if (a.acknowledged_by) status.push(a.acknowledged_by);
    if (a.assigned_to && a.assigned_to !== a.acknowledged_by) status.push("→ " + a.assigned_to);
    if (a.snoozed_until) status.push("⏸ " + a.snoozed_until.slice(11, 16));
    cell(tr, status.join(" · "), "status");
    const opened = document.createElement("time");
    opened.dateTime = a.opened_at;
    opened.textContent = (a.opened_at || "").replace("T", " ").slice(5, 16);
    cell(tr, opened);
    const actions = cell(tr, "");
    if (!CLOSED.has(a.status)) {
      if (!a.acknowledged_by) {
        const ack = document.createElement("button");
        ack.type = "button";
        ack.className = "ack";
        ack.textContent = labels.acknowledge;
        ack.addEventListener("click", () => act(a.id, "acknowledge", new FormData()));
        actions.appendChild(ack);
      }
      if (actionsTemplate) {
        const more = actionsTemplate.content.cloneNode(true);
        more.querySelectorAll("form").forEach((form) => {
          form.addEventListener("submit", (ev) => {
            ev.preventDefault();
            act(a.id, form.dataset.action, new FormData(form));
          });
        });
        actions.appendChild(more);
      }
    }
    return tr;
  }

  function render() {
    const shown = [...alerts.values()].filter(visible).sort(order);
    const keepOpen = new Set([...tbody.querySelectorAll("details[open]")].map((d) => d.closest("tr").id));
    tbody.textContent = "";
    shown.forEach((a) => {
      const tr = row(a);
      if (keepOpen.has(tr.id)) tr.querySelector("details").open = true;
      tbody.appendChild(tr);
    });
    empty.hidden = shown.length > 0;
    const counts = { critical: 0, warning: 0, open: 0, acknowledged: 0, dispatched: 0, escalated: 0 };
    [...alerts.values()].filter((a) => !CLOSED.has(a.status)).forEach((a) => {
      counts[a.severity] = (counts[a.severity] || 0) + 1;
      counts[a.status] = (counts[a.status] || 0) + 1;
    });
    Object.entries(counts).forEach(([k, v]) => {
      const el = document.querySelector(`[data-count="${k}"]`);
      if (el) el.textContent = String(v);
    });
    table.dataset.rendered = String(shown.length);
  }

  function upsert(a) {
    alerts.set(a.id, a);
  }

  async function act(id, action, body) {
    const response = await fetch(`/alerts/${id}/${action}`, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      window.alert(`${labels.action_failed}: ${data.message || response.status}`);
      return;
    }
    if (data.alert) { upsert(data.alert); render(); }
  }

  function setLive(on) {
    state.textContent = on ? labels.connected : labels.disconnected;
    state.classList.toggle("on", on);
    document.body.dataset.live = on ? "1" : "0";
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${window.location.host}${table.dataset.socket}`);
    socket.addEventListener("open", () => {
      retry = 500;
      socket.send(JSON.stringify({ type: "subscribe", last_seq: lastSeq }));
    });
    socket.addEventListener("message", (ev) => {
      const frame = JSON.parse(ev.data);
      if (frame.type === "subscribed") setLive(true);
      else if (frame.type === "alert") {
        if (frame.seq <= lastSeq) return;
        if (frame.seq > lastSeq + 1) {  // a gap: ask again from what we hold
          socket.send(JSON.stringify({ type: "subscribe", last_seq: lastSeq }));
          return;
        }
        lastSeq = frame.seq;
        const { type, stream, seq, event, at, ...alert } = frame;
        upsert(alert);
        render();
      } else if (frame.type === "resync") window.location.reload();
    });
    socket.addEventListener("close", () => {
      setLive(false);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  JSON.parse(document.getElementById("initial-alerts").textContent).forEach(upsert);
  render();
  connect();
})();
