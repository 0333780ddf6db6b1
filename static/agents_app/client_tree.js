// The client tree, made smoother. Without this file every control is a link
// or a form: expanding a domain, paging and sorting reload the page with the
// state in the address (?open=5,9:3&sort=status), and Settings submits the
// ticks. With it:
// - a domain expands in place (its children are fetched), pages load in
//   place, and the address and the tree's hidden "open" field follow, so a
//   Save comes back to the same domains and pages;
// - a ticked domain stands for every client under it, so the boxes below it
//   are shown ticked and locked; "select all" ticks a page of clients;
// - the tree follows the WAI-ARIA tree pattern (arrow keys, Home, End, Space);
// - Privileges and Other Settings opens in a modal, and focus goes back to
//   the Settings menu when it closes.
(function () {
  "use strict";
  const form = document.getElementById("tree-form");
  if (!form) return;
  const treeElement = form.querySelector('[role="tree"]');
  const openField = form.querySelector(".tree-open");

  // --- Expanded domains and their pages: "id" or "id:page", comma-separated.
  function openState() {
    const state = new Map();
    (openField ? openField.value : "").split(",").forEach(function (token) {
      const m = /^(\d+)(?::(\d+))?$/.exec(token.trim());
      if (m) state.set(m[1], m[2] ? Number(m[2]) : 1);
    });
    return state;
  }

  function saveState(state) {
    const text = Array.from(state, function (entry) {
      return entry[1] > 1 ? entry[0] + ":" + entry[1] : entry[0];
    }).join(",");
    if (openField) openField.value = text;
    const params = new URLSearchParams(window.location.search);
    params.delete("jump");
    params.delete("page");
    if (text) params.set("open", text); else params.delete("open");
    const query = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

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
      return false;
    }
    container.innerHTML = await response.text();
    const node = container.closest(".tree-node");
    const box = node && node.querySelector(":scope > .tree-row > .tree-check");
    if (box && box.checked) cascade(node, true);
    refreshTabIndex();
    return true;
  }

  function cascade(node, checked) {
    node.querySelectorAll(":scope > .tree-children .tree-check").forEach(function (inner) {
      inner.checked = checked;
      inner.disabled = checked;  // disabled boxes are not submitted: the ancestor stands for them
    });
  }

  function setExpanded(node, open) {
    const toggle = node.querySelector(":scope > .tree-row > .tree-toggle");
    const children = node.querySelector(":scope > .tree-children");
    if (!toggle || !children) return;
    node.setAttribute("aria-expanded", String(open));
    const name = node.querySelector(":scope > .tree-row .domain-name").textContent;
    toggle.setAttribute("aria-label", (open ? "Collapse " : "Expand ") + name);
    toggle.querySelector("i").className = open ? "bi bi-caret-down-fill" : "bi bi-caret-right-fill";
    children.hidden = !open;
    const state = openState();
    if (open) {
      if (!state.has(node.dataset.domain)) state.set(node.dataset.domain, 1);
      if (!children.dataset.loaded) {
        children.dataset.loaded = "1";
        load(children, toggle.dataset.url);
      }
    } else {
      state.delete(node.dataset.domain);
    }
    saveState(state);
    refreshTabIndex();
  }

  function loadPage(pageBox, url, number) {
    const node = pageBox.closest(".tree-node");
    load(pageBox, url).then(function (ok) {
      if (!ok || !node) return;
      const state = openState();
      state.set(node.dataset.domain, number);
      saveState(state);
    });
  }

  form.addEventListener("click", function (event) {
    const toggle = event.target.closest(".tree-toggle");
    if (toggle) {
      event.preventDefault();
      const node = toggle.closest(".tree-node");
      setExpanded(node, node.getAttribute("aria-expanded") !== "true");
      return;
    }
    const pager = event.target.closest(".tree-page");
    if (pager) {
      event.preventDefault();
      loadPage(pager.closest(".client-page"), pager.dataset.url, Number(pager.dataset.url.split("page=").pop()));
      return;
    }
    const go = event.target.closest(".page-jump-go[data-url]");
    if (go) {
      event.preventDefault();
      jump(go.parentElement.querySelector(".page-jump-number"));
    }
  });

  function jump(input) {
    const max = Number(input.max), n = Math.round(Number(input.value));
    if (!(n >= 1 && n <= max)) {
      input.setCustomValidity("Enter a page from 1 to " + max + ".");
      input.reportValidity();
      return;
    }
    input.setCustomValidity("");
    loadPage(input.closest(".client-page"), input.dataset.url + n, n);
  }

  form.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.matches(".page-jump-number[data-url]")) {
      event.preventDefault();
      jump(event.target);
    }
  });

  form.addEventListener("change", function (event) {
    const box = event.target;
    if (box.classList.contains("select-page")) {
      box.closest("table").querySelectorAll('tbody .tree-check[name="client"]:not(:disabled)').forEach(function (row) {
        row.checked = box.checked;
      });
      return;
    }
    if (!box.classList.contains("tree-check")) return;
    const node = box.closest(".tree-node");
    if (box.name === "root" || box.name === "domain") cascade(node, box.checked);
    if (box.name === "client") {
      const table = box.closest("table");
      const all = table.querySelector(".select-page");
      const rows = Array.from(table.querySelectorAll('tbody .tree-check[name="client"]'));
      // Without JavaScript this box posts the page's ids itself; here it mirrors the rows.
      if (all) all.checked = rows.every(function (r) { return r.checked; });
    }
  });

  // --- WAI-ARIA tree keyboard: one treeitem in the tab order, arrows move.
  function visibleItems() {
    return Array.from(treeElement.querySelectorAll('[role="treeitem"]')).filter(function (item) {
      return !item.parentElement.closest("[hidden]");
    });
  }

  function refreshTabIndex() {
    if (!treeElement) return;
    const items = visibleItems();
    const current = items.find(function (i) { return i.tabIndex === 0; }) || items[0];
    treeElement.querySelectorAll('[role="treeitem"]').forEach(function (item) {
      item.tabIndex = item === current ? 0 : -1;
    });
  }

  function focusItem(item) {
    if (!item) return;
    treeElement.querySelectorAll('[role="treeitem"]').forEach(function (other) { other.tabIndex = -1; });
    item.tabIndex = 0;
    item.focus();
  }

  if (treeElement) {
    refreshTabIndex();
    treeElement.addEventListener("keydown", function (event) {
      const item = event.target;
      if (item.getAttribute("role") !== "treeitem") return;
      const items = visibleItems();
      const i = items.indexOf(item);
      const isRoot = item.classList.contains("tree-root");
      const expanded = item.getAttribute("aria-expanded") === "true";
      let handled = true;
      if (event.key === "ArrowDown") focusItem(items[i + 1]);
      else if (event.key === "ArrowUp") focusItem(items[i - 1]);
      else if (event.key === "Home") focusItem(items[0]);
      else if (event.key === "End") focusItem(items[items.length - 1]);
      else if (event.key === "ArrowRight") {
        if (!expanded && !isRoot) setExpanded(item, true);
        else focusItem(item.querySelector('[role="group"] > [role="treeitem"]'));
      } else if (event.key === "ArrowLeft") {
        if (expanded && !isRoot) setExpanded(item, false);
        else focusItem(item.parentElement.closest('[role="treeitem"]'));
      } else if (event.key === " ") {
        const box = item.querySelector(":scope > .tree-row > .tree-check");
        if (box && !box.disabled) box.click();
      } else handled = false;
      if (handled) event.preventDefault();
    });
  }

  // --- Settings > Privileges and Other Settings in a modal; without
  // JavaScript the same form opens as a page.
  const modalElement = document.getElementById("privileges-modal");
  const settingsMenu = document.getElementById("settings-details");
  form.addEventListener("submit", async function (event) {
    if (!modalElement || !window.bootstrap) return;
    // Update Now goes to Manual Update (its formaction) with the same ticks, as a page.
    if (event.submitter && event.submitter.hasAttribute("formaction")) return;
    event.preventDefault();
    const params = new URLSearchParams(new FormData(form));
    params.set("partial", "1");
    const response = await fetch(form.action + "?" + params.toString(), { credentials: "same-origin" });
    const content = document.getElementById("privileges-modal-content");
    content.innerHTML = await response.text();
    if (window.initPrivilegesForm) window.initPrivilegesForm(content);
    if (settingsMenu) settingsMenu.open = false;
    window.bootstrap.Modal.getOrCreateInstance(modalElement).show();
  });
  if (modalElement) {
    // Focus returns to the control that opened the dialog.
    modalElement.addEventListener("hidden.bs.modal", function () {
      const opener = settingsMenu && settingsMenu.querySelector("summary");
      if (opener) opener.focus();
    });
  }
})();
