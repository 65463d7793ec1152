// Pagehook console: sends the page's forms to the admin API with the
// session's CSRF token, shows each answer, and refreshes lists when
// something new happens. No inline scripts: the Content-Security-Policy
// allows only this file.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const result = () => document.getElementById("result");

  function say(text, failed) {
    const r = result();
    if (!r) return;
    r.textContent = text;
    r.classList.toggle("failed", !!failed);
    r.setAttribute("role", failed ? "alert" : "status");
    r.focus?.();
  }

  // Sets obj[a][b]... = value for a dotted name.
  function put(obj, name, value) {
    const parts = name.split(".");
    let o = obj;
    for (const p of parts.slice(0, -1)) {
      if (typeof o[p] !== "object" || o[p] === null) o[p] = {};
      o = o[p];
    }
    o[parts[parts.length - 1]] = value;
  }

  // The JSON body of a form: see `api_form` in console/mod.rs.
  function body(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      const list = el.name.endsWith("[]");
      const name = list ? el.name.slice(0, -2) : el.name;
      if (list) {
        let current = out;
        for (const p of name.split(".").slice(0, -1)) current = current[p] || (current[p] = {});
        const key = name.split(".").pop();
        if (!Array.isArray(current[key])) current[key] = [];
        if (el.type === "checkbox") {
          if (el.checked) current[key].push(el.value);
        } else if (el.value.trim() !== "") {
          current[key].push(...el.value.split(",").map((s) => s.trim()).filter((s) => s));
        }
        continue;
      }
      if (el.type === "checkbox") {
        // data-type="text": a setting that holds the words true/false.
        put(out, name, el.dataset.type === "text" ? String(el.checked) : el.checked);
      } else if (el.value === "" && !el.required) {
        continue;
      } else if (el.dataset.prefix !== undefined) {
        put(out, name, el.dataset.prefix + el.value);
      } else if (el.dataset.type === "bool") {
        put(out, name, el.value === "true");
      } else if (el.dataset.type === "number") {
        put(out, name, Number(el.value));
      } else {
        put(out, name, el.value);
      }
    }
    return out;
  }

  async function send(form, submitter) {
    const method = form.dataset.method;
    const path = form.dataset.path;
    const then = form.dataset.then || "reload";
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const multipart = form.enctype === "multipart/form-data";
    const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
    let payload;
    if (multipart) {
      payload = new FormData(form);
    } else if (method !== "GET" && method !== "DELETE") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body(form));
    }
    if (submitter) submitter.disabled = true;
    say("Working…", false);
    let answer;
    let text = "";
    try {
      answer = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
      text = await answer.text();
    } catch (e) {
      say("Pagehook did not answer: " + e, true);
      if (submitter) submitter.disabled = false;
      return;
    }
    if (submitter) submitter.disabled = false;
    let json = null;
    try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
    if (!answer.ok) {
      const why = (json && json.error) || text || answer.statusText;
      say(`Refused (HTTP ${answer.status}): ${why}`, true);
      return;
    }
    // forms.js: words that name what happened, places that keep them.
    const forms = window.PagehookForms;
    if (forms && then.startsWith("call:") && forms.handlers[then.slice(5)]) {
      say(forms.handlers[then.slice(5)](form, json), false);
      return;
    }
    const described = forms ? forms.describe(form, json) : null;
    if (described) {
      say(described.text, false);
      if (then === "reload") forms.keepAndReload(described.text, described.anchor);
      return;
    }
    if (then.startsWith("show:")) {
      const target = document.getElementById(then.slice(5));
      if (target) {
        target.textContent = json ? JSON.stringify(json, null, 2) : text;
        target.hidden = false;
      }
      say(form.dataset.done || "Done.", false);
      return;
    }
    const said = (form.dataset.done || "Done.") + (json && json.message ? " " + json.message : "");
    say(said, false);
    if (then === "reload") {
      if (forms) forms.keepAndReload(said);
      else setTimeout(() => window.location.reload(), 400);
    }
  }

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.path) return;
    ev.preventDefault();
    send(form, ev.submitter);
  });

  // A select marked data-autosubmit sends its (GET) form when changed.
  document.addEventListener("change", (ev) => {
    const el = ev.target;
    if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined && el.form) {
      el.form.requestSubmit();
    }
  });

  // Live lists: when the server says something changed, fetch this page
  // again and swap every element marked data-live (by id).
  const live = document.querySelectorAll("[data-live]");
  if (live.length && window.EventSource) {
    let busy = false;
    const source = new EventSource("/console/live");
    source.addEventListener("change", async () => {
      if (busy) return;
      busy = true;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        if (answer.ok) {
          const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
          for (const el of document.querySelectorAll("[data-live]")) {
            const fresh = doc.getElementById(el.id);
            if (fresh && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
          }
        }
      } finally {
        busy = false;
      }
    });
  }
})();
