// A search's page: brushing the parallel-coordinates chart the server drew. Dragging along an
// axis keeps the trials whose value there is within the range (the others' lines fade and
// their rows in the trials table hide); a click on an axis clears its range; Escape clears
// them all. By keyboard, an axis takes the focus and its range moves with the arrow keys. Ranges are kept by axis name across a live page's refresh of the section.
//
// `window.plxSearch` tells tests what is brushed (`ranges`, in the axes' own values) and
// which trials are kept (`selected`, their uuids).
(() => {
  "use strict";
  const state = { brushes: {}, ranges: {}, selected: [], dragging: false };
  window.plxSearch = state;

  function valueAt(axis, t) {
    if (axis.scale === "linear") return axis.lo + t * (axis.hi - axis.lo);
    if (axis.scale === "log") return Math.exp(Math.log(axis.lo) + t * (Math.log(axis.hi) - Math.log(axis.lo)));
    return null;
  }

  // A brushed range in the axis's terms: numbers for a numeric axis, the categories within.
  function range(axis, lo, hi) {
    if (axis.scale === "category") {
      const n = axis.categories.length;
      return axis.categories.filter((_, i) => {
        const t = n > 1 ? i / (n - 1) : 0.5;
        return t >= lo - 1e-9 && t <= hi + 1e-9;
      });
    }
    return [valueAt(axis, lo), valueAt(axis, hi)];
  }

  // The chart as it is in the page now (a live page may have drawn it anew).
  function chart() {
    const svg = document.querySelector("svg.plx-pc");
    if (!svg) return null;
    return {
      svg,
      axes: JSON.parse(svg.dataset.axes),
      top: Number(svg.dataset.top),
      bottom: Number(svg.dataset.bottom),
      lines: Array.from(svg.querySelectorAll("polyline.trial")),
      rows: Array.from(document.querySelectorAll("table.plx-trials tr[data-uuid]")),
    };
  }

  function apply() {
    const c = chart();
    if (!c) return;
    const { svg, axes, top, bottom, lines, rows } = c;
    const active = Object.entries(state.brushes)
      .map(([name, b]) => [axes.findIndex((a) => a.name === name), b])
      .filter(([i]) => i >= 0);
    const kept = new Set();
    for (const l of lines) {
      const v = JSON.parse(l.dataset.v);
      const ok = active.every(([i, [lo, hi]]) => v[i] != null && v[i] >= lo - 1e-9 && v[i] <= hi + 1e-9);
      l.style.opacity = ok ? "" : "0.08";
      if (ok) kept.add(l.dataset.uuid);
    }
    for (const r of rows) r.hidden = !kept.has(r.dataset.uuid);
    for (const [i, a] of axes.entries()) {
      const rect = svg.querySelector(`rect.plx-brush[data-axis="${i}"]`);
      const b = state.brushes[a.name];
      if (!rect) continue;
      if (b) {
        rect.setAttribute("y", String(bottom - b[1] * (bottom - top)));
        rect.setAttribute("height", String(Math.max(1, (b[1] - b[0]) * (bottom - top))));
        rect.setAttribute("visibility", "visible");
      } else {
        rect.setAttribute("visibility", "hidden");
      }
    }
    state.ranges = {};
    for (const [i, b] of active) state.ranges[axes[i].name] = range(axes[i], b[0], b[1]);
    state.selected = lines.filter((l) => kept.has(l.dataset.uuid)).map((l) => l.dataset.uuid);
    const status = document.querySelector(".plx-brush-status");
    if (status) {
      status.textContent = active.length
        ? `${kept.size} of ${lines.length} trials within the ranges of ${active.map(([i]) => axes[i].name).join(", ")} (click an axis or press Escape to clear)`
        : "Drag along an axis to keep the trials within a range; click an axis to clear it.";
    }
  }

  function bind() {
    const c = chart();
    if (!c || c.svg.dataset.plxBound) return;
    const { svg, axes, top, bottom, lines, rows } = c;
    svg.dataset.plxBound = "1";
    const toT = (y) => Math.min(1, Math.max(0, (bottom - y) / (bottom - top)));
    const svgY = (ev) => {
      const p = svg.createSVGPoint();
      p.x = ev.clientX;
      p.y = ev.clientY;
      return p.matrixTransform(svg.getScreenCTM().inverse()).y;
    };
    for (const hit of svg.querySelectorAll("rect.plx-hit")) {
      const axis = axes[Number(hit.dataset.axis)];
      hit.addEventListener("pointerdown", (ev) => {
        ev.preventDefault();
        const y0 = svgY(ev);
        let moved = false;
        state.dragging = true;
        const move = (e) => {
          const y1 = svgY(e);
          if (Math.abs(y1 - y0) < 3) return;
          moved = true;
          const [a, b] = [toT(y0), toT(y1)].sort((p, q) => p - q);
          state.brushes[axis.name] = [a, b];
          apply();
        };
        // Followed on the whole window: the drag may leave the axis (past its ends).
        const up = () => {
          window.removeEventListener("pointermove", move);
          window.removeEventListener("pointerup", up);
          state.dragging = false;
          if (!moved) delete state.brushes[axis.name];
          apply();
        };
        window.addEventListener("pointermove", move);
        window.addEventListener("pointerup", up);
      });
    }
    // By keyboard: Tab to an axis; the arrow keys move its range (a middle half at first),
    // + and - narrow and widen it, Delete clears it.
    for (const hit of svg.querySelectorAll("rect.plx-hit")) {
      const axis = axes[Number(hit.dataset.axis)];
      hit.addEventListener("keydown", (e) => {
        let [lo, hi] = state.brushes[axis.name] || [0.25, 0.75];
        const had = !!state.brushes[axis.name];
        const w = hi - lo;
        if (e.key === "Delete" || e.key === "Backspace") {
          delete state.brushes[axis.name];
        } else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
          const d = had ? (e.key === "ArrowUp" ? 0.1 : -0.1) : 0;
          lo = Math.min(1 - w, Math.max(0, lo + d));
          state.brushes[axis.name] = [lo, lo + w];
        } else if (e.key === "+" || e.key === "=" || e.key === "-") {
          const d = had ? (e.key === "-" ? 0.05 : -0.05) : 0;
          const a = Math.max(0, lo - d), b = Math.min(1, hi + d);
          state.brushes[axis.name] = a < b ? [a, b] : [lo, hi];
        } else {
          return;
        }
        e.preventDefault();
        apply();
      });
    }
    // Hovering a trial's row brings its line forward.
    for (const r of rows) {
      const line = lines.find((l) => l.dataset.uuid === r.dataset.uuid);
      if (!line) continue;
      r.addEventListener("mouseenter", () => {
        line.setAttribute("stroke-width", "4");
        line.parentNode.parentNode.append(line.parentNode);
      });
      r.addEventListener("mouseleave", () => line.setAttribute("stroke-width", "1.6"));
    }
    apply();
  }

  state.clear = () => { state.brushes = {}; apply(); };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") state.clear();
  });
  // A live page swaps the section in anew: bound again, the ranges kept.
  window.addEventListener("plx-pipeline-swapped", bind);
  bind();
})();
