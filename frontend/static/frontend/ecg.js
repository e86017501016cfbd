// ECG traces on the patient timeline (lead II when present) and the DICOM upload form.
(function () {
  "use strict";
  const data = document.getElementById("ecg-data");
  if (data && typeof uPlot !== "undefined") {
    JSON.parse(data.textContent).forEach((trace, i) => {
      const holder = document.querySelector(`[data-ecg="${i}"] .ecg-plot`);
      if (!holder || !trace.leads.length) return;
      const lead = trace.leads.find((l) => l.label === "Lead II") || trace.leads[0];
      const xs = lead.samples.map((_, k) => (k * lead.periodMs) / 1000);
      new uPlot({
        width: Math.max(300, holder.clientWidth || 700),
        height: 160,
        scales: { x: { time: false } },
        axes: [{ label: "s" }, { label: lead.unit }],
        series: [{}, { label: lead.label, stroke: "#b00020", width: 1 }],
        legend: { show: true },
      }, [xs, lead.samples], holder);
      holder.dataset.points = String(xs.length);
    });
  }
  const form = document.getElementById("ecg-upload");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = document.getElementById("ecg-upload-result");
    const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), headers: { "X-CSRFToken": token }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (response.ok) window.location.reload();
    else result.textContent = (body.issue && body.issue[0] && body.issue[0].diagnostics) || String(response.status);
  });
})();
