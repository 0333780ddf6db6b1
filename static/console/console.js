// Smoother menus on every page. The menus are <details> elements and work
// without JavaScript; this closes an open one on a click elsewhere or Escape
// (focus back on its summary), and keeps one open at a time.
(function () {
  "use strict";
  function menus() { return document.querySelectorAll("details.menu-details"); }
  document.addEventListener("click", function (event) {
    menus().forEach(function (menu) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
  });
  document.addEventListener("toggle", function (event) {
    const opened = event.target;
    if (!(opened instanceof HTMLDetailsElement) || !opened.classList.contains("menu-details") || !opened.open) return;
    menus().forEach(function (menu) { if (menu !== opened) menu.open = false; });
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    menus().forEach(function (menu) {
      if (menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  });
})();

// Small behaviours shared by every console page, wired from data attributes
// (the Content-Security-Policy allows no inline scripts or on* handlers).
(function () {
  "use strict";
  // <form data-confirm="Question?">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  // <select data-autosubmit>: submit its form when the choice changes.
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
})();
