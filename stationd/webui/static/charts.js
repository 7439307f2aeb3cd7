// stationd WebUI, Charts page: draws power (kW) and energy (kWh) of each connector as SVG lines
// from /api/charts ({windowS, connectors: [{id, points: [[unixTime, W, Wh], ...]}]}).
// app.js polls the URL of [data-live] and fires "stationd:live"; this script draws what it gets.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 600, H = 200, LEFT = 44, RIGHT = 50, TOP = 10, BOTTOM = 22;

  function element(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const factor of [1, 2, 5, 10]) if (value <= factor * step) return factor * step;
    return 10 * step;
  }

  function clock(seconds) {
    const date = new Date(seconds * 1000);
    return date.toISOString().substring(11, 16);
  }

  function line(points, x, y, css) {
    if (points.length === 0) return null;
    const path = points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p).toFixed(1)).join(" ");
    return element("path", { d: path, class: css, fill: "none" });
  }

  function draw(section, connector, windowS) {
    const svg = section.querySelector("svg.plot");
    const points = connector.points;
    section.classList.toggle("has-data", points.length > 0);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const now = points.length ? Math.max(points[points.length - 1][0], Date.now() / 1000) : Date.now() / 1000;
    const start = now - windowS;
    const powerMax = niceMax(Math.max(0, ...points.map((p) => p[1] / 1000)));
    const energies = points.map((p) => p[2] / 1000);
    const energyMin = energies.length ? Math.min(...energies) : 0;
    const energySpan = niceMax((energies.length ? Math.max(...energies) : 0) - energyMin);
    const x = (t) => LEFT + ((t - start) / windowS) * (W - LEFT - RIGHT);
    const yPower = (p) => H - BOTTOM - (p[1] / 1000 / powerMax) * (H - TOP - BOTTOM);
    const yEnergy = (p) => H - BOTTOM - ((p[2] / 1000 - energyMin) / energySpan) * (H - TOP - BOTTOM);

    svg.appendChild(element("rect", { x: LEFT, y: TOP, width: W - LEFT - RIGHT, height: H - TOP - BOTTOM, class: "frame" }));
    for (let i = 0; i <= 4; i++) {
      const y = TOP + (i / 4) * (H - TOP - BOTTOM);
      svg.appendChild(element("line", { x1: LEFT, x2: W - RIGHT, y1: y, y2: y, class: "grid" }));
      svg.appendChild(element("text", { x: LEFT - 4, y: y + 4, class: "axis power", "text-anchor": "end" },
        (powerMax * (1 - i / 4)).toFixed(powerMax < 4 ? 1 : 0)));
      svg.appendChild(element("text", { x: W - RIGHT + 4, y: y + 4, class: "axis energy" },
        (energyMin + energySpan * (1 - i / 4)).toFixed(energySpan < 4 ? 2 : 1)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = start + (i / 4) * windowS;
      svg.appendChild(element("text", { x: x(t), y: H - 6, class: "axis", "text-anchor": "middle" }, clock(t)));
    }
    const power = line(points, x, yPower, "series power");
    const energy = line(points, x, yEnergy, "series energy");
    if (power) svg.appendChild(power);
    if (energy) svg.appendChild(energy);

    const last = points[points.length - 1];
    section.querySelector("[data-now=power]").textContent = last ? (last[1] / 1000).toFixed(2) + " kW" : "";
    section.querySelector("[data-now=energy]").textContent = last ? (last[2] / 1000).toFixed(3) + " kWh" : "";
  }

  function render(data) {
    for (const connector of data.connectors || []) {
      const section = document.querySelector(`.chart[data-connector="${connector.id}"]`);
      if (section) draw(section, connector, data.windowS);
    }
  }

  document.addEventListener("stationd:live", (event) => {
    if (event.detail.url === "/api/charts") render(event.detail.data);
  });

  document.addEventListener("DOMContentLoaded", async () => {
    const root = document.getElementById("charts");
    if (!root) return;
    try {
      const response = await fetch(root.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
    } catch (error) {
      document.body.classList.add("stale");
    }
  });
})();
