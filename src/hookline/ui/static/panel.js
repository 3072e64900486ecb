// Hookline control panel: show every <time datetime="...Z"> in the browser's own time zone.
// The server renders UTC; without JavaScript the UTC text stays, which is still correct.
(function () {
  "use strict";
  var thisYear = new Date().getFullYear();
  var shortParts = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" };
  var fullParts = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "short" };

  function formatter(parts, withYear) {
    return new Intl.DateTimeFormat(undefined, withYear ? Object.assign({ year: "numeric" }, parts) : parts);
  }
  var formats = {
    short: [formatter(shortParts, false), formatter(shortParts, true)],
    full: [formatter(fullParts, false), formatter(fullParts, true)]
  };

  function localize() {
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var element = times[i];
      var iso = element.getAttribute("datetime");
      var when = new Date(iso);
      if (isNaN(when.getTime())) { continue; }
      var pair = formats[element.getAttribute("data-format")] || formats.full;
      element.textContent = pair[when.getFullYear() === thisYear ? 0 : 1].format(when);
      element.title = iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC");
      element.setAttribute("data-localized", "");
    }
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var zoneLabels = document.querySelectorAll("[data-time-zone]");
    for (var j = 0; zone && j < zoneLabels.length; j++) {
      zoneLabels[j].textContent = "your time zone, " + zone.replace(/_/g, " ");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", localize);
  } else {
    localize();
  }
})();
