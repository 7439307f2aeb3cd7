// stationd WebUI settings pages (Station > Date/Time): the browser's time zone and clock.
// An external script (CSP script-src 'self'); the page works without it except for these two helpers.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const zoneButton = document.getElementById("use-browser-zone");
  if (zoneButton) {
    zoneButton.addEventListener("click", () => {
      const select = document.getElementById(zoneButton.dataset.target);
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (select && zone && Array.from(select.options).some((option) => option.value === zone)) select.value = zone;
    });
  }
  const timeForm = document.getElementById("browser-time-form");
  if (timeForm) {
    timeForm.addEventListener("submit", () => {
      timeForm.elements.namedItem("time").value = new Date().toISOString();
    });
  }
});
