// Reload the jobs page every few seconds while a job runs; a button pauses it (remembered per tab).
(function () {
  "use strict";
  var root = document.querySelector("[data-autorefresh]");
  if (!root) return;
  var seconds = parseInt(root.getAttribute("data-autorefresh"), 10) || 5;
  var button = document.getElementById("autorefresh-toggle");
  var status = document.getElementById("autorefresh-status");
  var key = "elm-jobs-autorefresh-paused";
  var paused = window.sessionStorage.getItem(key) === "1";

  function render() {
    if (!button) return;
    button.hidden = false;
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    button.textContent = paused ? button.getAttribute("data-resume") : button.getAttribute("data-pause");
    if (status) status.textContent = paused ? status.getAttribute("data-paused") : status.getAttribute("data-live");
  }

  if (button) {
    button.addEventListener("click", function () {
      paused = !paused;
      window.sessionStorage.setItem(key, paused ? "1" : "0");
      render();
    });
  }
  render();
  window.setInterval(function () {
    if (!paused && document.visibilityState === "visible") window.location.reload();
  }, seconds * 1000);
})();
