// Privileges and Other Settings, made smoother. Without this file the form
// still posts what is on screen (plain checkboxes and, for mixed settings,
// radio buttons) and both tabs are shown one after the other.
// - A mixed setting is drawn as one indeterminate checkbox cycling
//   unchanged -> on -> off -> unchanged; it sets the radio buttons, which stay
//   the values that are posted.
// - The tabs follow the WAI-ARIA tabs pattern (roles are in the HTML from the
//   start; arrow keys, Home and End move between tabs).
// - The explanation of the two "Enable scheduled update" options follows
//   every change.
(function () {
  "use strict";

  function valueOf(root, name) {
    const wrap = root.querySelector('.tristate[data-name="' + name + '"]');
    if (!wrap) return "unchanged";
    if (wrap.classList.contains("tristate-mixed-field")) {
      const checked = wrap.querySelector('input[type="radio"]:checked');
      return checked ? checked.value : "unchanged";
    }
    return wrap.querySelector('input[type="checkbox"]').checked ? "on" : "off";
  }

  function describe(root) {
    const box = root.querySelector("#scheduled-description");
    const data = root.querySelector("#scheduled-descriptions");
    if (!box || !data) return;
    const texts = JSON.parse(data.textContent);
    const key = valueOf(root, "scheduled_update_privilege") + "-" + valueOf(root, "scheduled_update_setting");
    box.querySelector(".text").textContent = texts[key];
  }

  function showProxy(box, value) {
    box.checked = value === "on";
    box.indeterminate = value === "unchanged";
    box.setAttribute("aria-checked", value === "unchanged" ? "mixed" : String(value === "on"));
    const mixed = box.parentElement.querySelector(".tristate-mixed");
    if (mixed) mixed.hidden = value !== "unchanged";
  }

  function initMixed(root) {
    root.querySelectorAll(".tristate-mixed-field").forEach(function (wrap) {
      const proxy = wrap.querySelector(".tristate-proxy");
      const box = proxy.querySelector(".tristate-box");
      const choices = wrap.querySelector(".tristate-choices");
      proxy.hidden = false;
      choices.hidden = true;
      const radio = function (value) { return choices.querySelector('input[value="' + value + '"]'); };
      showProxy(box, valueOf(root, wrap.dataset.name));
      box.addEventListener("click", function () {
        const current = valueOf(root, wrap.dataset.name);
        const next = current === "unchanged" ? "on" : current === "on" ? "off" : "unchanged";
        radio(next).checked = true;
        showProxy(box, next);
        describe(root);
      });
    });
    root.querySelectorAll('.tristate:not(.tristate-mixed-field) input[type="checkbox"]').forEach(function (box) {
      box.addEventListener("change", function () { describe(root); });
    });
  }

  function initTabs(root) {
    const tablist = root.querySelector('[role="tablist"]');
    if (!tablist) return;
    const tabs = Array.from(tablist.querySelectorAll('[role="tab"]'));
    function select(tab, focus) {
      tabs.forEach(function (other) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        other.classList.toggle("active", selected);
        const panel = root.querySelector("#" + other.getAttribute("aria-controls"));
        panel.classList.toggle("active", selected);
        panel.classList.toggle("show", selected);
        panel.hidden = !selected;
      });
      if (focus) tab.focus();
    }
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (event) {
        const i = tabs.indexOf(tab);
        let next = null;
        if (event.key === "ArrowRight" || event.key === "ArrowDown") next = tabs[(i + 1) % tabs.length];
        else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = tabs[(i - 1 + tabs.length) % tabs.length];
        else if (event.key === "Home") next = tabs[0];
        else if (event.key === "End") next = tabs[tabs.length - 1];
        if (next) {
          event.preventDefault();
          select(next, true);
        }
      });
    });
    select(tabs.find(function (t) { return t.getAttribute("aria-selected") === "true"; }) || tabs[0], false);
  }

  function init(root) {
    initMixed(root);
    initTabs(root);
    describe(root);
  }

  window.initPrivilegesForm = init;
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("privileges-form");
    if (form && !form.closest("#privileges-modal")) init(form.parentElement);
  });
})();
