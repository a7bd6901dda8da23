/* 审计: the auditor's charts, drawn with ECharts (served by the service, see
   /static/vendor/echarts-5.6.0.min.js) from the numbers the page carries in data-*
   attributes. No inline script or style: the pages' CSP is default-src 'self'. */
(function () {
  "use strict";
  var ALLOWED = "#2e7d32", DENIED = "#b71c1c";

  function data(el, name) {
    return JSON.parse(el.getAttribute("data-" + name) || "[]");
  }

  function base() {
    return {
      animation: false,
      // Drawn on the canvas: ECharts' HTML tooltips carry style attributes the CSP refuses.
      tooltip: { trigger: "axis", renderMode: "richText" },
      grid: { left: 24, right: 24, top: 36, bottom: 8, containLabel: true },
      legend: { top: 0 }
    };
  }

  function stacked(el, horizontal) {
    var option = base();
    var labels = { type: "category", data: data(el, "labels"),
                   axisLabel: horizontal ? { width: 110, overflow: "truncate" }
                                         : { hideOverlap: true } };
    var counts = { type: "value", minInterval: 1 };
    option.xAxis = horizontal ? counts : labels;
    option.yAxis = horizontal ? labels : counts;
    option.series = [
      { name: el.getAttribute("data-allowed-name"), type: "bar", stack: "n",
        itemStyle: { color: ALLOWED }, data: data(el, "allowed") },
      { name: el.getAttribute("data-denied-name"), type: "bar", stack: "n",
        itemStyle: { color: DENIED }, data: data(el, "denied") }
    ];
    return option;
  }

  function reasons(el) {
    var option = base();
    option.legend = { show: false };
    option.grid.top = 8;
    option.xAxis = { type: "value", minInterval: 1 };
    option.yAxis = { type: "category", data: data(el, "labels"), inverse: true,
                     axisLabel: { width: 110, overflow: "truncate" } };
    option.series = [{ name: el.getAttribute("data-name"), type: "bar",
                       itemStyle: { color: DENIED }, data: data(el, "counts") }];
    return option;
  }

  function departmentDays(el) {
    var option = base();
    var names = data(el, "names");
    option.legend = { top: 0, type: "scroll" };
    option.grid.top = 40;
    option.xAxis = { type: "category", data: data(el, "labels"),
                     axisLabel: { hideOverlap: true } };
    option.yAxis = { type: "value", minInterval: 1 };
    option.series = data(el, "series").map(function (counts, i) {
      return { name: names[i], type: "line", showSymbol: false, data: counts };
    });
    return option;
  }

  var OPTIONS = {
    "department-days": departmentDays,
    days: function (el) { return stacked(el, false); },
    departments: function (el) { return stacked(el, true); },
    reasons: reasons
  };

  function draw(root) {
    if (typeof echarts === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var make = OPTIONS[el.getAttribute("data-chart")];
      if (!make || echarts.getInstanceByDom(el)) { return; }
      echarts.init(el, null, { renderer: "canvas" }).setOption(make(el));
    });
  }

  function resize() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = typeof echarts === "undefined" ? null : echarts.getInstanceByDom(el);
      if (chart) { chart.resize(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
  window.addEventListener("resize", resize);
}());
