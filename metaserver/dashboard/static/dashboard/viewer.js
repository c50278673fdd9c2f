// voxelhub slice viewer: XY, YZ and XZ planes of a dataset, drawn on canvases from
// tiles of raw voxels that the datastore's data route returns.
//
// Coordinates are mag-1 voxels. The view is isotropic in physical units: at zoom 1
// one screen pixel shows the smallest voxel edge, so anisotropic axes are
// stretched. Each plane picks, per layer, the finest mag whose voxels are at
// least one screen pixel, and loads TILE x TILE voxel tiles (depth 1) of that mag
// for the visible area only. Tiles live in a bounded LRU cache; requests for tiles
// no longer needed are aborted.
(function () {
  "use strict";

  const source = document.getElementById("viewer-data");
  if (!source) return;
  const V = JSON.parse(source.textContent);

  const TILE = 128;
  const MAX_TILES = 600;
  const MAX_ACTIVE = 6;
  const RETRY_MS = 5000;
  const ABORT_GRACE_MS = 250;
  const SAVE_DELAY_MS = 1200;
  const URL_DELAY_MS = 120;
  // Viewer tokens live 15 minutes; the page's may already be up to 10 minutes old.
  const TOKEN_REFRESH_MS = 4 * 60 * 1000;
  const MIN_ZOOM = 1 / 64;
  const PLANES = {
    xy: { u: 0, v: 1, w: 2, name: "XY", color: "#ff5c5c" },
    yz: { u: 2, v: 1, w: 0, name: "YZ", color: "#5c9dff" },
    xz: { u: 0, v: 2, w: 1, name: "XZ", color: "#45c486" },
  };
  const AXES = "xyz";
  const DECODERS = {
    uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
    uint32: Uint32Array, int32: Int32Array, float: Float32Array,
    uint64: Uint32Array, int64: Uint32Array,
  };

  const voxelSize = V.voxelSize;
  const minVoxel = Math.min(...voxelSize);
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]");
  const toast = (level, text) => window.voxelhub && window.voxelhub.toast(level, text);

  // ---- layers ---------------------------------------------------------------

  const layers = V.layers.map((raw) => {
    const box = raw.boundingBox;
    const mags = raw.mags.slice().sort((a, b) =>
      (a[0] * a[1] * a[2]) - (b[0] * b[1] * b[2]) || Math.max(...a) - Math.max(...b));
    return {
      ...raw,
      mags,
      min: box.topLeft.slice(),
      max: [box.topLeft[0] + box.width, box.topLeft[1] + box.height, box.topLeft[2] + box.depth],
      isColor: raw.category === "color",
      styleVersion: 0,
      lut: null,
      observed: null,
    };
  });
  const drawable = layers.filter((layer) => layer.supported && layer.mags.length);
  const colorLayers = drawable.filter((layer) => layer.isColor);
  const segmentationLayers = drawable.filter((layer) => !layer.isColor);
  const world = {
    min: [0, 1, 2].map((a) => Math.min(...layers.map((l) => l.min[a]))),
    max: [0, 1, 2].map((a) => Math.max(...layers.map((l) => l.max[a]))),
  };
  const maxZoom = Math.max(
    4, ...[0, 1, 2].map((a) => ((world.max[a] - world.min[a]) * voxelSize[a]) / (40 * minVoxel)));

  // ---- state ----------------------------------------------------------------

  // The layout is a preference of this browser, not part of the view configuration.
  function stored(key, value) {
    try {
      if (value === undefined) return localStorage.getItem("voxelhub.viewer." + key);
      localStorage.setItem("voxelhub.viewer." + key, value);
    } catch (error) {
      // Storage disabled: the preference lasts for this page only.
    }
    return null;
  }

  const state = {
    position: [0, 0, 0],
    zoom: 1,
    interpolation: false,
    segmentationPatternOpacity: 40,
    layers: {},
    layout: stored("layout") === "xy" ? "xy" : "planes",
    active: "xy",
  };

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function clampPosition() {
    for (let a = 0; a < 3; a++) {
      state.position[a] = clamp(state.position[a], world.min[a], Math.max(world.min[a], world.max[a] - 0.001));
    }
  }

  function applyConfiguration(config) {
    const position = Array.isArray(config.position) ? config.position
      : world.min.map((low, a) => Math.floor((low + world.max[a]) / 2));
    // Voxel k spans [k, k + 1): stand in the middle of the configured voxel.
    state.position = position.map((v) => Math.floor(v) + 0.5);
    clampPosition();
    state.zoom = clamp(Number(config.zoom) || 1, MIN_ZOOM, maxZoom);
    state.interpolation = Boolean(config.interpolation);
    if (typeof config.segmentationPatternOpacity === "number") {
      state.segmentationPatternOpacity = config.segmentationPatternOpacity;
    }
    const configured = config.layers || {};
    state.layers = {};
    for (const layer of layers) {
      const c = configured[layer.name] || {};
      state.layers[layer.name] = {
        intensityRange: Array.isArray(c.intensityRange) ? c.intensityRange.slice() : null,
        alpha: typeof c.alpha === "number" ? c.alpha : 100,
        isDisabled: Boolean(c.isDisabled),
        isInverted: Boolean(c.isInverted),
        color: Array.isArray(c.color) ? c.color.slice() : [255, 255, 255],
      };
      layer.styleVersion++;
      layer.lut = null;
    }
  }

  function currentConfiguration() {
    const out = {
      position: state.position.map((v) => Math.max(0, Math.floor(v))),
      zoom: Math.round(state.zoom * 10000) / 10000,
      interpolation: state.interpolation,
      segmentationPatternOpacity: Math.round(state.segmentationPatternOpacity),
      layers: {},
    };
    for (const layer of layers) {
      const s = state.layers[layer.name];
      const entry = { alpha: s.alpha, isDisabled: s.isDisabled };
      if (layer.isColor) {
        entry.color = s.color;
        entry.isInverted = s.isInverted;
        if (s.intensityRange) entry.intensityRange = s.intensityRange.slice();
      }
      out.layers[layer.name] = entry;
    }
    return out;
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const position = (params.get("position") || "").split(",").map(Number);
    if (position.length === 3 && position.every(Number.isFinite)) {
      state.position = position.map((v) => Math.floor(v) + 0.5);
      clampPosition();
    }
    const zoom = Number(params.get("zoom"));
    if (params.has("zoom") && Number.isFinite(zoom) && zoom > 0) state.zoom = clamp(zoom, MIN_ZOOM, maxZoom);
  }

  function hashOf() {
    const p = state.position.map((v) => Math.floor(v)).join(",");
    return "#position=" + p + "&zoom=" + (Math.round(state.zoom * 1000) / 1000);
  }

  // ---- geometry -------------------------------------------------------------

  // Mag-1 voxels per screen pixel along `axis`.
  function vpp(axis) {
    return (state.zoom * minVoxel) / voxelSize[axis];
  }

  function chooseMag(layer, plane) {
    const p = PLANES[plane];
    for (const mag of layer.mags) {
      if (Math.min(mag[p.u] / vpp(p.u), mag[p.v] / vpp(p.v)) >= 0.999) return mag;
    }
    return layer.mags[layer.mags.length - 1];
  }

  function magKey(mag) {
    return mag.join("-");
  }

  // The tiles of `layer` at `mag` that the plane's view shows, nearest first.
  function tilesInView(layer, plane, mag, view) {
    const p = PLANES[plane];
    const lo = [0, 1, 2].map((a) => Math.floor(layer.min[a] / mag[a]));
    const hi = [0, 1, 2].map((a) => Math.ceil(layer.max[a] / mag[a]));
    const slice = Math.floor(state.position[p.w] / mag[p.w]);
    if (slice < lo[p.w] || slice >= hi[p.w]) return { slice, tiles: [] };
    const span = (axis, pixels) => {
      const half = (pixels / 2) * vpp(axis);
      const first = Math.max(lo[axis], Math.floor((state.position[axis] - half) / mag[axis]));
      const last = Math.min(hi[axis] - 1, Math.floor((state.position[axis] + half) / mag[axis]));
      return [first, last];
    };
    const [uFirst, uLast] = span(p.u, view.width);
    const [vFirst, vLast] = span(p.v, view.height);
    const tiles = [];
    if (uFirst > uLast || vFirst > vLast) return { slice, tiles };
    const cu = state.position[p.u] / mag[p.u] / TILE;
    const cv = state.position[p.v] / mag[p.v] / TILE;
    for (let j = Math.floor(vFirst / TILE); j <= Math.floor(vLast / TILE); j++) {
      for (let i = Math.floor(uFirst / TILE); i <= Math.floor(uLast / TILE); i++) {
        tiles.push({
          key: [layer.name, plane, magKey(mag), slice, i, j].join("|"),
          i, j, slice,
          u0: Math.max(i * TILE, lo[p.u]), u1: Math.min((i + 1) * TILE, hi[p.u]),
          v0: Math.max(j * TILE, lo[p.v]), v1: Math.min((j + 1) * TILE, hi[p.v]),
          distance: Math.hypot(i + 0.5 - cu, j + 0.5 - cv),
        });
      }
    }
    tiles.sort((a, b) => a.distance - b.distance);
    return { slice, tiles };
  }

  // The screen rectangle (CSS pixels, snapped) of mag voxels [u0, u1) x [v0, v1).
  function screenRect(plane, mag, u0, u1, v0, v1, view) {
    const p = PLANES[plane];
    const x = (c) => Math.round(view.width / 2 + (c * mag[p.u] - state.position[p.u]) / vpp(p.u));
    const y = (c) => Math.round(view.height / 2 + (c * mag[p.v] - state.position[p.v]) / vpp(p.v));
    const left = x(u0);
    const top = y(v0);
    return [left, top, x(u1) - left, y(v1) - top];
  }

  // ---- tile cache and requests ----------------------------------------------

  const cache = new Map();
  let queue = [];
  let active = 0;
  let requestCount = 0;

  function tileUrl(entry) {
    const p = PLANES[entry.plane];
    const start = [0, 0, 0];
    const size = [1, 1, 1];
    start[p.u] = entry.u0 * entry.mag[p.u];
    start[p.v] = entry.v0 * entry.mag[p.v];
    start[p.w] = entry.slice * entry.mag[p.w];
    size[p.u] = entry.u1 - entry.u0;
    size[p.v] = entry.v1 - entry.v0;
    const params = new URLSearchParams({
      mag: magKey(entry.mag),
      x: start[0], y: start[1], z: start[2],
      width: size[0], height: size[1], depth: size[2],
    });
    if (V.token) params.set("token", V.token);
    return V.dataUrl + encodeURIComponent(entry.layer.name) + "/data?" + params;
  }

  function decode(entry, buffer) {
    const layer = entry.layer;
    const p = PLANES[entry.plane];
    const width = entry.u1 - entry.u0;
    const height = entry.v1 - entry.v0;
    const count = width * height;
    const Type = DECODERS[layer.elementClass];
    const wide = layer.elementClass === "uint64" || layer.elementClass === "int64";
    const bytes = count * Type.BYTES_PER_ELEMENT * (wide ? 2 : 1);
    if (buffer.byteLength !== bytes) {
      throw new Error("expected " + bytes + " bytes, got " + buffer.byteLength);
    }
    let values = new Type(buffer);
    if (wide) {
      // Segment ids are coloured by their low 32 bits (little-endian: even words).
      const low = new Uint32Array(count);
      for (let k = 0; k < count; k++) low[k] = values[2 * k];
      values = low;
    }
    if (entry.plane !== "xy") {
      // The wire is x fastest, then y, then z; the tile wants u fastest, then v.
      const size = [1, 1, 1];
      size[p.u] = width;
      size[p.v] = height;
      const stride = [1, size[0], size[0] * size[1]];
      const su = stride[p.u];
      const sv = stride[p.v];
      const out = new values.constructor(count);
      for (let j = 0; j < height; j++) {
        for (let i = 0; i < width; i++) out[j * width + i] = values[i * su + j * sv];
      }
      values = out;
    }
    if (layer.isColor) observe(layer, values);
    return values;
  }

  // The value range seen so far: float layers without a configured range use it.
  function observe(layer, values) {
    let low = Infinity;
    let high = -Infinity;
    for (let k = 0; k < values.length; k++) {
      const v = values[k];
      if (v < low) low = v;
      if (v > high) high = v;
    }
    if (!Number.isFinite(low) || !Number.isFinite(high)) return;
    const seen = layer.observed;
    if (!seen || low < seen[0] || high > seen[1]) {
      layer.observed = seen ? [Math.min(low, seen[0]), Math.max(high, seen[1])] : [low, high];
      if (!state.layers[layer.name].intensityRange) {
        layer.styleVersion++;
        layer.lut = null;
      }
      panelNeedsSync = true;
    }
  }

  async function refreshToken() {
    if (!V.tokenUrl) return false;
    try {
      const response = await fetch(V.tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return false;
      V.token = (await response.json()).token;
      return true;
    } catch (error) {
      return false;
    }
  }

  async function load(entry) {
    entry.status = "loading";
    entry.controller = new AbortController();
    active++;
    try {
      requestCount++;
      let response = await fetch(tileUrl(entry), { signal: entry.controller.signal, credentials: "omit" });
      if (response.status === 403 && !entry.retried && (await refreshToken())) {
        entry.retried = true;
        requestCount++;
        response = await fetch(tileUrl(entry), { signal: entry.controller.signal, credentials: "omit" });
      }
      if (!response.ok) {
        let detail = "";
        try {
          const body = await response.json();
          detail = body.error || "";
        } catch (error) {
          detail = response.statusText;
        }
        throw new Error(response.status + (detail ? " " + detail : ""));
      }
      entry.data = decode(entry, await response.arrayBuffer());
      entry.status = "ready";
    } catch (error) {
      if (error.name === "AbortError") return;
      entry.status = "error";
      entry.error = error.message || String(error);
      entry.retryAt = performance.now() + RETRY_MS;
      setTimeout(requestRender, RETRY_MS + 50);
    } finally {
      entry.controller = null;
      active--;
      pump();
      requestRender();
    }
  }

  function pump() {
    while (active < MAX_ACTIVE && queue.length) {
      const entry = queue.shift();
      if (entry.status === "queued") load(entry);
    }
  }

  function evict(wanted) {
    if (cache.size <= MAX_TILES) return;
    for (const [key, entry] of cache) {
      if (cache.size <= MAX_TILES) break;
      if (wanted.has(key) || entry.status === "loading") continue;
      cache.delete(key);
    }
  }

  // Queue what the views need; drop queued requests they no longer need and
  // abort running ones that stay unneeded for a moment, so a fast pan or zoom
  // never waits for stale tiles, while flicking back and forth (f, d, f) does
  // not ask for the same tile twice.
  function schedule(needed) {
    const wanted = new Set(needed.map((n) => n.tile.key));
    const now = performance.now();
    for (const [key, entry] of cache) {
      if (wanted.has(key)) {
        entry.unwantedSince = 0;
      } else if (entry.status === "queued") {
        cache.delete(key);
      } else if (entry.status === "loading") {
        if (!entry.unwantedSince) {
          entry.unwantedSince = now;
          setTimeout(requestRender, ABORT_GRACE_MS + 20);
        } else if (now - entry.unwantedSince >= ABORT_GRACE_MS) {
          entry.controller.abort();
          cache.delete(key);
        }
      }
    }
    queue = [];
    for (const { layer, plane, mag, tile } of needed) {
      let entry = cache.get(tile.key);
      if (entry && entry.status === "error" && now >= entry.retryAt) {
        cache.delete(tile.key);
        entry = null;
      }
      if (!entry) {
        entry = { ...tile, layer, plane, mag, status: "queued", canvas: null, version: -1 };
        cache.set(tile.key, entry);
      }
      if (entry.status === "queued") queue.push(entry);
    }
    queue.sort((a, b) => a.distance - b.distance);
    pump();
    evict(wanted);
  }

  // ---- colouring ------------------------------------------------------------

  function pack(r, g, b, a) {
    return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  }

  function intensityRange(layer) {
    const s = state.layers[layer.name];
    if (s.intensityRange) return s.intensityRange;
    if (layer.range) return layer.range;
    return layer.observed || [0, 1];
  }

  function colorMapper(layer) {
    const s = state.layers[layer.name];
    const [low, high] = intensityRange(layer);
    const span = high - low;
    const [r, g, b] = s.color;
    return (value) => {
      let f = span > 0 ? (value - low) / span : (value >= high ? 1 : 0);
      f = f < 0 ? 0 : f > 1 ? 1 : f;
      if (s.isInverted) f = 1 - f;
      return pack(Math.round(f * r), Math.round(f * g), Math.round(f * b), 255);
    };
  }

  // 8 and 16 bit layers map through a table rebuilt when the settings change.
  function lookupTable(layer) {
    const bits = { uint8: 8, int8: 8, uint16: 16, int16: 16 }[layer.elementClass];
    if (!bits) return null;
    if (layer.lut && layer.lut.version === layer.styleVersion) return layer.lut;
    const size = 1 << bits;
    const offset = layer.elementClass.startsWith("int") ? size / 2 : 0;
    const map = colorMapper(layer);
    const table = new Uint32Array(size);
    for (let k = 0; k < size; k++) table[k] = map(k - offset);
    layer.lut = { table, offset, version: layer.styleVersion };
    return layer.lut;
  }

  // A stable, well spread colour for every segment id (its low 32 bits).
  const segmentColors = new Map();
  function segmentColor(id) {
    let color = segmentColors.get(id);
    if (color !== undefined) return color;
    let h = Math.imul(id ^ (id >>> 16), 0x45d9f3b);
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    h = (h ^ (h >>> 16)) >>> 0;
    const hue = (h % 360) / 60;
    const saturation = 0.65 + ((h >>> 9) % 30) / 100;
    const lightness = 0.5 + ((h >>> 17) % 15) / 100;
    const chroma = (1 - Math.abs(2 * lightness - 1)) * saturation;
    const x = chroma * (1 - Math.abs((hue % 2) - 1));
    const m = lightness - chroma / 2;
    const [r, g, b] = [[chroma, x, 0], [x, chroma, 0], [0, chroma, x], [0, x, chroma], [x, 0, chroma], [chroma, 0, x]][Math.floor(hue) % 6];
    color = pack(Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255), 255);
    if (segmentColors.size > 100000) segmentColors.clear();
    segmentColors.set(id, color);
    return color;
  }

  function tileCanvas(entry) {
    const layer = entry.layer;
    const version = layer.isColor ? layer.styleVersion : 0;
    if (entry.canvas && entry.version === version) return entry.canvas;
    const width = entry.u1 - entry.u0;
    const height = entry.v1 - entry.v0;
    const canvas = entry.canvas || document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    const pixels = new Uint32Array(image.data.buffer);
    const values = entry.data;
    if (!layer.isColor) {
      for (let k = 0; k < values.length; k++) {
        const id = values[k] >>> 0;
        pixels[k] = id === 0 ? 0 : segmentColor(id);
      }
    } else {
      const lut = lookupTable(layer);
      if (lut) {
        const { table, offset } = lut;
        for (let k = 0; k < values.length; k++) pixels[k] = table[values[k] + offset];
      } else {
        const map = colorMapper(layer);
        for (let k = 0; k < values.length; k++) pixels[k] = map(values[k]);
      }
    }
    context.putImageData(image, 0, 0);
    entry.canvas = canvas;
    entry.version = version;
    return canvas;
  }

  // ---- views ----------------------------------------------------------------

  const viewer = document.getElementById("viewer");
  const views = {};
  for (const section of viewer.querySelectorAll(".plane")) {
    const plane = section.dataset.plane;
    const canvas = section.querySelector("canvas");
    views[plane] = {
      plane, section, canvas,
      context: canvas.getContext("2d"),
      scratch: document.createElement("canvas"),
      width: 0, height: 0, ratio: 1,
      info: section.querySelector("[data-plane-info]"),
      message: section.querySelector("[data-plane-message]"),
      scaleBar: section.querySelector("[data-scale-bar]"),
      scaleLabel: section.querySelector("[data-scale-label]"),
    };
  }

  function isShown(plane) {
    return state.layout === "planes" || plane === "xy";
  }

  const resizer = new ResizeObserver(() => {
    for (const view of Object.values(views)) {
      const ratio = window.devicePixelRatio || 1;
      view.width = view.section.clientWidth;
      view.height = view.section.clientHeight;
      view.ratio = ratio;
      for (const canvas of [view.canvas, view.scratch]) {
        canvas.width = Math.max(1, Math.round(view.width * ratio));
        canvas.height = Math.max(1, Math.round(view.height * ratio));
      }
    }
    requestRender();
  });
  Object.values(views).forEach((view) => resizer.observe(view.section));

  // Draws one layer's tiles of a plane into the view's scratch canvas; where a
  // tile is not loaded yet, coarser cached tiles stand in.
  function drawLayer(layer, view, needed, errors) {
    const plane = view.plane;
    const context = view.scratch.getContext("2d");
    context.setTransform(view.ratio, 0, 0, view.ratio, 0, 0);
    context.clearRect(0, 0, view.width, view.height);
    context.imageSmoothingEnabled = state.interpolation;
    const mag = chooseMag(layer, plane);
    const { tiles } = tilesInView(layer, plane, mag, view);
    for (const tile of tiles) {
      needed.push({ layer, plane, mag, tile });
      const entry = cache.get(tile.key);
      const rect = screenRect(plane, mag, tile.u0, tile.u1, tile.v0, tile.v1, view);
      if (entry && entry.status === "ready") {
        cache.delete(tile.key);
        cache.set(tile.key, entry);
        context.drawImage(tileCanvas(entry), ...rect);
        continue;
      }
      if (entry && entry.status === "error") errors.push(entry.error);
      drawFallback(context, layer, plane, mag, tile, rect, view);
    }
    return mag;
  }

  function drawFallback(context, layer, plane, mag, tile, rect, view) {
    const p = PLANES[plane];
    const coarser = layer.mags.slice(layer.mags.indexOf(mag) + 1);
    for (const other of coarser) {
      const slice = Math.floor(state.position[p.w] / other[p.w]);
      const range = (first, last, axis) => [
        Math.floor((first * mag[axis]) / other[axis] / TILE),
        Math.floor(((last * mag[axis]) - 1) / other[axis] / TILE),
      ];
      const [i0, i1] = range(tile.u0, tile.u1, p.u);
      const [j0, j1] = range(tile.v0, tile.v1, p.v);
      const found = [];
      for (let j = j0; j <= j1; j++) {
        for (let i = i0; i <= i1; i++) {
          const entry = cache.get([layer.name, plane, magKey(other), slice, i, j].join("|"));
          if (entry && entry.status === "ready") found.push(entry);
        }
      }
      if (!found.length) continue;
      context.save();
      context.beginPath();
      context.rect(...rect);
      context.clip();
      for (const entry of found) {
        context.drawImage(tileCanvas(entry), ...screenRect(plane, other, entry.u0, entry.u1, entry.v0, entry.v1, view));
      }
      context.restore();
      return;
    }
  }

  function drawPlane(view, needed) {
    const plane = view.plane;
    const p = PLANES[plane];
    const context = view.context;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.globalCompositeOperation = "source-over";
    context.globalAlpha = 1;
    context.fillStyle = "#000";
    context.fillRect(0, 0, view.canvas.width, view.canvas.height);
    const errors = [];
    let infoMag = null;
    for (const layer of colorLayers) {
      const s = state.layers[layer.name];
      if (s.isDisabled) continue;
      const mag = drawLayer(layer, view, needed, errors);
      infoMag = infoMag || mag;
      context.globalCompositeOperation = "lighter";
      context.globalAlpha = clamp(s.alpha, 0, 100) / 100;
      context.drawImage(view.scratch, 0, 0);
    }
    for (const layer of segmentationLayers) {
      const s = state.layers[layer.name];
      if (s.isDisabled) continue;
      const mag = drawLayer(layer, view, needed, errors);
      infoMag = infoMag || mag;
      context.globalCompositeOperation = "source-over";
      context.globalAlpha = (clamp(state.segmentationPatternOpacity, 0, 100) / 100) * (clamp(s.alpha, 0, 100) / 100);
      context.drawImage(view.scratch, 0, 0);
    }
    context.globalCompositeOperation = "source-over";
    context.globalAlpha = 1;
    context.setTransform(view.ratio, 0, 0, view.ratio, 0, 0);
    // The dataset's extent, so the black outside it reads as "no data".
    const box = screenRect(plane, [1, 1, 1], world.min[p.u], world.max[p.u], world.min[p.v], world.max[p.v], view);
    context.strokeStyle = "rgb(255 255 255 / 0.35)";
    context.lineWidth = 1;
    context.setLineDash([4, 4]);
    context.strokeRect(box[0] - 0.5, box[1] - 0.5, box[2] + 1, box[3] + 1);
    context.setLineDash([]);
    // Crosshair: the lines where the other two planes cut this one.
    const cx = Math.round(view.width / 2) + 0.5;
    const cy = Math.round(view.height / 2) + 0.5;
    const across = (axis) => Object.values(PLANES).find((o) => o.w === axis).color;
    context.globalAlpha = 0.8;
    context.strokeStyle = across(p.u);
    context.beginPath();
    context.moveTo(cx, 0);
    context.lineTo(cx, cy - 6);
    context.moveTo(cx, cy + 6);
    context.lineTo(cx, view.height);
    context.stroke();
    context.strokeStyle = across(p.v);
    context.beginPath();
    context.moveTo(0, cy);
    context.lineTo(cx - 6, cy);
    context.moveTo(cx + 6, cy);
    context.lineTo(view.width, cy);
    context.stroke();
    context.globalAlpha = 1;
    const slice = Math.floor(state.position[p.w]);
    view.info.textContent = AXES[p.w] + " " + slice + (infoMag ? " · mag " + magKey(infoMag) : "");
    const message = errors.length ? "Some data could not be loaded (" + errors[0] + ")." : "";
    view.message.hidden = !message;
    view.message.textContent = message;
    drawScaleBar(view);
  }

  function drawScaleBar(view) {
    const nmPerPixel = state.zoom * minVoxel;
    const target = 110 * nmPerPixel;
    const power = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [5, 2, 1].map((f) => f * power).find((v) => v <= target) || power;
    view.scaleBar.style.width = Math.round(nice / nmPerPixel) + "px";
    view.scaleLabel.textContent = formatLength(nice);
  }

  function formatLength(nm) {
    const units = [[1e6, "mm"], [1e3, "µm"], [1, "nm"]];
    for (const [factor, unit] of units) {
      if (nm >= factor) return (Math.round((nm / factor) * 100) / 100) + " " + unit;
    }
    return (Math.round(nm * 1000) / 1000) + " nm";
  }

  // The overview: the dataset's box in an oblique projection with the planes.
  function drawOverview(view) {
    const context = view.context;
    context.setTransform(view.ratio, 0, 0, view.ratio, 0, 0);
    context.globalAlpha = 1;
    context.fillStyle = "#101318";
    context.fillRect(0, 0, view.width, view.height);
    const nm = (point) => point.map((v, a) => v * voxelSize[a]);
    const angle = Math.PI / 6;
    const project0 = (point) => {
      const [x, y, z] = nm(point);
      return [x + 0.6 * z * Math.cos(angle), y - 0.6 * z * Math.sin(angle)];
    };
    const [x0, y0, z0] = world.min;
    const [x1, y1, z1] = world.max;
    const corners = [];
    for (const x of [x0, x1]) for (const y of [y0, y1]) for (const z of [z0, z1]) corners.push(project0([x, y, z]));
    const xs = corners.map((c) => c[0]);
    const ys = corners.map((c) => c[1]);
    const pad = 28;
    const scale = Math.min((view.width - 2 * pad) / (Math.max(...xs) - Math.min(...xs)),
      (view.height - 2 * pad) / (Math.max(...ys) - Math.min(...ys)));
    if (!(scale > 0)) return;
    const ox = (view.width - scale * (Math.max(...xs) - Math.min(...xs))) / 2 - scale * Math.min(...xs);
    const oy = (view.height - scale * (Math.max(...ys) - Math.min(...ys))) / 2 - scale * Math.min(...ys);
    const project = (point) => {
      const [x, y] = project0(point);
      return [ox + scale * x, oy + scale * y];
    };
    const polygon = (points, fill, stroke) => {
      context.beginPath();
      points.map(project).forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
      context.closePath();
      if (fill) {
        context.fillStyle = fill;
        context.fill();
      }
      context.strokeStyle = stroke;
      context.stroke();
    };
    const [px, py, pz] = state.position;
    context.lineWidth = 1;
    polygon([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]], null, "rgb(255 255 255 / 0.35)");
    polygon([[x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], null, "rgb(255 255 255 / 0.35)");
    for (const [x, y] of [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) polygon([[x, y, z0], [x, y, z1]], null, "rgb(255 255 255 / 0.35)");
    context.globalAlpha = 0.85;
    polygon([[x0, y0, pz], [x1, y0, pz], [x1, y1, pz], [x0, y1, pz]], "rgb(255 92 92 / 0.1)", PLANES.xy.color);
    polygon([[px, y0, z0], [px, y1, z0], [px, y1, z1], [px, y0, z1]], "rgb(92 157 255 / 0.14)", PLANES.yz.color);
    polygon([[x0, py, z0], [x1, py, z0], [x1, py, z1], [x0, py, z1]], "rgb(69 196 134 / 0.14)", PLANES.xz.color);
    context.globalAlpha = 1;
    context.fillStyle = "rgb(255 255 255 / 0.7)";
    context.font = "11px system-ui, sans-serif";
    const label = (text, point) => {
      const [x, y] = project(point);
      context.fillText(text, x, y);
    };
    label("x", [x1 + (x1 - x0) * 0.04, y1, z0]);
    label("y", [x0 - (x1 - x0) * 0.06, y1 + (y1 - y0) * 0.06, z0]);
    label("z", [x1, y0 - (y1 - y0) * 0.04, z1]);
  }

  let renderPending = false;
  function requestRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(render);
  }

  function render() {
    renderPending = false;
    const needed = [];
    for (const plane of Object.keys(PLANES)) {
      const view = views[plane];
      if (isShown(plane) && view.width > 0 && view.height > 0) drawPlane(view, needed);
    }
    if (isShown("overview") && views.overview.width > 0) drawOverview(views.overview);
    schedule(needed);
    if (panelNeedsSync) syncLayerInputs();
    const loading = needed.filter((n) => {
      const entry = cache.get(n.tile.key);
      return entry && (entry.status === "queued" || entry.status === "loading");
    }).length;
    loadState.textContent = loading ? "Loading " + loading + " tile" + (loading === 1 ? "" : "s") + "…" : "";
  }

  // ---- navigation -----------------------------------------------------------

  function changed() {
    clampPosition();
    syncNavigation();
    requestRender();
    scheduleUrl();
    scheduleSave();
  }

  function move(plane, du, dv, dw) {
    const p = PLANES[plane];
    state.position[p.u] += du;
    state.position[p.v] += dv;
    state.position[p.w] += dw;
    changed();
  }

  function zoomBy(factor) {
    state.zoom = clamp(state.zoom * factor, MIN_ZOOM, maxZoom);
    changed();
  }

  function sliceStep(plane) {
    const p = PLANES[plane];
    const layer = colorLayers[0] || drawable[0];
    return layer ? chooseMag(layer, plane)[p.w] : 1;
  }

  for (const plane of Object.keys(PLANES)) {
    const view = views[plane];
    const canvas = view.canvas;
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      state.active = plane;
      canvas.focus({ preventScroll: true });
      canvas.setPointerCapture(event.pointerId);
      drag = { x: event.clientX, y: event.clientY };
      canvas.classList.add("is-dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const p = PLANES[plane];
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      drag = { x: event.clientX, y: event.clientY };
      move(plane, -dx * vpp(p.u), -dy * vpp(p.v), 0);
    });
    const stop = () => {
      drag = null;
      canvas.classList.remove("is-dragging");
    };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("dblclick", (event) => {
      const p = PLANES[plane];
      const rect = canvas.getBoundingClientRect();
      const dx = event.clientX - rect.left - view.width / 2;
      const dy = event.clientY - rect.top - view.height / 2;
      move(plane, dx * vpp(p.u), dy * vpp(p.v), 0);
    });
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const lines = event.deltaMode === 1 ? 33 : event.deltaMode === 2 ? 400 : 1;
      zoomBy(Math.pow(1.0015, clamp(event.deltaY * lines, -400, 400)));
    }, { passive: false });
    canvas.addEventListener("pointerenter", () => { state.active = plane; });
    canvas.addEventListener("focus", () => { state.active = plane; });
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select, [contenteditable], summary")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const plane = isShown(state.active) ? state.active : "xy";
    const p = PLANES[plane];
    const fast = event.shiftKey ? 8 : 1;
    const step = (axis) => Math.max(1, 16 * vpp(axis)) * fast;
    const slices = sliceStep(plane) * (event.shiftKey ? 10 : 1);
    const actions = {
      ArrowLeft: () => move(plane, -step(p.u), 0, 0),
      ArrowRight: () => move(plane, step(p.u), 0, 0),
      ArrowUp: () => move(plane, 0, -step(p.v), 0),
      ArrowDown: () => move(plane, 0, step(p.v), 0),
      f: () => move(plane, 0, 0, slices),
      F: () => move(plane, 0, 0, slices),
      PageDown: () => move(plane, 0, 0, slices),
      d: () => move(plane, 0, 0, -slices),
      D: () => move(plane, 0, 0, -slices),
      PageUp: () => move(plane, 0, 0, -slices),
      "+": () => zoomBy(1 / 1.25),
      "=": () => zoomBy(1 / 1.25),
      "-": () => zoomBy(1.25),
      _: () => zoomBy(1.25),
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  window.addEventListener("hashchange", () => {
    readHash();
    syncNavigation();
    requestRender();
  });

  let urlTimer = null;
  function scheduleUrl() {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => {
      const hash = hashOf();
      if (location.hash !== hash) history.replaceState(history.state, "", location.pathname + location.search + hash);
    }, URL_DELAY_MS);
  }

  // ---- saving ---------------------------------------------------------------

  const saveState = document.querySelector("[data-save-state]");
  const loadState = document.querySelector("[data-load-state]");
  let saveTimer = null;
  let unsaved = false;

  function postJson(url, method, body, keepalive) {
    return fetch(url, {
      method,
      credentials: "same-origin",
      keepalive: Boolean(keepalive),
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrf ? csrf.value : "",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      const detail = Array.isArray(body.detail)
        ? body.detail.map((d) => (d.path ? d.path + ": " : "") + d.message).join("; ")
        : body.detail || "";
      return (body.error || "error " + response.status) + (detail ? " (" + detail + ")" : "");
    } catch (error) {
      return "error " + response.status;
    }
  }

  function scheduleSave() {
    if (!V.ownUrl) return;
    unsaved = true;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveOwn, SAVE_DELAY_MS);
  }

  async function saveOwn(keepalive) {
    clearTimeout(saveTimer);
    if (!V.ownUrl || !unsaved) return;
    unsaved = false;
    try {
      const response = await postJson(V.ownUrl, "POST", currentConfiguration(), keepalive);
      saveState.textContent = response.ok ? "Your view is kept for the next visit." : "Your view could not be kept: " + (await errorText(response));
    } catch (error) {
      saveState.textContent = "Your view could not be kept (offline?).";
    }
  }

  window.addEventListener("pagehide", () => { if (unsaved) saveOwn(true); });

  async function saveDefault(button) {
    button.disabled = true;
    try {
      const response = await postJson(V.defaultUrl, "POST", currentConfiguration());
      if (!response.ok) {
        toast("error", "Could not save the default view: " + (await errorText(response)) + ".");
        return;
      }
      V.datasetDefault = (await response.json()).datasetDefault;
      toast("success", "Saved as the default view of this dataset.");
    } catch (error) {
      toast("error", "The server cannot be reached. Check your connection and try again.");
    } finally {
      button.disabled = false;
    }
  }

  async function resetToDefault(button) {
    button.disabled = true;
    try {
      clearTimeout(saveTimer);
      unsaved = false;
      if (V.ownUrl) {
        const response = await postJson(V.ownUrl, "DELETE");
        if (!response.ok) {
          toast("error", "Could not reset your view: " + (await errorText(response)) + ".");
          return;
        }
      }
      applyConfiguration(V.datasetDefault);
      syncPanel();
      requestRender();
      history.replaceState(history.state, "", location.pathname + location.search + hashOf());
      toast("info", "Showing the dataset's default view.");
    } finally {
      button.disabled = false;
    }
  }

  // ---- side panel -----------------------------------------------------------

  const positionInput = document.getElementById("position-input");
  const zoomInput = document.getElementById("zoom-input");
  const positionError = document.getElementById("position-error");
  const interpolation = document.getElementById("interpolation");
  let panelNeedsSync = false;

  function syncNavigation() {
    if (document.activeElement !== positionInput) {
      positionInput.value = state.position.map((v) => Math.floor(v)).join(", ");
      positionInput.removeAttribute("aria-invalid");
      positionError.hidden = true;
    }
    if (document.activeElement !== zoomInput) zoomInput.value = Math.round(state.zoom * 1000) / 1000;
  }

  function layerControls(layer) {
    return document.querySelector('.layer-controls[data-layer="' + CSS.escape(layer.name) + '"]');
  }

  function syncLayerInputs() {
    panelNeedsSync = false;
    for (const layer of layers) {
      const box = layerControls(layer);
      if (!box) continue;
      const s = state.layers[layer.name];
      const visible = box.querySelector('[data-setting="visible"]');
      visible.checked = layer.supported && !s.isDisabled;
      box.classList.toggle("is-disabled", !visible.checked);
      if (layer.isColor && layer.supported) {
        const [low, high] = intensityRange(layer);
        const bounds = layer.range || [
          Math.min(low, layer.observed ? layer.observed[0] : low),
          Math.max(high, layer.observed ? layer.observed[1] : high),
        ];
        for (const [name, value] of [["min", low], ["max", high]]) {
          const slider = box.querySelector('[data-setting="' + name + '"]');
          if (!layer.range) {
            slider.min = bounds[0];
            slider.max = bounds[1];
            slider.step = (bounds[1] - bounds[0]) / 1000 || 1;
          }
          slider.value = value;
          const number = box.querySelector('[data-setting="' + name + '-number"]');
          if (document.activeElement !== number) number.value = roundFor(layer, value);
        }
        box.querySelector('[data-setting="inverted"]').checked = s.isInverted;
      } else if (layer.supported) {
        const slider = box.querySelector('[data-setting="opacity"]');
        slider.value = state.segmentationPatternOpacity;
        const number = box.querySelector('[data-setting="opacity-number"]');
        if (document.activeElement !== number) number.value = Math.round(state.segmentationPatternOpacity);
      }
    }
  }

  function roundFor(layer, value) {
    return layer.range ? Math.round(value) : Number(Number(value).toPrecision(4));
  }

  function syncPanel() {
    syncNavigation();
    interpolation.checked = state.interpolation;
    for (const radio of document.querySelectorAll('input[name="layout"]')) radio.checked = radio.value === state.layout;
    viewer.dataset.layout = state.layout;
    syncLayerInputs();
  }

  function restyle(layer) {
    layer.styleVersion++;
    layer.lut = null;
    requestRender();
    scheduleSave();
  }

  function setIntensity(layer, which, value) {
    if (!Number.isFinite(value)) return;
    const range = intensityRange(layer).slice();
    range[which === "min" ? 0 : 1] = value;
    if (range[0] > range[1]) range[which === "min" ? 1 : 0] = value;
    state.layers[layer.name].intensityRange = range;
    syncLayerInputs();
    restyle(layer);
  }

  // Auto contrast: the 0.5 and 99.5 percentiles of the loaded tiles in view.
  function autoContrast(layer) {
    const values = [];
    for (const entry of cache.values()) {
      if (entry.layer === layer && entry.status === "ready" && isShown(entry.plane)) {
        const data = entry.data;
        const step = Math.max(1, Math.floor(data.length / 4096));
        for (let k = 0; k < data.length; k += step) if (Number.isFinite(data[k])) values.push(data[k]);
      }
    }
    if (!values.length) {
      toast("info", "No data of " + layer.name + " is loaded yet.");
      return;
    }
    values.sort((a, b) => a - b);
    const low = values[Math.floor(values.length * 0.005)];
    const high = values[Math.min(values.length - 1, Math.floor(values.length * 0.995))];
    state.layers[layer.name].intensityRange = [low, high > low ? high : low + (layer.range ? 1 : 1e-6)];
    syncLayerInputs();
    restyle(layer);
  }

  document.getElementById("position-form").addEventListener("submit", (event) => {
    event.preventDefault();
    applyTypedPosition();
  });
  positionInput.addEventListener("change", applyTypedPosition);
  function applyTypedPosition() {
    const numbers = positionInput.value.trim().split(/[\s,;]+/).map(Number);
    if (numbers.length !== 3 || !numbers.every((v) => Number.isFinite(v) && v >= 0)) {
      positionInput.setAttribute("aria-invalid", "true");
      positionError.textContent = "Type three numbers, like 120, 80, 24.";
      positionError.hidden = false;
      return;
    }
    positionInput.removeAttribute("aria-invalid");
    positionError.hidden = true;
    state.position = numbers.map((v) => Math.floor(v) + 0.5);
    positionInput.blur();
    changed();
  }
  zoomInput.addEventListener("change", () => {
    const zoom = Number(zoomInput.value);
    if (Number.isFinite(zoom) && zoom > 0) {
      state.zoom = clamp(zoom, MIN_ZOOM, maxZoom);
      changed();
    }
    zoomInput.value = Math.round(state.zoom * 1000) / 1000;
  });
  interpolation.addEventListener("change", () => {
    state.interpolation = interpolation.checked;
    changed();
  });
  for (const radio of document.querySelectorAll('input[name="layout"]')) {
    radio.addEventListener("change", () => {
      state.layout = radio.value;
      stored("layout", state.layout);
      viewer.dataset.layout = state.layout;
      requestRender();
    });
  }
  for (const layer of layers) {
    const box = layerControls(layer);
    if (!box || !layer.supported) continue;
    box.addEventListener("input", (event) => {
      const setting = event.target.dataset.setting;
      const s = state.layers[layer.name];
      if (setting === "visible") {
        s.isDisabled = !event.target.checked;
        box.classList.toggle("is-disabled", s.isDisabled);
        requestRender();
        scheduleSave();
      } else if (setting === "inverted") {
        s.isInverted = event.target.checked;
        restyle(layer);
      } else if (setting === "min" || setting === "max") {
        setIntensity(layer, setting, Number(event.target.value));
      } else if (setting === "opacity" || setting === "opacity-number") {
        const value = Number(event.target.value);
        if (!Number.isFinite(value)) return;
        state.segmentationPatternOpacity = clamp(value, 0, 100);
        syncLayerInputs();
        requestRender();
        scheduleSave();
      }
    });
    box.addEventListener("change", (event) => {
      const setting = event.target.dataset.setting;
      if (setting === "min-number" || setting === "max-number") {
        setIntensity(layer, setting.slice(0, 3), Number(event.target.value));
      }
    });
    const auto = box.querySelector('[data-action="auto-contrast"]');
    if (auto) auto.addEventListener("click", () => autoContrast(layer));
  }
  const saveButton = document.querySelector('[data-action="save-default"]');
  if (saveButton) saveButton.addEventListener("click", () => saveDefault(saveButton));
  const resetButton = document.querySelector('[data-action="reset"]');
  resetButton.addEventListener("click", () => resetToDefault(resetButton));

  // ---- start ----------------------------------------------------------------

  applyConfiguration(V.configuration);
  readHash();
  syncPanel();
  requestRender();
  scheduleUrl();
  if (V.tokenUrl) setInterval(refreshToken, TOKEN_REFRESH_MS);
  if (!drawable.length) {
    views.xy.message.hidden = false;
    views.xy.message.textContent = "None of this dataset's layers can be shown in this viewer.";
  }

  // For tests and the console: the state, and whether every tile in view is in.
  window.voxelhubViewer = {
    state,
    configuration: currentConfiguration,
    idle: () => !renderPending && active === 0 && queue.length === 0 &&
      ![...cache.values()].some((e) => e.status === "queued" || e.status === "loading"),
    stats: () => ({ requests: requestCount, cached: cache.size }),
  };
})();
