// wakeplane console: refreshes the parts of a page marked data-live every few seconds
// while the tab is visible. Progressive only: every page is complete without it.
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  var status = document.getElementById("live-status");

  function say(text) {
    if (status) { status.textContent = text; }
  }

  function editing(el) {
    var a = document.activeElement;
    return a && a !== document.body && el.contains(a);
  }

  function refresh() {
    if (document.hidden) { return later(); }
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "X-Wakeplane-Refresh": "1" },
      redirect: "manual"
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html");
      var parts = document.querySelectorAll("[data-live]");
      for (var i = 0; i < parts.length; i++) {
        var old = parts[i];
        var next = old.id && fresh.getElementById(old.id);
        if (next && !editing(old)) {
          old.replaceWith(document.importNode(next, true));
        }
      }
      say("updated " + new Date().toLocaleTimeString());
    }).catch(function (e) {
      say("not updated (" + e.message + ")");
    }).then(later);
  }

  function later() {
    window.setTimeout(refresh, PERIOD_MS);
  }

  if (document.querySelector("[data-live]")) {
    say("live");
    later();
  }
})();
