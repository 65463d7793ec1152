// Pagehook console: the controls that let an admin choose instead of type
// (binding_form.rs, connections.rs, overview.rs), and the words that say
// what a form did. console.js sends the forms; this file
// - fills a binding's destination and the plugin's setting from one
//   picker (Slack channels, Teams connections, Confluence spaces);
// - turns list settings into chips, page-id settings into a page search,
//   space keys into capitals;
// - describes a form's answer in words ("Binding 4 added for space ENG,
//   dry run") and keeps them across the reload that follows;
// - shows a connection test's result on its row, and a retry's on its row.
// No inline scripts: the Content-Security-Policy allows only our files.
"use strict";

(function () {
  const json = async (path) => {
    const answer = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const text = await answer.text();
    let body = null;
    try { body = JSON.parse(text); } catch (_) { /* not JSON */ }
    if (!answer.ok) throw new Error((body && body.error) || text || answer.statusText);
    return body;
  };
  const debounce = (fn, ms) => {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  };
  const enc = encodeURIComponent;

  // --- where to post: one choice fills the destination and the setting ---

  function picked(box, destination, value, words) {
    const to = box.querySelector("[data-pick-destination]");
    const setting = box.querySelector("[data-setting]");
    if (to) to.value = destination || "";
    if (setting) setting.value = destination ? value : "";
    const summary = box.querySelector("[data-pick-summary]");
    if (summary) {
      summary.textContent = destination
        ? `Posts to ${destination}` + (setting ? `; setting ${setting.dataset.setting} = ${value}.` : ".")
        : words;
    }
  }

  function slackPicker(box) {
    const workspace = box.querySelector("[data-pick-workspace]");
    const search = box.querySelector("[data-pick-search]");
    const list = box.querySelector("[data-pick-channel]");
    const status = box.querySelector("[data-pick-status]");
    let asked = 0;
    let loaded = false;
    async function load() {
      const ws = workspace.value;
      const q = search.value.trim();
      const mine = ++asked;
      status.textContent = "Asking Slack…";
      try {
        const found = await json(`/api/connections/${enc(ws)}/channels?q=${enc(q)}`);
        if (mine !== asked) return;
        const keep = list.value;
        list.replaceChildren();
        const none = new Option("(no channel: choose one to post to)", "");
        list.add(none);
        for (const c of found.channels) {
          let text = c.name;
          if (c.private) text += " (private; the bot is in it)";
          if (!c.member) text += " (the bot is not in it)";
          const o = new Option(text, c.name);
          o.dataset.private = c.private ? "yes" : "no";
          list.add(o);
        }
        list.value = [...list.options].some((o) => o.value === keep) ? keep : "";
        let words = `${found.channels.length} channel${found.channels.length === 1 ? "" : "s"}`;
        if (q) words += ` matching “${q}”`;
        if (found.more) words += `, ${found.more} more: type to narrow`;
        if (!found.complete) words += " (Slack's list is still being read: look again in a moment)";
        status.textContent = words + ".";
      } catch (e) {
        if (mine === asked) status.textContent = String(e.message || e);
      }
    }
    const choose = () => {
      const name = list.value;
      picked(box, name ? `slack:${workspace.value}/${name}` : "", name, "Posts nowhere yet.");
    };
    workspace.addEventListener("change", () => { list.value = ""; choose(); loaded = true; load(); });
    search.addEventListener("input", debounce(load, 200));
    // Enter in the search box picks the first match instead of sending the form.
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        if (list.options.length > 1) { list.selectedIndex = 1; choose(); }
      }
    });
    list.addEventListener("change", choose);
    // Slack is asked only once someone looks for a channel, not on every page view.
    const first = () => { if (!loaded) { loaded = true; load(); } };
    search.addEventListener("focus", first);
    list.addEventListener("focus", first);
  }

  function teamsPicker(box) {
    const select = box.querySelector("[data-pick-teams]");
    select.addEventListener("change", () => {
      const name = select.value;
      picked(box, name ? `teams:${name}` : "", name, "Posts to no Teams channel.");
    });
  }

  function spacePicker(box) {
    const input = box.querySelector("[data-pick-space]");
    const connection = box.querySelector("[data-pick-connection]");
    const options = document.getElementById(input.getAttribute("list"));
    const load = debounce(async () => {
      if (!connection || !options) return;
      try {
        const found = await json(`/api/connections/${enc(connection.value)}/spaces?q=${enc(input.value)}`);
        options.replaceChildren(...found.map((s) => {
          const o = document.createElement("option");
          o.value = s.key;
          if (s.name) o.label = s.name;
          return o;
        }));
      } catch (_) { /* the key can still be typed */ }
    }, 200);
    const choose = () => {
      const key = input.value.trim();
      picked(box, key ? `confluence:${key}` : "", key, "Writes in no space yet.");
    };
    input.addEventListener("input", () => { choose(); load(); });
    input.addEventListener("change", choose);
    input.addEventListener("focus", load, { once: true });
  }

  // --- typed settings ---

  // A list setting as chips: the typed entry takes the field's id (so its
  // label still names it); the original input keeps the value, hidden.
  function chips(original) {
    const entry = document.createElement("input");
    entry.type = "text";
    entry.id = original.id;
    entry.autocomplete = "off";
    entry.className = "chip-entry";
    entry.setAttribute("aria-describedby", original.getAttribute("aria-describedby") || "");
    entry.placeholder = "type, then Enter";
    original.id = original.id + "-value";
    original.type = "hidden";
    const box = document.createElement("div");
    box.className = "chips";
    const items = original.value.split(",").map((s) => s.trim()).filter((s) => s);
    const list = document.createElement("span");
    list.className = "chip-list";
    const sync = () => { original.value = items.join(", "); };
    const render = () => {
      list.replaceChildren(...items.map((text, i) => {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.textContent = text + " ";
        const x = document.createElement("button");
        x.type = "button";
        x.textContent = "×";
        x.setAttribute("aria-label", `Remove ${text}`);
        x.addEventListener("click", () => { items.splice(i, 1); sync(); render(); entry.focus(); });
        chip.append(x);
        return chip;
      }));
    };
    const add = () => {
      for (const part of entry.value.split(",").map((s) => s.trim()).filter((s) => s)) {
        if (!items.includes(part)) items.push(part);
      }
      entry.value = "";
      sync();
      render();
    };
    entry.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === ",") { ev.preventDefault(); add(); }
      else if (ev.key === "Backspace" && entry.value === "" && items.length) { items.pop(); sync(); render(); }
    });
    entry.addEventListener("blur", add);
    entry.dataset.chipEntry = "";
    entry.addChip = add;
    original.parentNode.insertBefore(box, original);
    box.append(list, entry);
    render();
  }

  // A page-id setting: typing a title searches pages; choosing one puts its id.
  function pagePicker(input) {
    const options = document.getElementById(input.getAttribute("list"));
    const load = debounce(async () => {
      const q = input.value.trim();
      if (!q || /^\d+$/.test(q) || !options) return;
      let path = `/api/connections/${enc(input.dataset.pagePicker)}/pages?q=${enc(q)}`;
      if (input.dataset.space) path += `&space=${enc(input.dataset.space)}`;
      try {
        const found = await json(path);
        options.replaceChildren(...found.map((p) => {
          const o = document.createElement("option");
          o.value = String(p.id);
          o.label = p.title + (p.space ? ` (${p.space})` : "");
          return o;
        }));
      } catch (_) { /* the id can still be typed */ }
    }, 250);
    input.addEventListener("input", load);
  }

  // Space keys in capitals (personal spaces, ~name, stay as typed).
  document.addEventListener("input", (ev) => {
    const el = ev.target;
    if (el instanceof HTMLInputElement && el.dataset.upper !== undefined && !el.value.startsWith("~")) {
      const at = el.selectionStart;
      el.value = el.value.toUpperCase();
      if (at !== null) el.setSelectionRange(at, at);
    }
  });

  // Text still in a chip entry is added before its form is sent (capture:
  // this runs before console.js reads the form).
  document.addEventListener("submit", (ev) => {
    for (const entry of ev.target.querySelectorAll?.("[data-chip-entry]") || []) entry.addChip();
  }, true);

  // --- what a form did, in words ---

  const scopeWords = (scope) => {
    if (!scope || scope === "global") return "every space";
    const [kind, rest] = scope.split(/:(.*)/);
    return kind === "space" ? `space ${rest}` : kind === "page" ? `page ${rest} and below` : scope;
  };
  const describers = {
    "binding-added": (j) => ({
      text: `Binding ${j.id} added for ${scopeWords(j.scope)}${j.dry_run ? ", dry run" : ""}.`
        + (j.destinations && j.destinations.length ? ` It may post to ${j.destinations.join(", ")}.` : "")
        + (j.events && j.events.length ? ` Events: ${j.events.join(", ")}.` : ""),
      anchor: `binding-${j.id}`,
    }),
    "binding-removed": (j) => ({ text: `Binding ${j.removed} removed.` }),
    "connection-added": (j) => ({
      text: `Connection ${j.name} (${j.kind}) saved${j.dry_run ? ", dry run: deliveries are recorded, not sent" : ""}. Test it from its row.`,
      anchor: `connection-${j.name}`,
    }),
    "connection-changed": (j) => ({
      text: j.dry_run
        ? `Connection ${j.name} switched to dry run: deliveries through it are recorded (Would send), not sent.`
        : `Connection ${j.name} is live: deliveries through it are sent from now on.`,
      anchor: `connection-${j.name}`,
    }),
    "connection-edited": (j) => {
      const changed = j.changed || [];
      if (!changed.length) return { text: `Nothing changed in connection ${j.name}.` };
      const secret = (c) => ["token", "signing_secret", "webhook_secret", "app_token"].includes(c);
      const names = {
        url: "URL", username: "username", token: "token", app_token: "app-level token",
        signing_secret: "signing secret", webhook_secret: "webhook secret", proxy: "proxy",
        confluence: "Confluence for chat",
      };
      const words = changed.map((c) => (c === "dry_run" ? (j.dry_run ? "dry run on" : "dry run off") : names[c] || c));
      let text = `Connection ${j.name} changed: ${words.join(", ")}.`;
      if (changed.some((c) => c === "url" || c === "username" || secret(c))) {
        text += " Its health mark is cleared; its next delivery or a Test says whether it works, and its dead letters can be retried from the Overview.";
      }
      return { text };
    },
    "retried": (j) => ({ text: `Delivery ${j.queued} queued again: its row shows the outcome once it is sent.` }),
    "retried-dead": (j) => ({
      text: j.queued
        ? `${j.queued} dead letter${j.queued === 1 ? "" : "s"} to ${j.destination} queued again: ${j.queued === 1 ? "it goes" : "they go"} out now, and the lists below follow.`
        : `No dead letters to ${j.destination}: nothing was queued. Write the destination exactly as the deliveries show it (e.g. slack:acme/#eng).`,
    }),
    // The plugin page's forms: what changed, in words.
    "grants-saved": (j, form) => {
      const before = [...form.querySelectorAll("input[name='grants[]']")].filter((i) => i.defaultChecked).map((i) => i.value);
      const after = j.grants || [];
      const added = after.filter((g) => !before.includes(g));
      const withdrawn = before.filter((g) => !after.includes(g));
      const parts = [];
      if (added.length) parts.push(`granted ${added.join(", ")}`);
      if (withdrawn.length) parts.push(`withdrawn ${withdrawn.join(", ")}`);
      return {
        text: `Grants of ${j.name} saved: ${parts.length ? parts.join("; ") : "nothing changed"}. `
          + (after.length ? `It may return ${after.join(", ")}.` : "It may return no action now: its bindings deliver nothing."),
      };
    },
    "plugin-enabled": (j) => ({ text: `Plugin ${j.name} enabled: it is called for its bindings' events again.` }),
    "plugin-disabled": (j) => ({ text: `Plugin ${j.name} disabled: it is not called until it is enabled again; its bindings stay.` }),
    "breaker-reset": (j, form) => ({
      text: form.dataset.breaker === "open"
        ? `Breaker of ${j.name} closed: it is called again from the next event.`
        : `Breaker of ${j.name} reset (it was not open)${Number(form.dataset.failures) > 0 ? `: its ${form.dataset.failures} failures in a row are forgotten` : ""}.`,
    }),
    "limits-granted": (j, form) => ({
      text: `Plugin ${j.name} now runs with the limits it requests`
        + (form.dataset.held ? `: ${form.dataset.held}.` : "."),
    }),
  };

  // The text for a form's answer, or null for console.js's own words.
  function describe(form, answer) {
    const name = form.dataset.describe;
    if (!name || !describers[name] || !answer) return null;
    try { return describers[name](answer, form); } catch (_) { return null; }
  }

  // Keeps the words for the page that the reload shows, and reloads
  // (at the row the change concerns, when there is one).
  function keepAndReload(text, anchor) {
    try { sessionStorage.setItem("pagehook-said", text); } catch (_) { /* private mode */ }
    if (anchor && window.location.hash !== "#" + anchor) {
      window.location.hash = anchor;
    }
    window.location.reload();
  }

  // After a form's answer, special places for its words: `row-test`
  // (a connection test, on its row) and `row-retry` (a delivery, on its row).
  const handlers = {
    "row-test": (form, answer) => {
      const row = form.closest("tr");
      const out = row && row.querySelector("[data-test-result]");
      const health = row && row.querySelector("[data-health]");
      const ok = answer && answer.ok;
      const state = answer && answer.state;
      if (out) {
        out.replaceChildren();
        const mark = document.createElement("span");
        mark.className = "state " + (ok ? "state-ok" : state === "untested" ? "state-warn" : "state-bad");
        mark.textContent = ok ? "works" : state === "untested" ? "not tested" : "failed";
        out.append(mark, " ", (answer && answer.message) || "");
        out.hidden = false;
      }
      if (health && state !== "untested") {
        health.replaceChildren();
        const mark = document.createElement("span");
        mark.className = "state " + (ok ? "state-ok" : "state-bad");
        mark.textContent = ok ? "ok" : "failing";
        health.append(mark);
        if (!ok) health.append(" ", (answer && answer.message) || "");
      }
      return ok ? "Test passed." : state === "untested" ? "Not tested." : "Test failed: the row says why.";
    },
    "row-retry": (form, answer) => {
      const id = answer && answer.queued;
      const row = form.closest("tr");
      if (row) {
        row.classList.add("retried");
        const note = document.createElement("span");
        note.className = "state state-warn retry-note";
        note.textContent = "queued again: this row shows the outcome once it is sent";
        form.replaceWith(note);
      }
      return id ? `Delivery ${id} queued again: its row shows the outcome once it is sent.` : "Queued again.";
    },
  };

  window.PagehookForms = { describe, keepAndReload, handlers };

  // The words a form left before the reload.
  let kept = null;
  try {
    kept = sessionStorage.getItem("pagehook-said");
    sessionStorage.removeItem("pagehook-said");
  } catch (_) { /* private mode */ }
  const start = () => {
    if (kept) {
      const r = document.getElementById("result");
      if (r) { r.textContent = kept; r.classList.remove("failed"); r.setAttribute("role", "status"); }
    }
    for (const box of document.querySelectorAll("[data-picker=slack]")) slackPicker(box);
    for (const box of document.querySelectorAll("[data-picker=teams]")) teamsPicker(box);
    for (const box of document.querySelectorAll("[data-picker=confluence]")) spacePicker(box);
    for (const input of document.querySelectorAll("input[data-chips]")) chips(input);
    for (const input of document.querySelectorAll("input[data-page-picker]")) pagePicker(input);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
