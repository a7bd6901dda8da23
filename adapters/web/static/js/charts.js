/* Charts for any page, drawn with ECharts (/static/vendor/echarts-5.6.0.min.js, loaded
   before this file) from data the page itself carries — no inline script, no inline style:

     <div class="chart" data-chart='{"kind": "bar", "categories": ["东城区", "西城区"],
          "series": [{"name": "受理", "data": [12, 7]}]}'></div>
     <div class="chart" data-chart-src="/same/origin/chart.json"></div>

   kind: "bar", "line" or "pie" (a pie draws its one series over the categories).
   Options: "horizontal" (bars across), "percent" (values are shares 0..1), "stack".
   Values are null where there is nothing to show. Numbers are written for the page's
   language (<html lang>). Tooltips are drawn on the canvas (renderMode richText): ECharts'
   HTML tooltips would carry style attributes, which the pages' CSP refuses. Charts in
   content htmx swaps in are drawn; those it swaps out are disposed of. */
(function () {
  "use strict";

  var watched = new WeakMap();  // chart element -> the ResizeObserver that resizes it
  var PALETTE = ["#1565c0", "#2e7d32", "#c62828", "#8a5a00", "#6a1b9a", "#00838f", "#52606d"];

  function language() {
    return document.documentElement.lang || "zh-CN";
  }

  function formatter(spec) {
    var numbers = spec.percent
      ? new Intl.NumberFormat(language(), { style: "percent", maximumFractionDigits: 1 })
      : new Intl.NumberFormat(language(), { maximumFractionDigits: 2 });
    return function (value) {
      return value === null || value === undefined || value === "-" ? "—" : numbers.format(value);
    };
  }

  function pie(spec, format) {
    var values = spec.series[0];
    return {
      tooltip: { trigger: "item", valueFormatter: format },
      series: [{
        type: "pie", name: values.name, radius: ["35%", "65%"], top: 24,
        data: spec.categories.map(function (name, i) { return { name: name, value: values.data[i] }; }),
        label: { formatter: function (p) { return p.name + "\n" + format(p.value) + " (" + p.percent + "%)"; } }
      }]
    };
  }

  function axes(spec, format) {
    var categories = { type: "category", data: spec.categories, axisLabel: { hideOverlap: true } };
    var values = { type: "value", axisLabel: { formatter: format } };
    if (spec.percent) { values.max = 1; } else { values.minInterval = 1; }
    var horizontal = Boolean(spec.horizontal);
    return {
      tooltip: { trigger: "axis", valueFormatter: format },
      grid: { containLabel: true, left: 8, right: horizontal ? 56 : 16, bottom: 8, top: 40 },
      xAxis: horizontal ? values : categories,
      yAxis: horizontal ? categories : values,
      series: spec.series.map(function (s) {
        return {
          type: spec.kind, name: s.name, data: s.data, stack: spec.stack ? "all" : undefined,
          barMaxWidth: 48,
          label: {
            show: spec.kind === "bar", position: horizontal ? "right" : "top",
            formatter: function (p) { return format(p.value); }
          }
        };
      })
    };
  }

  function option(spec) {
    var format = formatter(spec);
    var drawn = spec.kind === "pie" ? pie(spec, format) : axes(spec, format);
    drawn.color = PALETTE;
    drawn.animation = false;
    drawn.legend = { top: 0, type: "scroll" };
    drawn.tooltip.renderMode = "richText";
    return drawn;
  }

  function draw(element, spec) {
    var chart = window.echarts.getInstanceByDom(element) || window.echarts.init(
      element, null, { renderer: "canvas", locale: language().indexOf("zh") === 0 ? "ZH" : "EN" });
    chart.setOption(option(spec), true);
    if (window.ResizeObserver && !watched.has(element)) {
      var watching = new ResizeObserver(function () { chart.resize(); });
      watching.observe(element);
      watched.set(element, watching);
    }
  }

  function load(element) {
    if (element.dataset.chart) {
      draw(element, JSON.parse(element.dataset.chart));
      return;
    }
    fetch(element.dataset.chartSrc, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("chart data: " + response.status); }
        return response.json();
      })
      .then(function (spec) { draw(element, spec); })
      .catch(function () { element.classList.add("chart-failed"); });
  }

  function drawAll(root) {
    if (!window.echarts) { return; }
    var found = root.querySelectorAll ? root.querySelectorAll("[data-chart], [data-chart-src]") : [];
    Array.prototype.forEach.call(found, load);
    if (root.matches && root.matches("[data-chart], [data-chart-src]")) { load(root); }
  }

  function disposeAll(root) {
    if (!window.echarts || !root.querySelectorAll) { return; }
    Array.prototype.forEach.call(root.querySelectorAll("[data-chart], [data-chart-src]"), function (element) {
      var chart = window.echarts.getInstanceByDom(element);
      if (chart) { chart.dispose(); }
      var watching = watched.get(element);
      if (watching) { watching.disconnect(); watched.delete(element); }
    });
  }

  document.addEventListener("htmx:load", function (event) { drawAll(event.detail.elt); });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.shouldSwap) { disposeAll(event.detail.target); }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();
