// The Upload tab of "Add Dataset": files and folders → reserve → chunks → finish.
// Protocol: README "Uploading datasets". Files are hashed in slices with
// hash-wasm's incremental SHA-256 (vendor/, WebAssembly: files of any size, and no
// HTTPS needed as crypto.subtle would); chunks are hashed one by one for
// X-Voxelhub-Chunk-Sha256.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const cfg = form.dataset;
  const chunkSize = Number(cfg.chunkSize);
  const parallel = Number(cfg.parallel) || 3;
  // Bytes read into memory at once while hashing a file.
  const hashSlice = 16 * 1024 * 1024;
  const namePattern = new RegExp(cfg.namePattern);
  const files = new Map(); // relative path → {file, row, done: Set, count, sent}
  let upload = null; // {id, url, token}
  let paused = false;
  let running = 0;
  let failed = false;

  function csrf() {
    const input = form.querySelector("[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function hex(buffer) {
    return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  let hasher = null; // one WebAssembly instance, reused (init() resets it)
  async function sha256Hasher() {
    if (!hasher) hasher = await hashwasm.createSHA256();
    return hasher.init();
  }
  async function sha256(buffer) {
    const h = await sha256Hasher();
    h.update(new Uint8Array(buffer));
    return h.digest("hex");
  }
  // A file's SHA-256, read slice by slice; onBytes(n) after each slice.
  async function sha256File(file, onBytes) {
    const h = await sha256Hasher();
    for (let offset = 0; offset < file.size; offset += hashSlice) {
      const end = Math.min(offset + hashSlice, file.size);
      h.update(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
      onBytes(end - offset);
    }
    return h.digest("hex");
  }
  function formatSize(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : String(bytes)) + "\u00a0" + units[i];
  }
  function say(text) { $("upload-state").textContent = text; }
  function showError(text) {
    const box = $("upload-error");
    box.textContent = text;
    box.hidden = !text;
  }
  function errorText(body, status) {
    if (body && typeof body === "object") {
      const parts = [];
      for (const [key, value] of Object.entries(body)) {
        const text = Array.isArray(value) ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : v)).join("; ")
          : typeof value === "object" ? JSON.stringify(value) : String(value);
        parts.push(key === "detail" || key === "error" ? text : key + ": " + text);
      }
      if (parts.length) return parts.join(" · ");
    }
    return "HTTP " + status;
  }

  // --- the name, checked as the server checks it -------------------------
  const nameInput = $("upload-name");
  function checkName() {
    const name = nameInput.value;
    let problem = "";
    if (!name) problem = "A name is required.";
    else if (!namePattern.test(name)) problem = "Only letters, digits, _ . - (not first), at most 128 characters.";
    $("upload-name-error").textContent = problem;
    $("upload-name-error").hidden = !problem;
    nameInput.setAttribute("aria-invalid", problem ? "true" : "false");
    return !problem;
  }
  nameInput.addEventListener("input", checkName);

  // --- choosing files ----------------------------------------------------
  function addFile(file, path) {
    path = path.replace(/^\/+/, "");
    if (files.has(path) || upload) return;
    const row = document.createElement("li");
    const label = document.createElement("span");
    label.className = "file-path";
    label.textContent = path;
    label.title = path;
    const size = document.createElement("span");
    size.className = "file-size";
    size.textContent = formatSize(file.size);
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "Progress of " + path);
    const percent = document.createElement("span");
    percent.className = "percent";
    percent.textContent = "0 %";
    row.append(label, size, bar, percent);
    $("file-list").append(row);
    const count = Math.max(Math.ceil(file.size / chunkSize), 1);
    files.set(path, { file, path, bar, percent, count, done: new Set(), sent: 0 });
  }
  function addFileList(list) {
    for (const file of list) addFile(file, file.webkitRelativePath || file.name);
  }
  $("upload-files").addEventListener("change", (e) => addFileList(e.target.files));
  $("upload-folder-input").addEventListener("change", (e) => addFileList(e.target.files));

  function readAll(reader) {
    return new Promise((resolve, reject) => {
      const all = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) resolve(all);
        else { all.push(...batch); next(); }
      }, reject);
      next();
    });
  }
  async function walk(entry) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      addFile(file, entry.fullPath || file.name);
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child);
    }
  }
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("drag-over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("drag-over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("drag-over");
    const entries = Array.from(e.dataTransfer.items || [])
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    if (entries.length) for (const entry of entries) await walk(entry);
    else addFileList(e.dataTransfer.files);
  });

  // --- progress ----------------------------------------------------------
  function updateProgress(entry) {
    const fraction = entry.file.size ? Math.min(entry.sent / entry.file.size, 1) : entry.done.size / entry.count;
    entry.bar.value = fraction;
    entry.percent.textContent = Math.floor(fraction * 100) + " %";
    let total = 0;
    let sent = 0;
    for (const f of files.values()) { total += f.file.size; sent += f.sent; }
    const all = total ? sent / total : 1;
    $("total-bar").value = all;
    $("total-percent").textContent = Math.floor(all * 100) + " %";
  }
  function chunkBounds(entry, n) {
    const start = (n - 1) * chunkSize;
    const end = n === entry.count ? entry.file.size : Math.min(n * chunkSize, entry.file.size);
    return [start, end];
  }
  function markDone(entry, n) {
    if (entry.done.has(n)) return;
    entry.done.add(n);
    const [start, end] = chunkBounds(entry, n);
    entry.sent += end - start;
    updateProgress(entry);
  }

  // --- sending -----------------------------------------------------------
  async function sendChunk(entry, n) {
    const [start, end] = chunkBounds(entry, n);
    const blob = entry.file.slice(start, end);
    const digest = await sha256(await blob.arrayBuffer());
    for (let attempt = 1; ; attempt++) {
      const body = new FormData();
      body.append("resumableChunkNumber", String(n));
      body.append("resumableChunkSize", String(chunkSize));
      body.append("resumableCurrentChunkSize", String(end - start));
      body.append("resumableTotalChunks", String(entry.count));
      body.append("resumableTotalSize", String(entry.file.size));
      body.append("resumableIdentifier", upload.id + "/" + entry.path);
      body.append("file", blob, "blob");
      let response = null;
      try {
        response = await fetch(upload.url + "/data/datasets", {
          method: "POST",
          body,
          headers: { "X-Auth-Token": upload.token, "X-Voxelhub-Chunk-Sha256": digest },
        });
      } catch (error) {
        if (attempt >= 3) throw new Error("the datastore cannot be reached (" + error.message + ")");
      }
      if (response && response.ok) return markDone(entry, n);
      if (response && response.status !== 460 && response.status < 500) {
        const answer = await response.json().catch(() => null);
        throw new Error(entry.path + ", chunk " + n + ": " + errorText(answer, response.status));
      }
      if (attempt >= 3) throw new Error(entry.path + ", chunk " + n + ": failed 3 times");
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  let queue = [];
  async function worker() {
    running++;
    try {
      while (!paused && !failed && queue.length) {
        const [entry, n] = queue.shift();
        await sendChunk(entry, n);
      }
    } catch (error) {
      failed = true;
      showError("Upload failed: " + error.message);
    } finally {
      running--;
    }
  }
  async function sendAll() {
    say("Uploading…");
    $("upload-pause").hidden = false;
    $("upload-resume").hidden = true;
    await Promise.all(Array.from({ length: parallel }, worker));
    if (failed) return;
    const missing = Array.from(files.values()).some((f) => f.done.size < f.count);
    if (paused && missing) {
      say("Paused.");
      $("upload-pause").hidden = true;
      $("upload-resume").hidden = false;
      return;
    }
    $("upload-pause").hidden = true;
    await finish();
  }
  $("upload-pause").addEventListener("click", () => {
    paused = true;
    say("Pausing after the chunks in flight…");
    $("upload-pause").hidden = true;
  });
  $("upload-resume").addEventListener("click", async () => {
    if (running) return;
    paused = false;
    failed = false;
    showError("");
    $("upload-resume").hidden = true;
    say("Asking the datastore which chunks it has…");
    queue = [];
    for (const entry of files.values()) {
      for (let n = 1; n <= entry.count; n++) {
        if (entry.done.has(n)) continue;
        const query = new URLSearchParams({ resumableChunkNumber: String(n), resumableIdentifier: upload.id + "/" + entry.path });
        const response = await fetch(upload.url + "/data/datasets?" + query, { headers: { "X-Auth-Token": upload.token } });
        if (response.status === 200) markDone(entry, n);
        else queue.push([entry, n]);
      }
    }
    await sendAll();
  });

  async function finish() {
    say("Checking the files on the datastore…");
    const response = await fetch(upload.url + "/data/datasets/finishUpload", {
      method: "POST",
      headers: { "X-Auth-Token": upload.token, "Content-Type": "application/json" },
      body: JSON.stringify({ uploadId: upload.id }),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      showError("Finishing the upload failed: " + errorText(answer, response.status));
      say("");
      return;
    }
    $("upload-outcome").hidden = false;
    if (answer.outcome === "imported") {
      say("Done.");
      $("outcome-text").textContent = "Imported: " + answer.dataset + " is " + answer.status + ".";
      showLink();
    } else {
      say("Converting…");
      $("outcome-text").textContent = "Uploaded; " + answer.dataset + " is being converted by a job.";
      if (answer.job_id) pollJob(answer.job_id);
    }
  }
  function showLink() {
    $("dataset-link").href = cfg.datasetUrl.replace("__NAME__", encodeURIComponent(nameInput.value));
    $("outcome-link").hidden = false;
  }
  async function pollJob(id) {
    $("job-progress").hidden = false;
    const response = await fetch(cfg.jobsUrl + encodeURIComponent(id) + "/", { headers: { Accept: "application/json" } });
    const job = response.ok ? await response.json() : null;
    if (job) {
      $("job-bar").value = job.progress;
      $("job-percent").textContent = Math.floor(job.progress * 100) + " %";
      if (job.state === "success") {
        say("Done.");
        $("outcome-text").textContent = "Converted: the dataset is ready.";
        return showLink();
      }
      if (job.state === "failure" || job.state === "cancelled") {
        say("");
        showError("The conversion " + (job.state === "failure" ? "failed" : "was cancelled") + (job.message ? ": " + job.message : "."));
        return;
      }
    }
    setTimeout(() => pollJob(id), 1000);
  }

  // --- start -------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (upload) return;
    showError("");
    if (!checkName()) { nameInput.focus(); return; }
    if (!files.size) { showError("Choose files or a folder first."); return; }
    if (typeof hashwasm === "undefined" || typeof WebAssembly === "undefined") { showError("This browser cannot compute checksums (WebAssembly is off)."); return; }
    const start = $("upload-start");
    start.disabled = true;
    $("total-progress").hidden = false;
    try {
      const list = [];
      let total = 0;
      for (const entry of files.values()) total += entry.file.size;
      let hashed = 0;
      for (const entry of files.values()) {
        const digest = await sha256File(entry.file, (n) => {
          // Hashing reads every byte once more: show how far it got.
          hashed += n;
          say("Computing checksums… " + Math.floor((hashed / total) * 100) + " %");
        });
        list.push({ path: entry.path, size: entry.file.size, sha256: digest });
      }
      say("Computing checksums… done");
      const voxel = ["upload-vx", "upload-vy", "upload-vz"].map((id) => Number($(id).value));
      const body = {
        organization: cfg.organization,
        name: nameInput.value,
        files: list,
        folder: Number($("upload-folder").value) || null,
        allowed_teams: Array.from($("upload-teams").selectedOptions, (o) => Number(o.value)),
        unit: $("upload-unit").value,
        data_format: $("upload-format").value,
      };
      if (voxel.every((v) => v > 0)) body.voxel_size = voxel;
      const layer = $("upload-layer").value.trim();
      if (layer) {
        const hint = { name: layer };
        if ($("upload-category").value) hint.category = $("upload-category").value;
        body.layers = [hint];
      }
      say("Reserving…");
      const response = await fetch(cfg.reserveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        showError("The upload was refused: " + errorText(answer, response.status));
        say("");
        start.disabled = false;
        return;
      }
      upload = { id: answer.id, url: answer.datastore_url.replace(/\/+$/, ""), token: answer.upload_token };
      form.querySelectorAll("fieldset").forEach((f) => { f.disabled = true; });
      start.hidden = true;
      queue = [];
      for (const entry of files.values()) for (let n = 1; n <= entry.count; n++) queue.push([entry, n]);
      await sendAll();
    } catch (error) {
      showError("Upload failed: " + error.message);
      say("");
    }
  });
})();
