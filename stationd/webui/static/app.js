// stationd WebUI: live values and confirmations. No inline script anywhere (CSP script-src 'self').
"use strict";

function pick(object, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), object);
}

function show(element, value) {
  if (value === undefined) return;
  const scale = element.dataset.scale;
  const unit = element.dataset.unit ? " " + element.dataset.unit : "";
  let text;
  if (value === null || value === "") text = element.dataset.empty || "-";
  else if (scale && typeof value === "number") text = (value * Number(scale)).toFixed(Number(element.dataset.digits || 3)) + unit;
  else text = String(value) + unit;
  if (element.textContent !== text) element.textContent = text;
  if (element.dataset.ok !== undefined) {
    element.classList.toggle("ok", value === element.dataset.ok);
    element.classList.toggle("bad", value !== element.dataset.ok);
  }
}

function update(root, data) {
  root.querySelectorAll("[data-field]").forEach((element) => show(element, pick(data, element.dataset.field)));
  const rowsPath = root.dataset.rows;
  if (rowsPath) {
    for (const row of pick(data, rowsPath) || []) {
      const tr = root.querySelector(`[data-row="${row.id}"]`);
      if (tr) tr.querySelectorAll("[data-cell]").forEach((cell) => show(cell, pick(row, cell.dataset.cell)));
    }
  }
  document.dispatchEvent(new CustomEvent("stationd:live", { detail: { url: root.dataset.live, data } }));
}

function live() {
  const roots = Array.from(document.querySelectorAll("[data-live]"));
  const urls = [...new Set(roots.map((root) => root.dataset.live))];
  for (const url of urls) {
    const mine = roots.filter((root) => root.dataset.live === url);
    const interval = Number(mine[0].dataset.interval || 2000);
    const poll = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
        if (response.ok) {
          const data = await response.json();
          mine.forEach((root) => update(root, data));
          document.body.classList.remove("stale");
        } else document.body.classList.add("stale");
      } catch (error) {
        document.body.classList.add("stale");
      }
      setTimeout(poll, interval);
    };
    setTimeout(poll, interval);
  }
}

function confirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // One button of a form that needs it (e.g. Discard beside Send again).
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
}

document.addEventListener("DOMContentLoaded", () => { live(); confirmations(); });
