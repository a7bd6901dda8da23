/* 绩效监督: drilling down and changing the period are swapped in by htmx (hx-boost).
   (htmx settles no style attribute on any page — the CSP would refuse it: base.html's
   htmx-config says so.)

   A refusal — a unit outside reach (404), a bad period (422) — is a page too: show it, as
   a full load would, rather than leave the old figures standing. */
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (event.detail.boosted && status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
