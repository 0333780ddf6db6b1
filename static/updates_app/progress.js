// Live progress for the Update Summary and run pages, without a full reload:
// counts come from the run-progress JSON endpoint, and a block marked with
// data-refresh-url is re-fetched as an HTML fragment.
(function () {
  "use strict";
  const root = document.querySelector("[data-progress-url]");
  if (!root) return;
  const url = root.dataset.progressUrl;
  const stamp = document.getElementById("progress-stamp");
  const SEGMENTS = ["delivered", "retrying", "gave_up", "pending"];

  function apply(runId, counts) {
    document.querySelectorAll('[data-run-id="' + runId + '"][data-field]').forEach(function (el) {
      const value = counts[el.dataset.field];
      if (value !== undefined) el.textContent = value;
    });
    document.querySelectorAll('[data-run-id="' + runId + '"][data-segment]').forEach(function (el) {
      const total = counts.total || 0;
      const share = total ? (100 * counts[el.dataset.segment]) / total : 0;
      el.style.width = share.toFixed(2) + "%";
    });
  }

  async function refreshCounts() {
    const ids = Array.from(new Set(Array.from(document.querySelectorAll("[data-run-id]")).map(function (el) {
      return el.dataset.runId;
    })));
    if (!ids.length) return;
    const query = ids.map(function (id) { return "run=" + encodeURIComponent(id); }).join("&");
    const response = await fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    Object.keys(data.runs).forEach(function (runId) { apply(runId, data.runs[runId]); });
    if (data.at) serverTime = data.at;
  }

  async function refreshFragments() {
    for (const block of document.querySelectorAll("[data-refresh-url]")) {
      const response = await fetch(block.dataset.refreshUrl, { credentials: "same-origin" });
      if (response.ok) block.innerHTML = await response.text();
    }
  }

  // The server's clock in the console's one date-time format (server time zone), from the progress answer.
  let serverTime = "";

  async function tick() {
    try {
      await refreshCounts();
      await refreshFragments();
      if (stamp && serverTime) stamp.textContent = "updated " + serverTime;
    } catch (error) {
      if (stamp) stamp.textContent = "live refresh paused: " + error;
    }
  }

  setInterval(tick, Number(root.dataset.progressEvery || 3000));
})();
