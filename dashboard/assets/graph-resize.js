/* rightsizer: let plotly.js skip resizes that would leave a graph the size it already has.
 *
 * dcc.Graph calls Plotly.Plots.resize on every graph right after its first draw and again when its
 * ResizeDetector reports the first layout; plotly.js then waits 100 ms and relayouts the graph even when
 * the container kept its size. On the overview that is eight relayouts of four graphs on the main thread
 * just as the page becomes usable. A resize whose container has the graph's current width and height is
 * answered at once; every other resize (a window or panel that really changed size, a hidden graph) goes
 * to plotly.js as before. Loaded only where plotly.js came as a script before the assets (the served
 * dashboard, dashboard/web.py); elsewhere this does nothing.
 */
(function () {
  "use strict";
  var plots = window.Plotly && window.Plotly.Plots;
  if (!plots || typeof plots.resize !== "function" || plots.resize.rightsizerSkipsSameSize) {
    return;
  }
  var resize = plots.resize;

  function sameSize(gd) {
    var full = gd && gd._fullLayout;
    if (!full) {
      return false;
    }
    var style = window.getComputedStyle(gd);
    var width = parseFloat(style.width);
    var height = parseFloat(style.height);
    return Math.abs(width - full.width) < 1 && Math.abs(height - full.height) < 1;
  }

  plots.resize = function (gd) {
    var div = typeof gd === "string" ? document.getElementById(gd) : gd;
    if (sameSize(div)) {
      return Promise.resolve(div);
    }
    return resize.apply(this, arguments);
  };
  plots.resize.rightsizerSkipsSameSize = true;
})();
