// Actions on a run from its page (stop, restart, resume, approve, delete, edit): the same API
// routes as the CLI's, authenticated by the dashboard's cookie with the page's CSRF token in
// `X-CSRF-Token`. Destructive ones are confirmed first. Without this script the page stays
// read-only.
(() => {
  "use strict";
  const bar = document.querySelector(".plx-actions");
  if (!bar) return;
  const said = bar.querySelector(".plx-action-status");
  const say = (t) => { if (said) said.textContent = t; };

  async function call(method, path, body) {
    const resp = await fetch(bar.dataset.api + path, {
      method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": bar.dataset.csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!resp.ok) {
      let why = `${resp.status}`;
      try { why = (await resp.json()).error || why; } catch (_) { /* not JSON */ }
      throw new Error(why);
    }
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  const page = (uuid) => `${bar.dataset.project}/runs/${uuid}`;

  bar.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const action = b.dataset.action;
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    b.disabled = true;
    say(`${action}…`);
    try {
      if (action === "delete") {
        await call("DELETE", "");
        window.location.href = bar.dataset.project;
        return;
      }
      const r = await call("POST", `/${action}`, {});
      // A restart (or a copy) is another run: its page.
      if (r && r.uuid && r.uuid !== bar.dataset.uuid) {
        window.location.href = page(r.uuid);
      } else {
        window.location.reload();
      }
    } catch (err) {
      say(`${action}: ${err.message}`);
      b.disabled = false;
    }
  });

  const form = bar.querySelector("form.plx-edit");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const tags = String(f.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean);
      say("saving…");
      try {
        await call("PATCH", "", {
          name: String(f.get("name") || ""),
          description: String(f.get("description") || ""),
          tags,
        });
        window.location.reload();
      } catch (err) {
        say(`saving: ${err.message}`);
      }
    });
  }
  bar.hidden = false;
})();
