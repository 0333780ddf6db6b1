/*
 * Automatic Update screen: show only the schedule options that apply to the
 * chosen frequency, and enable "Include roaming and offline client(s)" only
 * while its parent option is on. The server enforces the same rules.
 *
 * Hook for the schedule preview: whenever the frequency, an
 * interval, the start time, the time period or the weekday changes, and once
 * when the page loads, the form dispatches a bubbling CustomEvent
 * "schedule-change" whose detail is
 *   {frequency, intervalMinutes, intervalHours, startTime, periodHours, weekday, initial}
 * (numbers or null, startTime "HH:MM" or "", weekday 0=Monday..6 or null).
 * Listen with: form.addEventListener("schedule-change", (e) => ...).
 */
(() => {
  "use strict";
  const form = document.getElementById("automatic-update-form");
  if (!form) return;
  const readOnly = form.dataset.readOnly === "true";
  const SCHEDULE_FIELDS = ["frequency", "interval_minutes", "interval_hours", "start_time", "period_hours", "weekday"];

  function frequency() {
    const checked = form.querySelector('input[name="frequency"]:checked');
    return checked ? checked.value : null;
  }

  function showOptionsFor(freq) {
    form.querySelectorAll("[data-frequencies]").forEach((wrapper) => {
      wrapper.hidden = !wrapper.dataset.frequencies.split(" ").includes(freq);
    });
  }

  // A sub-option is off and disabled while its parent is off; what it was is
  // remembered so that ticking the parent again brings it back.
  function syncSubOption(sub) {
    const parent = document.getElementById(sub.dataset.parent);
    if (!parent || readOnly) return;
    if (parent.checked) {
      sub.disabled = false;
      if (sub.dataset.wasChecked === "true") sub.checked = true;
      delete sub.dataset.wasChecked;
    } else if (!sub.disabled) {
      sub.dataset.wasChecked = String(sub.checked);
      sub.checked = false;
      sub.disabled = true;
    }
  }

  function number(name) {
    const input = form.elements[name];
    if (!input || input.value === "") return null;
    const value = Number(input.value);
    return Number.isFinite(value) ? value : null;
  }

  function announceSchedule(initial) {
    const startTime = form.elements.start_time;
    form.dispatchEvent(
      new CustomEvent("schedule-change", {
        bubbles: true,
        detail: {
          frequency: frequency(),
          intervalMinutes: number("interval_minutes"),
          intervalHours: number("interval_hours"),
          startTime: startTime ? startTime.value : "",
          periodHours: number("period_hours"),
          weekday: number("weekday"),
          initial: Boolean(initial),
        },
      }),
    );
  }

  const subOptions = form.querySelectorAll("input[data-parent]");
  subOptions.forEach((sub) => {
    const parent = document.getElementById(sub.dataset.parent);
    if (parent) parent.addEventListener("change", () => syncSubOption(sub));
    syncSubOption(sub);
  });

  form.addEventListener("change", (event) => {
    if (event.target.name === "frequency") showOptionsFor(frequency());
    if (SCHEDULE_FIELDS.includes(event.target.name)) announceSchedule(false);
  });
  form.addEventListener("input", (event) => {
    if (SCHEDULE_FIELDS.includes(event.target.name) && event.target.name !== "frequency") announceSchedule(false);
  });

  showOptionsFor(frequency());
  announceSchedule(true);
})();
