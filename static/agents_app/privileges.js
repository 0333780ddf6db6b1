// Privileges and Other Settings: tri-state checkboxes and the plain-words
// description of the two "Enable scheduled update" options.
// A mixed setting starts indeterminate ("unchanged") and cycles
// unchanged -> on -> off -> unchanged; a unanimous one toggles on/off.
(function () {
  "use strict";

  function describe(root) {
    const box = root.querySelector("#scheduled-description");
    const data = root.querySelector("#scheduled-descriptions");
    if (!box || !data) return;
    const texts = JSON.parse(data.textContent);
    const privilege = root.querySelector("input.tristate-value[name=scheduled_update_privilege]").value;
    const setting = root.querySelector("input.tristate-value[name=scheduled_update_setting]").value;
    let text;
    if (privilege === "off") {
      text = texts["off-off"];
    } else if (privilege === "unchanged" || setting === "unchanged") {
      text = "The selected clients differ, so each keeps its own combination of the two options unless you set them. " +
        (privilege === "on" ? "With option 1 on: " + (setting === "unchanged" ? "" : texts["on-" + setting]) : "");
    } else {
      text = texts[privilege + "-" + setting];
    }
    box.querySelector(".text").textContent = text;
  }

  function show(box, value) {
    box.checked = value === "on";
    box.indeterminate = value === "unchanged";
    const mixed = box.parentElement.querySelector(".tristate-mixed");
    if (mixed) mixed.hidden = value !== "unchanged";
  }

  function init(root) {
    root.querySelectorAll(".tristate").forEach(function (wrap) {
      const hidden = wrap.querySelector(".tristate-value");
      const box = wrap.querySelector(".tristate-box");
      const wasMixed = box.dataset.initial === "unchanged";
      show(box, hidden.value);
      box.addEventListener("click", function () {
        let next;
        if (hidden.value === "unchanged") next = "on";
        else if (hidden.value === "on") next = "off";
        else next = wasMixed ? "unchanged" : "on";
        hidden.value = next;
        show(box, next);
        describe(root);
      });
    });
    describe(root);
  }

  window.initPrivilegesForm = init;
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("privileges-form");
    if (form) init(form.parentElement);
  });
})();
