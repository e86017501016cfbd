// Patient timeline charts: uPlot per vital, care-plan bands as dashed lines, alert markers.
// Data comes from vitals.json; the page polls it so new readings appear without a reload.
(function () {
  "use strict";
  const root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  const labels = JSON.parse(document.getElementById("chart-labels").textContent);
  const POLL_MS = 10000;
  const CHARTS = {
    bp: { vitals: ["systolic_bp", "diastolic_bp"], colors: ["#b00020", "#0b5cad"] },
    heart_rate: { vitals: ["heart_rate"], colors: ["#8a3ffc"] },
    spo2: { vitals: ["spo2"], colors: ["#1e6b34"] },
    temperature: { vitals: ["temperature"], colors: ["#c75000"] },
    glucose: { vitals: ["glucose"], colors: ["#6a4c00"] },
    weight: { vitals: ["weight"], colors: ["#2d4a6b"] },
  };
  let range = "7d";
  let custom = null;
  const plots = {};

  function merge(seriesList) {
    // uPlot wants one shared x array; join the vitals' timestamps.
    const xs = Array.from(new Set(seriesList.flatMap((s) => s.map((p) => p[0])))).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = seriesList.map((s) => {
      const col = new Array(xs.length).fill(null);
      s.forEach(([x, y]) => { col[index.get(x)] = y; });
      return col;
    });
    return [xs, ...ys];
  }

  function limitLines(thresholds, vitals) {
    const lines = [];
    vitals.forEach((v) => {
      const t = thresholds[v] || {};
      ["low", "high"].forEach((k) => { if (t[k] != null) lines.push({ value: t[k], color: "#d9a400" }); });
      ["critical_low", "critical_high"].forEach((k) => { if (t[k] != null) lines.push({ value: t[k], color: "#b00020" }); });
    });
    return lines;
  }

  function drawHook(lines, alerts) {
    return (u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.setLineDash([6, 4]);
      lines.forEach((l) => {
        const y = u.valToPos(l.value, "y", true);
        ctx.strokeStyle = l.color;
        ctx.beginPath();
        ctx.moveTo(u.bbox.left, y);
        ctx.lineTo(u.bbox.left + u.bbox.width, y);
        ctx.stroke();
      });
      ctx.setLineDash([]);
      ctx.strokeStyle = "rgba(176,0,32,0.6)";
      alerts.forEach((a) => {
        const x = u.valToPos(a.at, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
      });
      ctx.restore();
    };
  }

  function render(payload) {
    Object.entries(CHARTS).forEach(([key, spec]) => {
      const figure = root.querySelector(`[data-chart="${key}"]`);
      const holder = figure.querySelector(".plot");
      const data = merge(spec.vitals.map((v) => payload.series[v] || []));
      figure.dataset.points = String(data[0].length);
      const lines = limitLines(payload.thresholds, spec.vitals);
      const alerts = (payload.alerts || []).filter((a) => spec.vitals.includes(a.vital));
      if (plots[key]) { plots[key].destroy(); delete plots[key]; }
      holder.textContent = "";
      if (!data[0].length) {
        const p = document.createElement("p");
        p.className = "muted";
        p.textContent = labels.no_data;
        holder.appendChild(p);
        return;
      }
      const values = data.slice(1).flat().filter((v) => v != null).concat(lines.map((l) => l.value));
      const pad = Math.max(1, (Math.max(...values) - Math.min(...values)) * 0.1);
      plots[key] = new uPlot({
        width: Math.max(280, holder.clientWidth || 600),
        height: 180,
        scales: { x: { time: true, range: [payload.from, payload.to] }, y: { range: [Math.min(...values) - pad, Math.max(...values) + pad] } },
        series: [{}].concat(spec.vitals.map((v, i) => ({ label: labels[v] || v, stroke: spec.colors[i], width: 2, points: { show: true, size: 5 }, spanGaps: true }))),
        hooks: { draw: [drawHook(lines, alerts)] },
      }, data, holder);
    });
    root.dataset.loadedAt = String(Date.now());
  }

  function url() {
    const u = new URL(root.dataset.url, window.location.href);
    if (custom) { u.searchParams.set("from", custom.from); u.searchParams.set("to", custom.to); }
    else u.searchParams.set("range", range);
    return u;
  }

  async function refresh() {
    try {
      const response = await fetch(url(), { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
    } catch (err) {
      root.dataset.error = String(err);
    }
  }

  document.querySelectorAll("[data-range]").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("[data-range]").forEach((b) => b.removeAttribute("aria-pressed"));
      button.setAttribute("aria-pressed", "true");
      if (button.dataset.range === "custom") {
        const from = document.querySelector('input[name="from"]').value;
        const to = document.querySelector('input[name="to"]').value;
        if (!from || !to) return;
        custom = { from, to: to + "T23:59:59" };
      } else {
        custom = null;
        range = button.dataset.range;
      }
      refresh();
    });
  });
  refresh();
  setInterval(refresh, POLL_MS);
})();
