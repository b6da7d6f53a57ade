// Live progress: one EventSource per running job on the page (server-sent events from /jobs/<id>/events).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const seen = new Set();
  document.querySelectorAll("progress[data-job]").forEach((bar) => {
    const id = bar.dataset.job;
    if (seen.has(id)) return;
    seen.add(id);
    const source = new EventSource(`/jobs/${encodeURIComponent(id)}/events`);
    source.addEventListener("progress", (event) => {
      const state = JSON.parse(event.data);
      document.querySelectorAll(`[data-status-of="${id}"]`).forEach((el) => { el.textContent = state.status; el.className = `status-${state.status}`; });
      const p = state.progress;
      document.querySelectorAll(`progress[data-job="${id}"]`).forEach((el) => {
        if (p && p.total) { el.max = p.total; el.value = p.step; } else { el.removeAttribute("value"); }
      });
      document.querySelectorAll(`[data-detail-of="${id}"]`).forEach((el) => { el.textContent = p ? `${p.stage} ${p.detail || ""}` : ""; });
    });
    source.addEventListener("end", () => { source.close(); if (document.querySelector("video") === null && location.pathname === `/jobs/${id}`) location.reload(); });
    source.onerror = () => source.close();
  });
});
