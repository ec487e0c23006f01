// execd dashboard: small enhancements over server-rendered pages.
// - forms with data-confirm ask before they are sent;
// - an element with data-live and data-events is fetched again (its server-rendered
//   HTML) whenever the event stream says something it shows changed;
// - a <pre data-tail> follows an execution's output as it is written.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

function follow(element) {
  let pending = null;
  let running = false;
  let again = false;

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin" });
      if (response.redirected || !response.ok) return;
      const html = await response.text();
      // What the user is typing in the part being replaced stays.
      const kept = {};
      element.querySelectorAll("textarea[id], input[id]:not([type=hidden])").forEach((field) => {
        kept[field.id] = field.value;
      });
      const focused = document.activeElement && element.contains(document.activeElement)
        ? document.activeElement.id : null;
      element.innerHTML = html;
      for (const [id, value] of Object.entries(kept)) {
        const field = document.getElementById(id);
        if (field) field.value = value;
      }
      if (focused) document.getElementById(focused)?.focus();
      element.dispatchEvent(new CustomEvent("execd:refreshed", { bubbles: true }));
    } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, 250);
  }

  const source = new EventSource(element.dataset.events);
  source.addEventListener("open", schedule); // also after a reconnect: catch up
  source.addEventListener("change", schedule);
  // What no event announces (workers' heartbeats and load) is fetched again now and then.
  if (element.dataset.every) setInterval(schedule, Number(element.dataset.every));
}

function tail(pre) {
  const source = new EventSource(pre.dataset.tail);
  source.addEventListener("output", (event) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(JSON.parse(event.data).data);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("reset", () => { pre.textContent = ""; });
  source.addEventListener("done", () => {
    source.close();
    pre.dataset.done = "true";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live][data-events]").forEach(follow);
  document.querySelectorAll("pre[data-tail]").forEach(tail);
});
