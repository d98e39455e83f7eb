// A running run's page, live: twice a second its status, the log lines written since the last
// ones shown (read on from where the page left off), its charts' new points and a pipeline's
// operations or trials (the section redrawn by the server), without
// reloading (which would lose a zoom or an edit). Stops once the run has ended. Without this
// script the page refreshes itself every few seconds instead.
(() => {
  "use strict";
  const live = document.querySelector("[data-plx-live]");
  if (!live) return;
  const cfg = JSON.parse(live.dataset.plxLive);
  const DONE = new Set(["succeeded", "failed", "stopped", "skipped", "upstream_failed", "done"]);
  const KEEP = 2000;
  let lastFile = cfg.last_file || null;
  let lastTime = cfg.last_time || null;
  const status = document.querySelector(".plx-run-status");
  const pre = document.querySelector("pre.plx-logs");
  const pipeline = document.querySelector("[data-plx-pipeline]");
  let etag = pipeline ? pipeline.dataset.plxEtag || "" : "";
  window.plxLive = { ticks: 0, lines: 0, swaps: 0, status: cfg.status, ended: false };

  function append(line) {
    if (!pre) return;
    const ts = document.createElement("span");
    ts.className = "muted";
    ts.textContent = (line.timestamp || "").slice(0, 19);
    pre.append(ts, ` ${line.value}\n`);
    while (pre.childNodes.length > 2 * KEEP) pre.removeChild(pre.firstChild);
    window.plxLive.lines += 1;
  }

  async function tick() {
    let ended = false;
    try {
      const run = await (await fetch(cfg.run, { credentials: "same-origin" })).json();
      if (run.status && status) {
        status.textContent = run.status;
        status.className = `plx-run-status s-${run.status}`;
      }
      window.plxLive.status = run.status;
      const q = new URLSearchParams();
      if (lastFile) q.set("last_file", lastFile);
      if (lastTime) q.set("last_time", lastTime);
      const logs = await (await fetch(`${cfg.logs}?${q}`, { credentials: "same-origin" })).json();
      const stick = pre && pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      for (const l of logs.logs || []) append(l);
      if (stick && pre) pre.scrollTop = pre.scrollHeight;
      if (logs.last_file) lastFile = logs.last_file;
      if (logs.last_time) lastTime = logs.last_time;
      if (window.plxChartsReload) await window.plxChartsReload();
      // A DAG's operations or a search's trials: the section drawn anew by the server.
      // Asked with the ETag of what is shown: unchanged, it is not sent again; not swapped
      // while a trial's range is being dragged.
      if (pipeline && !(window.plxSearch && window.plxSearch.dragging)) {
        const resp = await fetch(pipeline.dataset.plxPipeline, {
          credentials: "same-origin",
          headers: { "If-None-Match": etag },
        });
        if (resp.status === 200) {
          pipeline.innerHTML = await resp.text();
          etag = resp.headers.get("ETag") || "";
          window.plxLive.swaps += 1;
          window.dispatchEvent(new Event("plx-pipeline-swapped"));
        }
      }
      ended = DONE.has(run.status);
    } catch (_) {
      // The server out of reach for a moment: the next tick tries again.
    }
    window.plxLive.ticks += 1;
    if (ended) {
      window.plxLive.ended = true;
    } else {
      setTimeout(tick, 500);
    }
  }
  setTimeout(tick, 500);
})();
