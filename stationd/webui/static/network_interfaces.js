// stationd WebUI Network > Interfaces: show the Wi-Fi fields only while the interface is a wlan* one.
// An external script (CSP script-src 'self'); without it the fields always show and the server
// ignores them for a non-Wi-Fi interface.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("f-interface");
  const wifi = document.getElementById("wifi");
  if (!name || !wifi) return;
  const update = () => { wifi.hidden = !name.value.trim().startsWith("wlan"); };
  name.addEventListener("input", update);
  update();
});
