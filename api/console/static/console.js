// agentq console: times in the browser's zone (UTC stays on hover), and the CSRF token
// on every request htmx sends. No framework beyond htmx.
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short"
  });
  function localTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        times[i].textContent = format.format(when);
        times[i].setAttribute("data-local", "");
      }
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    if (window.htmx) {
      htmx.onLoad(function (elt) { localTimes(elt); });
    }
  });
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
  });
  // OOB swaps and SSE messages replace elements: their times are new.
  document.addEventListener("htmx:oobAfterSwap", function (event) { localTimes(event.detail.target); });
  document.addEventListener("htmx:sseMessage", function (event) { localTimes(event.detail.elt); });
})();
