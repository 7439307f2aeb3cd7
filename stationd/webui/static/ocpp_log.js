// stationd WebUI, OCPP Log page: rebuilds the frame table from /api/ocpp/log ({frames: [...]}),
// which app.js polls for the table's data-live URL. Text only (textContent): frames are never HTML.
"use strict";

(function () {
  function cell(row, text, css) {
    const td = document.createElement("td");
    td.textContent = text;
    if (css) td.className = css;
    row.appendChild(td);
  }

  document.addEventListener("stationd:live", (event) => {
    const table = document.getElementById("ocpp-log");
    if (!table || event.detail.url !== table.dataset.live) return;
    const body = document.createElement("tbody");
    for (const frame of event.detail.data.frames || []) {
      const row = document.createElement("tr");
      row.className = frame.direction;
      cell(row, frame.time);
      cell(row, frame.direction === "in" ? "<-" : "->", "direction");
      cell(row, frame.type);
      cell(row, frame.action);
      cell(row, frame.frame, "frame");
      body.appendChild(row);
    }
    if (!body.firstChild) {
      const row = document.createElement("tr");
      row.className = "empty";
      const td = document.createElement("td");
      td.colSpan = 5;
      td.textContent = table.dataset.empty || "-";
      row.appendChild(td);
      body.appendChild(row);
    }
    table.replaceChild(body, table.tBodies[0]);
  });
})();
