// The client tree: expand a domain to load its children on demand, page
// through its clients, and tick nodes. A ticked domain stands for every
// client under it, so the boxes below it are shown ticked and locked.
(function () {
  "use strict";
  const tree = document.getElementById("tree-form");
  if (!tree) return;

  async function load(container, url) {
    container.setAttribute("aria-busy", "true");
    const response = await fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
    container.removeAttribute("aria-busy");
    if (!response.ok) {
      container.innerHTML = "";
      const p = document.createElement("p");
      p.className = "small text-danger";
      p.textContent = "Could not load this domain (" + response.status + "). Reload the page.";
      container.appendChild(p);
      return;
    }
    container.innerHTML = await response.text();
    const node = container.closest(".tree-node");
    const box = node && node.querySelector(":scope > .tree-row > .tree-check");
    if (box && box.checked) cascade(node, true);
  }

  function cascade(node, checked) {
    node.querySelectorAll(":scope > .tree-children .tree-check").forEach(function (inner) {
      inner.checked = checked;
      inner.disabled = checked;  // disabled boxes are not submitted: the ancestor stands for them
    });
  }

  tree.addEventListener("click", function (event) {
    const toggle = event.target.closest(".tree-toggle");
    if (toggle) {
      const node = toggle.closest(".tree-node");
      const children = node.querySelector(":scope > .tree-children");
      const open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", open ? "false" : "true");
      toggle.querySelector("i").className = open ? "bi bi-caret-right-fill" : "bi bi-caret-down-fill";
      children.hidden = open;
      if (!open && !children.dataset.loaded) {
        children.dataset.loaded = "1";
        load(children, toggle.dataset.url);
      }
      return;
    }
    const pager = event.target.closest(".tree-page");
    if (pager) {
      load(pager.closest(".client-page"), pager.dataset.url);
    }
  });

  tree.addEventListener("change", function (event) {
    const box = event.target;
    if (!box.classList.contains("tree-check")) return;
    const node = box.closest(".tree-node");
    if (box.name === "root" || box.name === "domain") cascade(node, box.checked);
  });

  // Settings > Privileges and Other Settings opens in a modal; without
  // JavaScript the same form opens as a page.
  const modalElement = document.getElementById("privileges-modal");
  tree.addEventListener("submit", async function (event) {
    if (!modalElement || !window.bootstrap) return;
    // Update Now goes to Manual Update (its formaction) with the same ticks, as a page.
    if (event.submitter && event.submitter.hasAttribute("formaction")) return;
    event.preventDefault();
    const params = new URLSearchParams(new FormData(tree));
    params.set("partial", "1");
    const response = await fetch(tree.action + "?" + params.toString(), { credentials: "same-origin" });
    const content = document.getElementById("privileges-modal-content");
    content.innerHTML = await response.text();
    if (window.initPrivilegesForm) window.initPrivilegesForm(content);
    window.bootstrap.Modal.getOrCreateInstance(modalElement).show();
  });
})();
