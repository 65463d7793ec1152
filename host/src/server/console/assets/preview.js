// Pagehook console: rendered previews.
//
// - A binding's Preview button (a GET form marked data-preview-into) loads
//   /console/bindings/{id}/preview?event_id=N and moves that page's
//   #preview-body into the binding's row: the server draws Slack messages
//   and Confluence pages itself (escaped, render/ in the host).
// - Teams cards ([data-adaptive-card], the card's JSON in the attribute) are
//   drawn by Microsoft's Adaptive Cards renderer (adaptivecards.min.js, npm
//   adaptivecards 3.0.6, served by Pagehook), loaded the first time a card is
//   shown, when it is visible (not inside a closed <details>).
//
// The renderer gets a markdown hook that escapes the text before it adds any
// markup and links only http(s) URLs, and cards lose their images (named
// instead), so nothing is loaded from elsewhere. No inline script and no eval:
// the Content-Security-Policy allows only Pagehook's own files.
"use strict";

(function () {
  const RENDERER = "/console/assets/adaptivecards.min.js";
  const RENDERER_CSS = "/console/assets/adaptivecards.css";
  let loading = null;

  const isWeb = (url) => typeof url === "string" && /^\s*https?:\/\/[^\s/]/i.test(url);

  // Loads the Adaptive Cards renderer once.
  function renderer() {
    if (window.AdaptiveCards) return Promise.resolve(window.AdaptiveCards);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = RENDERER_CSS;
        document.head.appendChild(css);
        const script = document.createElement("script");
        script.src = RENDERER;
        script.onload = () =>
          window.AdaptiveCards ? resolve(configure(window.AdaptiveCards)) : reject(new Error("the renderer did not start"));
        script.onerror = () => reject(new Error("the renderer could not be loaded"));
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  const escapeText = (s) => s.replace(/[<>"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const escapeAll = (s) => escapeText(s.replace(/&/g, "&amp;"));

  // Teams' markdown subset: **bold**, _italic_, [label](url), line breaks.
  // `&` is left alone so the entities cards carry (&lt; for a `<` in a title)
  // show as the character, as in Teams; a character reference can only ever
  // make text, never an element. Everything else is escaped before any tag
  // is added.
  function inline(text) {
    return escapeText(text)
      .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])_(\S(?:.*?\S)?)_(?=$|[\s).,;:!?])/g, "$1<em>$2</em>")
      .replace(/\r?\n/g, "<br>");
  }

  function markdown(text) {
    let html = "";
    let last = 0;
    const links = /\[([^\]]*)\]\(([^()\s]+)\)/g;
    for (let m = links.exec(text); m; m = links.exec(text)) {
      html += inline(text.slice(last, m.index));
      const label = inline(m[1] || m[2]);
      html += isWeb(m[2])
        ? `<a href="${escapeAll(m[2].trim())}" rel="noopener noreferrer">${label}</a>`
        : `<span title="Not linked: not an http(s) URL">${label}</span>`;
      last = links.lastIndex;
    }
    return html + inline(text.slice(last));
  }

  function configure(AC) {
    AC.GlobalSettings.allowMarkForTextHighlighting = false;
    AC.AdaptiveCard.onProcessMarkdown = (text, result) => {
      result.outputHtml = markdown(String(text));
      result.didProcess = true;
    };
    return AC;
  }

  // The card with what the console does not load taken out: images and
  // media are named instead, background images and icons dropped; a button
  // to a URL that is not http(s) says it is refused.
  function prepare(node) {
    if (Array.isArray(node)) return node.map(prepare);
    if (!node || typeof node !== "object") return node;
    const type = node.type;
    if (type === "Image" || type === "Media" || type === "ImageSet") {
      const what = type === "Media" ? "▶ " : "🖼 ";
      return { type: "TextBlock", text: what + (node.altText || type.toLowerCase()), isSubtle: true, wrap: true };
    }
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "backgroundImage" || key === "iconUrl") continue;
      out[key] = prepare(value);
    }
    if (type === "Action.OpenUrl" && !isWeb(out.url)) {
      out.title = (out.title || "Open") + " (link refused: not an http(s) URL)";
    }
    return out;
  }

  function draw(AC, holder) {
    holder.dataset.drawn = "1";
    let json;
    try {
      json = JSON.parse(holder.dataset.adaptiveCard);
    } catch (e) {
      holder.textContent = "This card is not JSON, so Teams would refuse it: " + e.message;
      return;
    }
    const card = new AC.AdaptiveCard();
    card.hostConfig = new AC.HostConfig({
      fontFamily: "'Segoe UI', system-ui, -apple-system, sans-serif",
      supportsInteractivity: true,
    });
    card.onExecuteAction = (action) => {
      if (action instanceof AC.OpenUrlAction && isWeb(action.url)) {
        window.open(action.url.trim(), "_blank", "noopener,noreferrer");
      }
    };
    const context = new AC.SerializationContext();
    card.parse(prepare(json), context);
    const rendered = card.render();
    if (!rendered) {
      holder.textContent = "The Adaptive Cards renderer could not draw this card.";
      return;
    }
    const notes = [];
    for (let i = 0; i < context.eventCount; i++) notes.push(context.getEventAt(i).message);
    holder.replaceChildren(rendered);
    if (notes.length) {
      const p = document.createElement("p");
      p.className = "muted teams-card-notes";
      p.textContent = "Renderer notes: " + notes.join(" · ");
      holder.appendChild(p);
    }
  }

  // Draws every card under `root` that is visible and not drawn yet.
  function drawCards(root) {
    const waiting = [...(root || document).querySelectorAll("[data-adaptive-card]:not([data-drawn])")]
      .filter((el) => !el.closest("details:not([open])"));
    if (!waiting.length) return;
    renderer().then(
      (AC) => {
        for (const holder of waiting) {
          if (holder.dataset.drawn) continue;
          try {
            draw(AC, holder);
          } catch (e) {
            holder.textContent = "The Adaptive Cards renderer failed on this card: " + e.message;
          }
        }
      },
      (e) => {
        for (const holder of waiting) holder.textContent = "The Teams card cannot be drawn: " + e.message;
      },
    );
  }

  // The binding's Preview: the preview page's #preview-body, in the row.
  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.previewInto) return;
    ev.preventDefault();
    const target = document.getElementById(form.dataset.previewInto);
    if (!target) return;
    const url = new URL(form.action, window.location.href);
    for (const [key, value] of new FormData(form)) url.searchParams.set(key, value);
    const button = ev.submitter;
    if (button) button.disabled = true;
    target.hidden = false;
    target.setAttribute("aria-busy", "true");
    target.textContent = "Running the plugin on the event…";
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
      const body = doc.getElementById("preview-body");
      if (answer.ok && body) {
        target.replaceChildren(...[...body.childNodes].map((n) => document.importNode(n, true)));
      } else {
        const why = doc.querySelector(".alert")?.textContent || answer.statusText;
        target.textContent = `Preview refused (HTTP ${answer.status}): ${why}`;
      }
    } catch (e) {
      target.textContent = "Pagehook did not answer: " + e;
    } finally {
      target.removeAttribute("aria-busy");
      if (button) button.disabled = false;
    }
    drawCards(target);
  });

  // A <details> opened: draw the cards in it (toggle does not bubble; capture it).
  document.addEventListener("toggle", (ev) => {
    if (ev.target instanceof HTMLDetailsElement && ev.target.open) drawCards(ev.target);
  }, true);

  // Lists refreshed by console.js (live updates): draw what is new.
  new MutationObserver(() => drawCards(document)).observe(document.body || document.documentElement, {
    childList: true,
    subtree: true,
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => drawCards(document));
  } else {
    drawCards(document);
  }
})();
