// voxelhub dashboard: small enhancements on top of server-rendered pages and htmx.
// Everything here is optional; without it links and forms still work.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  const TOAST_MS = { success: 6000, info: 6000, error: 12000 };

  function toast(level, text) {
    const region = document.getElementById("toasts");
    if (!region) return;
    const box = document.createElement("div");
    box.className = "toast toast-" + level;
    box.setAttribute("data-toast", "");
    const p = document.createElement("p");
    p.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.setAttribute("data-dismiss-toast", "");
    close.textContent = "×";
    box.append(p, close);
    region.append(box);
    armToast(box);
  }

  function armToast(box) {
    if (box.dataset.armed) return;
    box.dataset.armed = "1";
    const level = (box.className.match(/toast-(\w+)/) || [])[1] || "info";
    setTimeout(() => box.remove(), TOAST_MS[level] || 6000);
  }

  // Rows: focusable, Enter or a click anywhere opens the details. The link in the
  // name cell stays the no-JavaScript path, so it leaves the tab order here.
  function enhance(root) {
    root.querySelectorAll("[data-dataset-row]").forEach((row) => {
      row.tabIndex = 0;
      const link = row.querySelector(".dataset-link");
      if (link) {
        link.tabIndex = -1;
        row.setAttribute("aria-label", link.textContent.trim());
      }
    });
    root.querySelectorAll("[data-toast]").forEach(armToast);
    root.querySelectorAll("img.thumb, img.preview").forEach((img) => {
      if (img.complete && img.naturalWidth === 0 && img.src) img.classList.add("is-broken");
    });
  }

  function select(row) {
    document.querySelectorAll("[data-dataset-row].is-selected").forEach((other) => {
      other.classList.remove("is-selected");
      other.removeAttribute("aria-current");
    });
    row.classList.add("is-selected");
    row.setAttribute("aria-current", "true");
  }

  function openRow(row) {
    const link = row.querySelector(".dataset-link");
    if (!link) return;
    select(row);
    link.click();
  }

  document.addEventListener("click", (event) => {
    const menu = document.querySelector(".user-menu[open]");
    if (menu && !menu.contains(event.target)) menu.open = false;
    const dismiss = event.target.closest("[data-dismiss-toast]");
    if (dismiss) {
      dismiss.closest("[data-toast]").remove();
      return;
    }
    const row = event.target.closest("[data-dataset-row]");
    if (row) {
      const link = event.target.closest(".dataset-link");
      if (link) {
        // Modified clicks open the dataset page in a new tab, as links do.
        if (event.ctrlKey || event.metaKey || event.shiftKey) event.stopImmediatePropagation();
        else select(row);
        return;
      }
      if (!event.target.closest("a, button, input, select")) openRow(row);
    }
  }, true);

  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      const search = document.getElementById("search");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
      return;
    }
    if (event.key === "Enter" && event.target.matches("[data-dataset-row]")) {
      event.preventDefault();
      openRow(event.target);
      return;
    }
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && event.target.matches("[data-dataset-row]")) {
      const next = event.key === "ArrowDown" ? event.target.nextElementSibling : event.target.previousElementSibling;
      if (next) {
        event.preventDefault();
        next.focus();
      }
      return;
    }
    if (event.key === "Escape") {
      const menu = document.querySelector(".user-menu[open]");
      if (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    }
  });

  // Thumbnails the datastore refuses (no viewer token yet, node offline) are hidden
  // instead of showing a broken-image icon.
  document.addEventListener("error", (event) => {
    if (event.target instanceof HTMLImageElement) event.target.classList.add("is-broken");
  }, true);

  document.addEventListener("change", (event) => {
    const form = event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  // Registered before htmx's own start-up, so its first load event (the body) counts.
  if (window.htmx) window.htmx.onLoad(enhance);
  else document.addEventListener("DOMContentLoaded", () => enhance(document));

  // htmx does not swap error answers: say what happened instead of doing nothing.
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    const what = status === 404 ? "Not found (it may have been removed or hidden)"
      : status === 403 ? "Not allowed"
      : "The server answered with an error (" + status + ")";
    toast("error", what + ".");
  });
  document.addEventListener("htmx:sendError", () => {
    toast("error", "The server cannot be reached. Check your connection and try again.");
  });

  window.voxelhub = { toast };
})();
