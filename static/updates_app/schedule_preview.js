// The schedule load preview on the Automatic Update screen.
//
// The screen has <div id="schedule-preview" data-preview-url="..."> under the
// schedule options, and its form dispatches a "schedule-change" event when the
// frequency, start time, period, weekday or interval changes. On that event
// (and once on load) this asks the server for the preview fragment of the
// form's current values and puts it in the box. The fragment is rendered and
// escaped by the server; a 400 answer carries the reason, shown the same way.
(function () {
  "use strict";
  const FIELDS = ["frequency", "start_time", "period_hours", "weekday", "interval_minutes", "interval_hours", "config_once_per_day"];
  const box = document.getElementById("schedule-preview");
  if (!box) return;
  const url = box.dataset.previewUrl || "/updates/automatic/preview/";
  // Not just any form: the navigation bar has a logout form.
  const form = box.closest("form") || document.querySelector("form[data-schedule-form]");
  let timer = null;
  let latest = 0;

  function query() {
    const params = new URLSearchParams();
    if (!form) return params;
    const data = new FormData(form);
    for (const name of FIELDS) {
      for (const value of data.getAll(name)) params.append(name, value);
    }
    // A start time split into hour and minute fields is sent as HH:MM.
    if (!data.has("start_time") && data.has("start_hour")) {
      const pad = (v) => String(v).padStart(2, "0");
      params.set("start_time", pad(data.get("start_hour")) + ":" + pad(data.get("start_minute") || 0));
    }
    return params;
  }

  async function refresh() {
    const ticket = ++latest;
    box.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url + "?" + query().toString(), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      const html = await response.text();
      // An older answer arriving after a newer one must not overwrite it.
      if (ticket === latest) box.innerHTML = html;
    } catch (error) {
      if (ticket === latest) box.textContent = "The preview could not be loaded: " + error.message;
    } finally {
      if (ticket === latest) box.removeAttribute("aria-busy");
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  }

  (form || document).addEventListener("schedule-change", schedule);
  if (form) document.addEventListener("schedule-change", (event) => { if (event.target !== form) schedule(); });
  refresh();
})();
