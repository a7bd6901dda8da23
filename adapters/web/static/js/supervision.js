/* 绩效监督: drilling down and changing the period are swapped in by htmx (hx-boost).

   While it swaps, htmx "settles" an element that keeps its id by copying the old one's
   attributes onto the new one, style among them — which the CSP refuses (an inline
   style), whatever put a style attribute on the old one (ECharts, the browser, an
   extension). Settle only what needs no exception.

   A refusal — a unit outside reach (404), a bad period (422) — is a page too: show it, as
   a full load would, rather than leave the old figures standing. */
(function () {
  "use strict";
  if (window.htmx) {
    window.htmx.config.attributesToSettle = ["class", "width", "height"];
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (event.detail.boosted && status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
