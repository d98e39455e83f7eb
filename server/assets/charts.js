// The dashboard's interactive charts, over uPlot (vendored beside this file). The page works
// without this script (its tables and static SVG charts); with it, each `.plx-plot` becomes a
// chart of one metric overlaid across runs: values on hover, drag to zoom (double-click to
// reset), Shift+drag or the arrow keys to pan, log scale, x by step, wall time or relative time, EMA smoothing, and raw values on
// demand. Series are downsampled by the server to about the chart's width (`sample=N`).
//
// `window.plxCharts` holds the charts by metric (their `data` is what is drawn), so tests read
// the drawn series back.
(() => {
  "use strict";
  const root = document.querySelector("[data-plx-charts]");
  if (!root || !window.uPlot) return;
  const cfg = JSON.parse(root.dataset.plxCharts);
  const COLORS = ["#2457c5", "#c4320a", "#18794e", "#a66b00", "#7c3aed",
    "#0891b2", "#be185d", "#4d7c0f", "#9a3412", "#475569"];
  const state = { x: "step", log: false, smooth: 0, raw: false };
  const charts = {};
  window.plxCharts = charts;
  window.plxChartsReady = false;
  let loaded = null; // uuid -> metric -> {step, timestamp, metric}

  const $ = (sel) => root.querySelector(sel);
  const plots = () => Array.from(root.querySelectorAll(".plx-plot"));

  // TensorBoard's smoothing: an exponential moving average, debiased at the start; gaps stay.
  function ema(ys, w) {
    if (!(w > 0)) return ys;
    let last = 0, n = 0;
    return ys.map((y) => {
      if (y == null || !Number.isFinite(y)) return y;
      last = last * w + (1 - w) * y;
      n += 1;
      return last / (1 - Math.pow(w, n));
    });
  }

  function xsOf(d) {
    if (state.x === "step") return d.step.map((s, i) => (s == null ? i : s));
    const ts = d.timestamp.map((t) => Date.parse(t) / 1000);
    if (state.x === "wall") return ts;
    const t0 = ts.length ? ts[0] : 0;
    return ts.map((t) => t - t0);
  }

  // One run's points as [xs, ys], sorted by x (uPlot.join needs ascending x), one value per x.
  function table(d) {
    const xs = xsOf(d);
    const pairs = xs.map((x, i) => [x, d.metric[i]]).filter((p) => Number.isFinite(p[0]));
    pairs.sort((a, b) => a[0] - b[0]);
    const out = [[], []];
    for (const [x, y] of pairs) {
      if (out[0].length && out[0][out[0].length - 1] === x) {
        out[1][out[1].length - 1] = y;
      } else {
        out[0].push(x);
        out[1].push(y);
      }
    }
    return out;
  }

  // A chart's width, from the box the charts are in (not the chart's own, which its drawing
  // sets): two a row where there is room, less their padding and border.
  function width() {
    const box = $(".charts");
    const w = box ? box.clientWidth : 1200;
    const per = w >= 2 * 420 + 16 ? (w - 16) / 2 : w;
    return Math.max(320, Math.floor(per - 26));
  }

  // A live run's page asks for every metric, and new ones get a chart as they appear.
  function discover(names) {
    const box = $(".charts");
    for (const n of names) {
      if (cfg.metrics.includes(n) || !box) continue;
      cfg.metrics.push(n);
      const el = document.createElement("div");
      el.className = "chart plx-plot";
      el.dataset.metric = n;
      box.append(el);
    }
    if (cfg.metrics.length) {
      for (const el of [document.querySelector(".plx-metrics-head"), $(".plx-controls")]) {
        if (el) el.hidden = false;
      }
    }
  }

  async function load() {
    const status = $(".plx-status");
    const sample = Math.min(4000, Math.max(200, 2 * width()));
    const q = new URLSearchParams({ runs: cfg.runs.map((r) => r.uuid).join(",") });
    if (!cfg.discover) q.set("names", cfg.metrics.join(","));
    if (!state.raw) q.set("sample", String(sample));
    if (status && !loaded) status.textContent = "loading…";
    const resp = await fetch(`${cfg.api}/multi/events/metric?${q}`, { credentials: "same-origin" });
    if (!resp.ok) {
      if (status) status.textContent = `the series could not be read (${resp.status})`;
      return;
    }
    const body = await resp.json();
    loaded = {};
    for (const [uuid, series] of Object.entries(body.data || {})) {
      loaded[uuid] = {};
      for (const s of series) loaded[uuid][s.name] = s.data;
      if (cfg.discover) discover(series.map((s) => s.name).sort());
    }
    if (status) status.textContent = state.raw ? "raw values" : `at most about ${sample} points per series (downsampled by the server)`;
    draw();
  }

  function draw() {
    if (!loaded) return;
    for (const el of plots()) {
      const metric = el.dataset.metric;
      const runs = cfg.runs.filter((r) => loaded[r.uuid] && loaded[r.uuid][metric]);
      if (!runs.length) continue;
      const joined = uPlot.join(runs.map((r) => table(loaded[r.uuid][metric])));
      const data = [joined[0]];
      for (let i = 1; i < joined.length; i++) {
        let ys = ema(Array.from(joined[i]), state.smooth);
        if (state.log) ys = ys.map((y) => (y != null && y > 0 ? y : null));
        data.push(ys);
      }
      const xLabel = { step: "step", wall: "time", rel: "seconds" }[state.x];
      const opts = {
        title: metric,
        width: width(),
        height: 260,
        scales: {
          x: { time: state.x === "wall" },
          y: state.log ? { distr: 3 } : {},
        },
        axes: [{ label: xLabel }, {}],
        cursor: { drag: { x: true, y: false } },
        series: [{ label: xLabel }].concat(runs.map((r) => {
          const i = cfg.runs.indexOf(r);
          return {
            label: r.name,
            stroke: COLORS[i % COLORS.length],
            width: r.uuid === cfg.baseline ? 2.5 : 1.5,
            dash: r.uuid === cfg.baseline ? [6, 3] : undefined,
            spanGaps: true,
            points: { show: false },
          };
        })),
      };
      const key = JSON.stringify([runs.map((r) => r.uuid), state.x, state.log, width()]);
      const had = charts[metric];
      if (had && had.plxKey === key) {
        // New points of the same chart (a live run): drawn in place; a zoomed or panned
        // chart keeps its range.
        had.setData(data, !had.plxZoomed);
        continue;
      }
      if (had) had.destroy();
      el.textContent = "";
      opts.hooks = {
        setSelect: [(u) => { if (u.select.width > 0) u.plxZoomed = true; }],
      };
      const u = new uPlot(opts, data, el);
      u.plxRuns = runs.map((r) => r.uuid);
      u.plxKey = key;
      charts[metric] = u;
      navigate(u, el);
    }
    window.plxChartsReady = true;
    // When every chart was first drawn, from the navigation's start (what the UI bench reads).
    if (window.plxChartsDrawnAt === undefined) window.plxChartsDrawnAt = performance.now();
    window.dispatchEvent(new Event("plx-charts-drawn"));
  }

  // Panning and zooming besides the drag: Shift+drag pans; on a focused chart (Tab to it) the
  // arrow keys pan, + and - zoom, 0 resets; a double-click resets too.
  function navigate(u, el) {
    const over = u.over;
    const full = () => {
      const xs = u.data[0];
      return [xs[0], xs[xs.length - 1]];
    };
    const setX = (min, max) => {
      u.plxZoomed = true;
      u.setScale("x", { min, max });
    };
    const reset = () => {
      u.plxZoomed = false;
      const [min, max] = full();
      u.setScale("x", { min, max });
    };
    el.tabIndex = 0;
    el.setAttribute("aria-label", `${el.dataset.metric}: Shift+drag or arrow keys to pan, + and - to zoom, 0 to reset`);
    el.addEventListener("keydown", (e) => {
      const { min, max } = u.scales.x;
      const w = max - min;
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        const d = (e.key === "ArrowLeft" ? -0.2 : 0.2) * w;
        setX(min + d, max + d);
      } else if (e.key === "+" || e.key === "=") {
        setX(min + w / 4, max - w / 4);
      } else if (e.key === "-") {
        setX(min - w / 2, max + w / 2);
      } else if (e.key === "0") {
        reset();
      } else {
        return;
      }
      e.preventDefault();
    });
    over.addEventListener("dblclick", reset);
    // On the wrapper, in the capture phase: uPlot's own drag (a zoom) never sees it.
    el.addEventListener("mousedown", (e) => {
      if (!e.shiftKey || !over.contains(e.target)) return;
      e.stopPropagation();
      e.preventDefault();
      const { min, max } = u.scales.x;
      const x0 = e.clientX;
      const per = (max - min) / over.getBoundingClientRect().width;
      const move = (m) => {
        const d = (x0 - m.clientX) * per;
        setX(min + d, max + d);
      };
      const up = () => {
        document.removeEventListener("mousemove", move);
        document.removeEventListener("mouseup", up);
      };
      document.addEventListener("mousemove", move);
      document.addEventListener("mouseup", up);
    }, true);
  }

  // The controls, rendered by the server, act from here.
  const on = (sel, ev, f) => { const el = $(sel); if (el) el.addEventListener(ev, f); };
  on("select[name=x]", "change", (e) => { state.x = e.target.value; draw(); });
  on("input[name=log]", "change", (e) => { state.log = e.target.checked; draw(); });
  on("input[name=smooth]", "input", (e) => {
    state.smooth = Math.min(0.999, Math.max(0, Number(e.target.value) || 0));
    const out = $(".plx-smooth-value");
    if (out) out.textContent = state.smooth.toFixed(2);
    draw();
  });
  on("input[name=raw]", "change", (e) => { state.raw = e.target.checked; load(); });
  let resize = null;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(draw, 150); });
  const controls = $(".plx-controls");
  if (controls) controls.hidden = !cfg.metrics.length;
  // A live page's script asks for the new points.
  window.plxChartsReload = load;
  load();
})();
