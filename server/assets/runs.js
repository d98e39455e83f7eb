// The runs table: the columns chosen are kept per project (in this browser), and a page
// with running runs refreshes itself, but not while runs are ticked or something is typed.
(() => {
  "use strict";
  const el = document.querySelector("[data-plx-runs]");
  if (!el) return;
  const cfg = JSON.parse(el.dataset.plxRuns);
  const key = `plx-cols:${cfg.project}`;
  const url = new URL(window.location.href);
  const given = url.searchParams.get("cols") || url.searchParams.getAll("col").join(",");
  try {
    if (given) {
      window.localStorage.setItem(key, given);
    } else {
      const kept = window.localStorage.getItem(key);
      if (kept) {
        url.searchParams.set("cols", kept);
        window.location.replace(url.toString());
        return;
      }
    }
  } catch (_) {
    // No storage (private mode): the columns are the URL's.
  }
  if (cfg.live) {
    const busy = () => document.querySelector("input[name=runs]:checked")
      || document.querySelector("details.plx-cols[open]")
      || (document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName));
    setInterval(() => { if (!busy()) window.location.reload(); }, 5000);
  }
})();
