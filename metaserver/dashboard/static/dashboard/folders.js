// voxelhub datasets home: folder tree, filters, multi-selection, drag and drop.
// Server-rendered HTML stays the source of truth: changes are small POSTs whose
// answers carry the redrawn tree (folders) or a message (moves); the table is
// reloaded through htmx. Without this file links and forms still work.
(function () {
  "use strict";

  const COLLAPSED_KEY = "voxelhub.folders.collapsed";
  const DATASETS_TYPE = "application/x-voxelhub-datasets";
  const FOLDER_TYPE = "application/x-voxelhub-folder";
  const OFFLINE = "The server cannot be reached. Check your connection and try again.";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function toast(level, text) {
    if (window.voxelhub && window.voxelhub.toast) window.voxelhub.toast(level, text);
  }

  function tree() { return $("[data-folder-tree]"); }
  function table() { return $("#dataset-table"); }
  function csrf() {
    const nav = tree();
    return (nav && nav.dataset.csrf) || "";
  }
  function folderItem(id) { return $(`.tree-item[data-folder-id="${CSS.escape(String(id))}"]`); }
  function folderName(item) { return item ? item.dataset.folderName : ""; }
  function foldersUrl() { return tree().dataset.treeUrl; }

  // ---- Requests -------------------------------------------------------------

  async function post(url, fields) {
    const body = fields instanceof FormData ? fields : new FormData();
    if (!(fields instanceof FormData)) {
      for (const [name, value] of Object.entries(fields || {})) {
        for (const one of Array.isArray(value) ? value : [value]) body.append(name, one);
      }
    }
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      });
    } catch (error) {
      return { ok: false, error: OFFLINE };
    }
    let answer = null;
    if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
      try { answer = await response.json(); } catch (error) { answer = null; }
    }
    if (!answer) {
      // A login page after a redirect: the session ended.
      return {
        ok: false,
        status: response.status,
        error: response.status === 403 ? "Not allowed." : "Your session may have ended: reload the page and try again.",
      };
    }
    return Object.assign({ ok: response.ok, status: response.status }, answer);
  }

  // ---- Navigation: folder, subfolders, tags, all kept in the URL -------------

  // One table load at a time, the latest wins: htmx.ajax finds its target when
  // called, so a load queued behind another would swap into a replaced table.
  let loading = null;
  let nextUrl = null;
  let wantedUrl = null;  // where the table is going, before the address bar follows

  function loadTable(url) {
    if (!table() || !window.htmx) {
      window.location.assign(url);
      return;
    }
    wantedUrl = url;
    if (loading) {
      nextUrl = url;
      return;
    }
    loading = Promise.resolve(
      window.htmx.ajax("GET", url, { source: document.body, target: "#dataset-table", swap: "outerHTML" })
    ).catch(() => {}).then(() => {
      loading = null;
      if (!nextUrl) wantedUrl = null;
      if (nextUrl) {
        const next = nextUrl;
        nextUrl = null;
        loadTable(next);
      }
    });
  }

  function navigate(change, keepPage) {
    const base = new URL(wantedUrl || window.location.href, window.location.href);
    const params = new URLSearchParams(base.search);
    change(params);
    if (!keepPage) params.delete("page");
    const query = params.toString();
    loadTable(window.location.pathname + (query ? "?" + query : ""));
  }

  function refreshTable() {
    navigate(() => {}, true);
  }

  function showFolder(id) {
    navigate((params) => {
      if (id) params.set("folder", id);
      else {
        params.delete("folder");
        params.delete("recursive");
      }
    });
  }

  // ---- The tree: current folder, collapsed folders ---------------------------

  function collapsedIds() {
    try {
      const ids = JSON.parse(window.localStorage.getItem(COLLAPSED_KEY) || "[]");
      return new Set(Array.isArray(ids) ? ids.map(String) : []);
    } catch (error) {
      return new Set();
    }
  }

  function saveCollapsed(ids) {
    try {
      window.localStorage.setItem(COLLAPSED_KEY, JSON.stringify(Array.from(ids)));
    } catch (error) { /* private mode: the state just is not remembered */ }
  }

  function setExpanded(item, expanded) {
    const twisty = $(":scope > .tree-row > [data-twisty]", item);
    if (!twisty) return;
    item.classList.toggle("is-collapsed", !expanded);
    twisty.setAttribute("aria-expanded", expanded ? "true" : "false");
    twisty.setAttribute("aria-label", (expanded ? "Collapse " : "Expand ") + folderName(item));
  }

  function toggleFolder(item, expanded) {
    const ids = collapsedIds();
    const id = item.dataset.folderId;
    if (expanded === undefined) expanded = ids.has(id);
    if (expanded) ids.delete(id);
    else ids.add(id);
    saveCollapsed(ids);
    setExpanded(item, expanded);
  }

  function applyCollapsed() {
    const ids = collapsedIds();
    $$(".tree-item[data-folder-id]").forEach((item) => setExpanded(item, !ids.has(item.dataset.folderId)));
  }

  function currentFolderId() {
    const region = table();
    if (region) return region.dataset.folder || "";
    return new URLSearchParams(window.location.search).get("folder") || "";
  }

  function syncTree() {
    const nav = tree();
    if (!nav) return;
    const current = currentFolderId();
    $$("[data-folder-link]", nav).forEach((link) => {
      if (link.dataset.folderLink === current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
    // The current folder is never hidden inside a collapsed one.
    let item = current ? folderItem(current) : null;
    while (item) {
      const parent = item.parentElement.closest(".tree-item[data-folder-id]");
      if (parent && parent.classList.contains("is-collapsed")) setExpanded(parent, true);
      item = parent;
    }
  }

  function replaceTree(html, focusFolder) {
    const old = tree();
    if (!old || !html) return;
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    old.replaceWith(fresh);
    applyCollapsed();
    syncTree();
    if (focusFolder) {
      const item = folderItem(focusFolder);
      let parent = item && item.parentElement.closest(".tree-item[data-folder-id]");
      while (parent) {
        setExpanded(parent, true);
        parent = parent.parentElement.closest(".tree-item[data-folder-id]");
      }
      const target = item && $(":scope > .tree-row .folder-link", item);
      if (target) target.focus();
    }
  }

  // ---- Context menu and its actions -----------------------------------------

  let menu = null;

  function closeMenu(restoreFocus) {
    if (!menu) return;
    const opener = menu.opener;
    menu.remove();
    menu = null;
    if (restoreFocus && opener && document.contains(opener)) opener.focus();
  }

  function openMenu(item, x, y, opener) {
    closeMenu(false);
    const isRoot = item.hasAttribute("data-root");
    const actions = [
      ["New folder", () => startCreate(item)],
      isRoot ? null : ["Rename", () => startRename(item)],
      ["Edit allowed teams", () => openTeams(item)],
      isRoot ? null : ["Delete", () => confirmDelete(item), "is-danger"],
    ].filter(Boolean);
    menu = document.createElement("div");
    menu.className = "context-menu";
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Folder " + folderName(item));
    menu.opener = opener;
    for (const [label, run, extra] of actions) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "context-item" + (extra ? " " + extra : "");
      button.setAttribute("role", "menuitem");
      button.tabIndex = -1;
      button.textContent = label;
      button.addEventListener("click", () => {
        closeMenu(false);
        run();
      });
      menu.append(button);
    }
    document.body.append(menu);
    const box = menu.getBoundingClientRect();
    menu.style.left = Math.max(4, Math.min(x, window.innerWidth - box.width - 8)) + "px";
    menu.style.top = Math.max(4, Math.min(y, window.innerHeight - box.height - 8)) + "px";
    menu.querySelector("button").focus();
  }

  function menuKeys(event) {
    const items = $$(".context-item", menu);
    const index = items.indexOf(document.activeElement);
    const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: items.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      items[(moves[event.key] + items.length) % items.length].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu(true);
    } else if (event.key === "Tab") {
      closeMenu(true);
    }
  }

  function inlineEditor(item, value, label, submit) {
    const editor = document.createElement("div");
    editor.className = "folder-editor";
    const input = document.createElement("input");
    input.type = "text";
    input.className = "folder-input";
    input.value = value;
    input.setAttribute("aria-label", label);
    input.maxLength = 255;
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = "folder-editor-error";
    error.hidden = true;
    editor.append(input, error);
    let busy = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      editor.dispatchEvent(new CustomEvent("folder-editor-close"));
    };
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish();
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (busy) return;
        busy = true;
        input.setAttribute("aria-busy", "true");
        const answer = await submit(input.value);
        busy = false;
        input.removeAttribute("aria-busy");
        if (answer.ok) {
          done = true;
          toast("success", answer.message);
          replaceTree(answer.tree, answer.folder || item.dataset.folderId);
        } else {
          error.textContent = answer.error;
          error.hidden = false;
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", error.id);
          input.focus();
          input.select();
        }
      }
    });
    input.addEventListener("input", () => {
      error.hidden = true;
      input.removeAttribute("aria-invalid");
    });
    input.addEventListener("blur", () => {
      // Clicking elsewhere gives up, unless the server is still answering.
      setTimeout(() => {
        if (!busy && !done && document.activeElement !== input) finish();
      }, 150);
    });
    return { editor, input };
  }

  function startCreate(parent) {
    setExpanded(parent, true);
    const ids = collapsedIds();
    ids.delete(parent.dataset.folderId);
    saveCollapsed(ids);
    let group = $(":scope > .tree-group", parent);
    if (!group) {
      group = document.createElement("ul");
      group.className = "tree-group";
      group.setAttribute("role", "list");
      parent.append(group);
    }
    const li = document.createElement("li");
    li.className = "tree-item is-editing";
    const row = document.createElement("div");
    row.className = "tree-row";
    row.style.setProperty("--depth", String(Number(parent.dataset.depth || 0) + 1));
    const { editor, input } = inlineEditor(
      parent,
      "",
      "Name of the new folder in " + folderName(parent),
      (name) => post(tree().dataset.createUrl, { parent: parent.dataset.folderId, name })
    );
    row.append(editor);
    li.append(row);
    group.prepend(li);
    editor.addEventListener("folder-editor-close", () => {
      li.remove();
      if (!group.children.length && !$(":scope > .tree-row > [data-twisty]", parent)) group.remove();
      const link = $(":scope > .tree-row .folder-link", parent);
      if (link) link.focus();
    });
    input.focus();
  }

  function startRename(item) {
    const row = $(":scope > .tree-row", item);
    const label = $(".folder-link", row);
    const { editor, input } = inlineEditor(
      item,
      folderName(item),
      "New name of folder " + folderName(item),
      (name) => post(`${foldersUrl()}${item.dataset.folderId}/rename/`, { name })
    );
    label.hidden = true;
    label.after(editor);
    row.classList.add("is-editing");
    editor.addEventListener("folder-editor-close", () => {
      editor.remove();
      label.hidden = false;
      row.classList.remove("is-editing");
      label.focus();
    });
    input.focus();
    input.select();
  }

  function dialog(className) {
    const box = document.createElement("dialog");
    box.className = "folder-dialog " + (className || "");
    box.setAttribute("aria-labelledby", "folder-dialog-title");
    box.addEventListener("close", () => box.remove());
    box.addEventListener("click", (event) => {
      if (event.target === box) box.close();  // a click on the backdrop
      if (event.target.closest("[data-dialog-cancel]")) box.close();
    });
    document.body.append(box);
    return box;
  }

  function showDialogError(box, text) {
    const error = $("[data-dialog-error]", box);
    error.textContent = text;
    error.hidden = false;
  }

  function confirmDelete(item) {
    const opener = $(":scope > .tree-row .folder-link", item);
    const box = dialog("is-small");
    box.innerHTML = `
      <form method="dialog" class="dialog-form">
        <h2 id="folder-dialog-title"></h2>
        <p class="dialog-help">Only empty folders can be deleted: move their datasets and subfolders elsewhere first.</p>
        <p class="field-error" data-dialog-error role="alert" hidden></p>
        <div class="dialog-actions">
          <button type="button" class="button" data-dialog-cancel>Cancel</button>
          <button type="submit" class="button button-danger" value="delete">Delete folder</button>
        </div>
      </form>`;
    $("h2", box).textContent = `Delete folder “${folderName(item)}”?`;
    $("form", box).addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $(".button-danger", box);
      button.disabled = true;
      const answer = await post(`${foldersUrl()}${item.dataset.folderId}/delete/`, {});
      button.disabled = false;
      if (!answer.ok) {
        showDialogError(box, answer.error);
        return;
      }
      const wasCurrent = currentFolderId() === item.dataset.folderId;
      box.close();
      toast("success", answer.message);
      replaceTree(answer.tree);
      if (wasCurrent) showFolder("");
    });
    box.addEventListener("close", () => { if (document.contains(opener)) opener.focus(); });
    box.showModal();
    $("[data-dialog-cancel]", box).focus();
  }

  async function openTeams(item) {
    const url = `${foldersUrl()}${item.dataset.folderId}/teams/`;
    let html;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) {
        toast("error", response.status === 403 ? "Not allowed." : `Could not load the teams (${response.status}).`);
        return;
      }
      html = await response.text();
    } catch (error) {
      toast("error", OFFLINE);
      return;
    }
    const opener = $(":scope > .tree-row .folder-link", item);
    const box = dialog();
    box.innerHTML = html;
    const form = $("form", box);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await post(url, new FormData(form));
      if (!answer.ok) {
        showDialogError(box, answer.error);
        return;
      }
      box.close();
      toast("success", answer.message);
      replaceTree(answer.tree);
    });
    box.addEventListener("close", () => { if (document.contains(opener)) opener.focus(); });
    box.showModal();
    const first = $("input[type=checkbox]", box) || $("[data-dialog-cancel]", box);
    if (first) first.focus();
  }

  // ---- Selection in the table ------------------------------------------------

  const selection = new Set();
  let anchor = null;

  function rows() { return $$("[data-dataset-row]"); }
  function keyOf(row) { return row.dataset.dataset; }
  function rowOf(key) { return rows().find((row) => keyOf(row) === key) || null; }

  function renderSelection() {
    rows().forEach((row) => {
      const selected = selection.has(keyOf(row));
      row.classList.toggle("is-selected", selected);
      row.setAttribute("aria-selected", selected ? "true" : "false");
    });
    const bar = $("[data-selection-bar]");
    if (!bar) return;
    const canMove = Boolean($("[data-move-selection]", bar));
    bar.hidden = selection.size < (canMove ? 1 : 2);
    $("[data-selection-count]", bar).textContent = String(selection.size);
  }

  function selectOnly(row) {
    selection.clear();
    if (row) selection.add(keyOf(row));
    anchor = row ? keyOf(row) : null;
    renderSelection();
  }

  function toggleRow(row) {
    const key = keyOf(row);
    if (selection.has(key)) selection.delete(key);
    else selection.add(key);
    anchor = key;
    renderSelection();
  }

  function selectRange(fromKey, toRow, additive) {
    const all = rows();
    const from = all.findIndex((row) => keyOf(row) === fromKey);
    const to = all.indexOf(toRow);
    if (from < 0 || to < 0) {
      selectOnly(toRow);
      return;
    }
    if (!additive) selection.clear();
    all.slice(Math.min(from, to), Math.max(from, to) + 1).forEach((row) => selection.add(keyOf(row)));
    renderSelection();
  }

  function clearSelection() {
    selection.clear();
    anchor = null;
    renderSelection();
  }

  function pruneSelection() {
    const present = new Set(rows().map(keyOf));
    for (const key of Array.from(selection)) if (!present.has(key)) selection.delete(key);
    if (anchor && !present.has(anchor)) anchor = null;
    renderSelection();
  }

  // ---- Moving datasets and folders -------------------------------------------

  async function moveDatasets(keys, folderId) {
    if (!keys.length) return;
    const answer = await post(tree().dataset.moveDatasetsUrl, { datasets: keys, folder: folderId });
    if (!answer.ok) {
      toast("error", answer.error);
      return;
    }
    toast("success", answer.message);
    clearSelection();
    refreshTable();
  }

  async function moveFolder(folderId, parentId) {
    if (folderId === parentId) return;
    const answer = await post(`${foldersUrl()}${folderId}/move/`, { parent: parentId });
    if (!answer.ok) {
      toast("error", answer.error);
      return;
    }
    toast("success", answer.message);
    replaceTree(answer.tree);
    refreshTable();
  }

  function editableSelection() {
    return Array.from(selection).filter((key) => {
      const row = rowOf(key);
      return row && row.hasAttribute("data-editable");
    });
  }

  function openFolderPicker() {
    const keys = editableSelection();
    const refused = selection.size - keys.length;
    const opener = $("[data-move-selection]");
    const box = dialog("folder-picker");
    const count = keys.length === 1 ? "1 dataset" : `${keys.length} datasets`;
    box.innerHTML = `
      <form method="dialog" class="dialog-form">
        <h2 id="folder-dialog-title"></h2>
        <label class="visually-hidden" for="folder-picker-filter">Find a folder</label>
        <input id="folder-picker-filter" type="search" class="picker-filter" placeholder="Find a folder" autocomplete="off">
        <fieldset class="picker-list"><legend class="visually-hidden">Folder</legend></fieldset>
        <p class="dialog-help" data-refused hidden></p>
        <p class="field-error" data-dialog-error role="alert" hidden></p>
        <div class="dialog-actions">
          <button type="button" class="button" data-dialog-cancel>Cancel</button>
          <button type="submit" class="button button-primary">Move here</button>
        </div>
      </form>`;
    $("h2", box).textContent = `Move ${count} to…`;
    if (refused) {
      const note = $("[data-refused]", box);
      note.textContent = `You may not move ${refused} of the selected datasets; they stay where they are.`;
      note.hidden = false;
    }
    const list = $(".picker-list", box);
    const current = currentFolderId();
    $$(".tree-item[data-folder-id][data-editable]").forEach((item) => {
      const label = document.createElement("label");
      label.className = "picker-option";
      label.style.setProperty("--depth", item.dataset.depth || "0");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "folder";
      radio.value = item.dataset.folderId;
      if (radio.value === current) radio.checked = true;
      const name = document.createElement("span");
      name.textContent = folderName(item);
      label.append(radio, name);
      list.append(label);
    });
    $(".picker-filter", box).addEventListener("input", (event) => {
      const text = event.target.value.trim().toLowerCase();
      $$(".picker-option", list).forEach((option) => {
        option.hidden = Boolean(text) && !option.textContent.toLowerCase().includes(text);
      });
    });
    $("form", box).addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = $("input[name=folder]:checked", box);
      if (!chosen) {
        showDialogError(box, "Choose a folder.");
        return;
      }
      const answer = await post(tree().dataset.moveDatasetsUrl, { datasets: keys, folder: chosen.value });
      if (!answer.ok) {
        showDialogError(box, answer.error);
        return;
      }
      box.close();
      toast("success", answer.message);
      clearSelection();
      refreshTable();
    });
    box.addEventListener("close", () => { if (opener && document.contains(opener)) opener.focus(); });
    box.showModal();
    ($("input[name=folder]:checked", box) || $(".picker-filter", box)).focus();
  }

  // ---- Drag and drop -----------------------------------------------------------

  let dragGhost = null;

  function dragImage(text) {
    if (!dragGhost) {
      dragGhost = document.createElement("div");
      dragGhost.className = "drag-ghost";
      document.body.append(dragGhost);
    }
    dragGhost.textContent = text;
    return dragGhost;
  }

  document.addEventListener("dragstart", (event) => {
    const folderRow = event.target.closest && event.target.closest(".tree-row[draggable=true]");
    if (folderRow) {
      const item = folderRow.closest(".tree-item");
      event.dataTransfer.setData(FOLDER_TYPE, item.dataset.folderId);
      event.dataTransfer.setData("text/plain", folderName(item));
      event.dataTransfer.effectAllowed = "move";
      folderRow.classList.add("is-dragging");
      return;
    }
    const row = event.target.closest && event.target.closest("[data-dataset-row][data-editable]");
    if (!row) return;
    const key = keyOf(row);
    let keys = [key];
    if (selection.has(key)) keys = editableSelection();
    else selectOnly(row);
    event.dataTransfer.setData(DATASETS_TYPE, JSON.stringify(keys));
    event.dataTransfer.setData("text/plain", keys.join("\n"));
    event.dataTransfer.effectAllowed = "move";
    const ghost = dragImage(keys.length === 1 ? (row.getAttribute("aria-label") || key) : `${keys.length} datasets`);
    event.dataTransfer.setDragImage(ghost, -12, -8);
    keys.forEach((one) => { const r = rowOf(one); if (r) r.classList.add("is-dragging"); });
  });

  document.addEventListener("dragend", () => {
    $$(".is-dragging").forEach((el) => el.classList.remove("is-dragging"));
    $$(".is-drop-target").forEach((el) => el.classList.remove("is-drop-target"));
  });

  function dropTarget(event) {
    const types = Array.from(event.dataTransfer ? event.dataTransfer.types : []);
    if (!types.includes(DATASETS_TYPE) && !types.includes(FOLDER_TYPE)) return null;
    const row = event.target.closest && event.target.closest(".tree-row");
    const item = row && row.closest(".tree-item[data-folder-id][data-editable]");
    return item ? row : null;
  }

  document.addEventListener("dragover", (event) => {
    const row = dropTarget(event);
    if (!row) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!row.classList.contains("is-drop-target")) {
      $$(".is-drop-target").forEach((el) => el.classList.remove("is-drop-target"));
      row.classList.add("is-drop-target");
    }
  });

  document.addEventListener("dragleave", (event) => {
    const row = event.target.closest && event.target.closest(".tree-row.is-drop-target");
    if (row && !row.contains(event.relatedTarget)) row.classList.remove("is-drop-target");
  });

  document.addEventListener("drop", (event) => {
    const row = dropTarget(event);
    if (!row) return;
    event.preventDefault();
    row.classList.remove("is-drop-target");
    const target = row.closest(".tree-item").dataset.folderId;
    const folder = event.dataTransfer.getData(FOLDER_TYPE);
    if (folder) {
      moveFolder(folder, target);
      return;
    }
    let keys = [];
    try { keys = JSON.parse(event.dataTransfer.getData(DATASETS_TYPE) || "[]"); } catch (error) { keys = []; }
    moveDatasets(keys, target);
  });

  // ---- Events ------------------------------------------------------------------

  // Capture on window: runs before dashboard.js's own row clicks (on document).
  window.addEventListener("mousedown", (event) => {
    // Shift-click selects rows, not text.
    if (event.shiftKey && event.target.closest && event.target.closest("[data-dataset-row]")) event.preventDefault();
  }, true);

  window.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    if (menu && !menu.contains(event.target)) closeMenu(false);
    const row = event.target.closest("[data-dataset-row]");
    if (!row || event.target.closest("a, button, input, select, label, textarea")) return;
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      event.stopImmediatePropagation();
      toggleRow(row);
      row.focus();
    } else if (event.shiftKey) {
      event.preventDefault();
      event.stopImmediatePropagation();
      if (anchor) selectRange(anchor, row, false);
      else toggleRow(row);
      row.focus();
    } else {
      selectOnly(row);  // dashboard.js then shows its details
    }
  }, true);

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    const plain = event.button === 0 && !event.ctrlKey && !event.metaKey && !event.shiftKey && !event.altKey;
    const twisty = event.target.closest("[data-twisty]");
    if (twisty) {
      toggleFolder(twisty.closest(".tree-item"));
      return;
    }
    const more = event.target.closest("[data-folder-menu]");
    if (more) {
      const box = more.getBoundingClientRect();
      openMenu(more.closest(".tree-item"), box.left, box.bottom + 4, more);
      return;
    }
    if (event.target.closest("[data-move-selection]")) {
      openFolderPicker();
      return;
    }
    if (event.target.closest("[data-clear-selection]")) {
      clearSelection();
      return;
    }
    if (!plain || !table()) return;
    const link = event.target.closest("[data-folder-link]");
    if (link) {
      event.preventDefault();
      showFolder(link.dataset.folderLink);
      return;
    }
    const addTag = event.target.closest("[data-tag-add]");
    if (addTag) {
      event.preventDefault();
      navigate((params) => {
        if (!params.getAll("tag").includes(addTag.dataset.tagAdd)) params.append("tag", addTag.dataset.tagAdd);
      });
      return;
    }
    const removeTag = event.target.closest("[data-tag-remove]");
    if (removeTag) {
      event.preventDefault();
      navigate((params) => {
        const rest = params.getAll("tag").filter((tag) => tag !== removeTag.dataset.tagRemove);
        params.delete("tag");
        rest.forEach((tag) => params.append("tag", tag));
      });
    }
  });

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("[data-recursive-toggle]") && table()) {
      navigate((params) => {
        if (target.checked) params.set("recursive", "1");
        else params.delete("recursive");
      });
    } else if (target.matches("[data-tag-filter]") && target.value && table()) {
      const tag = target.value;
      navigate((params) => {
        if (!params.getAll("tag").includes(tag)) params.append("tag", tag);
      });
    }
  });

  document.addEventListener("contextmenu", (event) => {
    const row = event.target.closest && event.target.closest(".tree-row");
    const item = row && row.closest(".tree-item[data-folder-id][data-editable]");
    if (!item || event.target.closest("input")) return;
    event.preventDefault();
    const link = $(".folder-link", row);
    let x = event.clientX;
    let y = event.clientY;
    if (!x && !y) {  // the keyboard's menu key
      const box = row.getBoundingClientRect();
      x = box.left + 24;
      y = box.bottom;
    }
    openMenu(item, x, y, link);
  });

  function folderLinks() {
    return $$("[data-folder-link], .folder-link.is-breadcrumb", tree() || document).filter(
      (link) => link.offsetParent !== null
    );
  }

  document.addEventListener("keydown", (event) => {
    if (menu) {
      menuKeys(event);
      return;
    }
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
    // The folder tree: up and down between folders, left and right fold them.
    const link = !typing && target.closest && target.closest("[data-folder-tree] .folder-link");
    if (link) {
      const links = folderLinks();
      const index = links.indexOf(link);
      const item = link.closest(".tree-item[data-folder-id]");
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const next = links[index + (event.key === "ArrowDown" ? 1 : -1)];
        if (next) {
          event.preventDefault();
          if (!next.hasAttribute("tabindex")) next.tabIndex = -1;
          next.focus();
        }
      } else if (item && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
        const expandable = $(":scope > .tree-row > [data-twisty]", item);
        if (expandable) {
          event.preventDefault();
          toggleFolder(item, event.key === "ArrowRight");
        }
      } else if (item && item.hasAttribute("data-editable") && (event.key === "F2")) {
        event.preventDefault();
        if (!item.hasAttribute("data-root")) startRename(item);
      }
      return;
    }
    if (target.matches && target.matches("[data-dataset-row]")) {
      if (event.key === " ") {
        event.preventDefault();
        toggleRow(target);
      } else if (event.shiftKey && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
        // dashboard.js has moved the focus already; extend from the anchor to it.
        const from = anchor || keyOf(target);
        if (!selection.size) selection.add(keyOf(target));
        const now = document.activeElement;
        if (now && now.matches("[data-dataset-row]")) {
          anchor = from;
          selectRange(from, now, false);
        }
      }
    }
    if (event.key === "Escape" && !typing && !document.querySelector("dialog[open]") && selection.size) {
      clearSelection();
    }
  });

  // The tag editor: its 400 answers carry the message next to the field.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (event.detail.xhr.status === 400 && target && target.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  let tagInputFocused = false;
  document.addEventListener("htmx:beforeRequest", (event) => {
    tagInputFocused = Boolean(event.target.closest && event.target.closest("#dataset-tags"))
      && Boolean(document.activeElement && document.activeElement.closest("#dataset-tags"));
  });

  document.body.addEventListener("datasets-moved", () => refreshTable());

  function onLoad(element) {
    if (element.id === "dataset-table" || element.querySelector("#dataset-table")) {
      syncTree();
      pruneSelection();
    }
    if (element.id === "dataset-tags" && tagInputFocused) {
      const input = $("#tag-input", element);
      if (input) {
        input.focus();
        input.select();
      }
    }
  }

  function start() {
    applyCollapsed();
    syncTree();
    renderSelection();
  }

  if (window.htmx) window.htmx.onLoad(onLoad);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
