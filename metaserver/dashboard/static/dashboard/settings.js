// Dataset settings and import screen: tabs with arrow keys, copy button, typed-name
// delete confirmation, slider mirror, JSON line numbers. The pages work without it.
(function () {
  "use strict";

  // The server's toasts for htmx answers (HX-Trigger: {"vh-toast": {level, text}}).
  document.addEventListener("vh-toast", (event) => {
    const detail = event.detail || {};
    if (window.voxelhub && detail.text) window.voxelhub.toast(detail.level || "info", detail.text);
  });

  // Tabs (WAI-ARIA): one tab stop; arrows, Home and End move and open the tab.
  function setUpTabs(root) {
    root.querySelectorAll("[data-tablist]").forEach((list) => {
      const tabs = Array.from(list.querySelectorAll('[role="tab"]'));
      tabs.forEach((tab) => {
        tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
      });
    });
  }

  let focusTabAfterSwap = null;

  document.addEventListener("keydown", (event) => {
    const tab = event.target.closest && event.target.closest('[data-tablist] [role="tab"]');
    if (!tab) return;
    const tabs = Array.from(tab.closest("[data-tablist]").querySelectorAll('[role="tab"]'));
    const at = tabs.indexOf(tab);
    let next = null;
    if (event.key === "ArrowRight") next = tabs[(at + 1) % tabs.length];
    else if (event.key === "ArrowLeft") next = tabs[(at - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    else if (event.key === " " || event.key === "Enter") next = tab;
    if (!next) return;
    event.preventDefault();
    next.focus();
    if (next.getAttribute("aria-selected") !== "true") {
      focusTabAfterSwap = next.id;
      next.click();
    }
  });

  // Line numbers next to a JSON textarea, scrolled with it.
  function setUpCodeEditor(editor) {
    const area = editor.querySelector("textarea");
    const gutter = editor.querySelector("[data-gutter]");
    if (!area || !gutter) return;
    let shown = 0;
    const update = () => {
      const lines = area.value.split("\n").length;
      if (lines !== shown) {
        shown = lines;
        gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
      }
      gutter.scrollTop = area.scrollTop;
    };
    area.addEventListener("input", update);
    area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
    update();
  }

  // Put the caret where the JSON parser stopped, and show that line.
  function markErrorPosition(area) {
    const line = parseInt(area.dataset.errorLine || "0", 10);
    if (!line) return;
    const column = parseInt(area.dataset.errorColumn || "1", 10);
    const lines = area.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    offset += Math.max(0, column - 1);
    area.focus({ preventScroll: true });
    area.setSelectionRange(offset, offset);
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 4) * lineHeight);
  }

  function syncDeleteButton(form) {
    const input = form.querySelector("[data-expected]");
    const button = form.querySelector("[data-delete-button]");
    if (!input || !button) return;
    button.disabled = input.value.trim() !== input.dataset.expected;
  }

  // After a refused save the button that was pressed may be far below the list of
  // problems: show the list and move focus there (or to the JSON error's spot).
  function showProblems(root) {
    const alert = root.querySelector(".notice-error[role=alert]");
    if (!alert) return;
    alert.scrollIntoView({ block: "nearest" });
    const errorArea = root.querySelector("textarea[data-error-line]");
    if (errorArea) {
      markErrorPosition(errorArea);
      return;
    }
    alert.tabIndex = -1;
    alert.focus({ preventScroll: true });
  }

  function enhance(root) {
    setUpTabs(root);
    root.querySelectorAll("[data-code-editor]").forEach(setUpCodeEditor);
    showProblems(root);
    root.querySelectorAll("[data-delete-form]").forEach(syncDeleteButton);
    root.querySelectorAll("input[type=range][data-mirror]").forEach((range) => {
      const number = document.querySelector(range.dataset.mirror);
      if (number && number.value === "") range.value = range.getAttribute("value") || "20";
    });
    if (focusTabAfterSwap) {
      const tab = document.getElementById(focusTabAfterSwap);
      focusTabAfterSwap = null;
      if (tab) tab.focus();
    }
  }

  document.addEventListener("input", (event) => {
    const target = event.target;
    const form = target.closest("[data-delete-form]");
    if (form) syncDeleteButton(form);
    if (target.matches("input[type=range][data-mirror]")) {
      const number = document.querySelector(target.dataset.mirror);
      if (number) number.value = target.value;
    } else if (target.matches(".range-number")) {
      const range = target.closest(".range-row").querySelector("input[type=range]");
      const value = parseFloat(target.value);
      if (range && Number.isFinite(value)) range.value = String(value);
    }
  });

  // Copy the sharing link: the Clipboard API where allowed (secure contexts),
  // else a selection and execCommand, else the link stays selected to copy by hand.
  async function copyFrom(input) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(input.value);
        return true;
      } catch (_) { /* refused: fall back below */ }
    }
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch (_) {
      return false;
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const input = document.querySelector(button.dataset.copy);
    if (!input) return;
    const status = document.getElementById("copy-status");
    const copied = await copyFrom(input);
    if (status) status.textContent = copied ? "Copied to the clipboard." : "Press Ctrl+C to copy the selected link.";
  });

  document.addEventListener("focusin", (event) => {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  // A tab is loading: dim the panel instead of leaving the old one looking current.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const settings = document.getElementById("settings");
    if (settings && event.target.closest && event.target.closest('[role="tab"], .segmented')) {
      settings.classList.add("is-loading");
    }
  });
  document.addEventListener("htmx:afterRequest", () => {
    const settings = document.getElementById("settings");
    if (settings) settings.classList.remove("is-loading");
  });

  if (window.htmx) window.htmx.onLoad(enhance);
  else document.addEventListener("DOMContentLoaded", () => enhance(document));
})();
