// taskrow dashboard: refreshes the page's live region without reloading the page.
// The server sends the region alone when asked with the X-Taskrow-Fragment header.
(function () {
  "use strict";
  var region = document.querySelector("[data-live]");
  var status = document.getElementById("live-status");
  var toggle = document.getElementById("live-toggle");
  if (!region) { return; }
  var every = 1000 * (parseInt(region.getAttribute("data-live"), 10) || 5);
  var paused = false;
  var busy = false;

  function stamp(text) {
    if (status) { status.textContent = text; }
  }

  function refresh() {
    if (paused || busy || document.hidden) { return; }
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Taskrow-Fragment": "live" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (res) {
      if (!res.ok) { throw new Error("HTTP " + res.status); }
      return res.text();
    }).then(function (html) {
      region.innerHTML = html;
      stamp("live · updated " + new Date().toLocaleTimeString());
    }).catch(function (err) {
      stamp("live · refresh failed (" + err.message + "), retrying");
    }).then(function () { busy = false; });
  }

  if (toggle) {
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "resume" : "pause";
      stamp(paused ? "live · paused" : "live");
    });
  }
  stamp("live");
  window.setInterval(refresh, every);
})();
