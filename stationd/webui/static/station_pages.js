// Software and Components pages: the firmware upload's progress bar and the flash progress.
// An external script (CSP script-src 'self'); the forms also work without it.
"use strict";

function uploadWithProgress(form) {
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) {
        bar.value = Math.round((progress.loaded / progress.total) * 100);
        status.textContent = bar.value + " %";
      }
    });
    request.addEventListener("load", () => {
      let answer = { message: request.statusText };
      try { answer = JSON.parse(request.responseText); } catch (error) { /* not JSON: keep the status text */ }
      status.textContent = answer.message;
      status.classList.toggle("bad", request.status !== 200);
      status.classList.toggle("ok", request.status === 200);
    });
    request.addEventListener("error", () => { status.textContent = "upload failed: connection lost"; });
    form.querySelector("button").disabled = true;
    request.addEventListener("loadend", () => { form.querySelector("button").disabled = false; });
    request.send(new FormData(form));
  });
}

function flashProgress(root) {
  // Busy when the page was made: a flash that ends before the first live update still reloads.
  let wasBusy = root.dataset.busy === "true";
  document.addEventListener("stationd:live", (event) => {
    if (event.detail.url !== root.dataset.live) return;
    const data = event.detail.data;
    root.querySelectorAll("progress[data-progress]").forEach((bar) => {
      const value = data.progress ? data.progress.percent : 0;
      bar.value = value;
    });
    if (wasBusy && !data.busy) window.location.reload(); // show the outcome
    wasBusy = data.busy;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("package-upload");
  if (form) uploadWithProgress(form);
  const flash = document.getElementById("flash-state");
  if (flash) flashProgress(flash);
});
