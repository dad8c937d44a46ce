/* majordomo-log dashboard: draws the spend chart from the JSON the page carries
   (<script type="application/json" id="spend-data">) with uPlot. Every figure drawn is
   also in the page's tables; without this script the page loses only the picture. */
(function () {
  "use strict";

  var PALETTE = [
    "#1f6fd1", "#d1495b", "#2a9d4b", "#e08a00", "#7b4fc9",
    "#0f9aa8", "#b5487f", "#6b7d12", "#8c8c8c"
  ];

  function dollars(v) {
    if (v == null) { return "--"; }
    if (v === 0) { return "$0"; }
    if (Math.abs(v) >= 100) { return "$" + v.toFixed(0); }
    if (Math.abs(v) >= 1) { return "$" + v.toFixed(2); }
    return "$" + parseFloat(v.toPrecision(3));
  }

  function draw() {
    var holder = document.getElementById("spend-chart");
    var source = document.getElementById("spend-data");
    if (!holder || !source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var columns = [data.x];
    var series = [{ label: data.step === "hour" ? "hour (UTC)" : "day (UTC)" }];
    data.series.forEach(function (line, i) {
      columns.push(line.values);
      series.push({
        label: line.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 2,
        points: { show: data.x.length <= 60 },
        value: function (u, v) { return dollars(v); }
      });
    });
    var width = Math.max(320, holder.clientWidth || 600);
    var chart = new uPlot({
      width: width,
      height: 300,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { stroke: "#333", grid: { stroke: "#e3e3e3" } },
        { stroke: "#333", grid: { stroke: "#e3e3e3" }, size: 70,
          values: function (u, ticks) { return ticks.map(dollars); } }
      ],
      series: series
    }, columns, holder);
    holder.setAttribute("data-drawn", String(data.series.length));
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(320, holder.clientWidth || 600), height: 300 });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
