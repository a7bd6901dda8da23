// 一口受理: the receipt's print button (no inline handlers: the page's CSP forbids them).
document.addEventListener("click", (event) => {
  if (event.target instanceof Element && event.target.closest("[data-print]")) {
    window.print();
  }
});
