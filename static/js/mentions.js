// @mention autocomplete: the server (htmx) lists matching members under the comment box; this
// inserts the one chosen. ArrowDown moves from the box into the list, arrows move within it,
// Enter or a click inserts "@name ", Escape goes back to the box.
(function () {
  function box() {
    return document.getElementById("comment-body");
  }
  function options() {
    return Array.from(document.querySelectorAll("#mention-list [data-mention]"));
  }
  function insert(name) {
    const area = box();
    if (!area) return;
    area.value = area.value.replace(/@[\w.@+-]*$/, "@" + name + " ");
    const list = document.getElementById("mention-list");
    if (list) list.replaceChildren();
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }
  document.addEventListener("click", (event) => {
    const option = event.target.closest && event.target.closest("[data-mention]");
    if (option) {
      event.preventDefault();
      insert(option.dataset.mention);
    }
  });
  document.addEventListener("keydown", (event) => {
    const all = options();
    if (!all.length) return;
    const area = box();
    const at = all.indexOf(document.activeElement);
    if (event.target === area && event.key === "ArrowDown") {
      event.preventDefault();
      all[0].focus();
    } else if (at >= 0 && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const next = at + (event.key === "ArrowDown" ? 1 : -1);
      if (next < 0) area.focus();
      else all[Math.min(next, all.length - 1)].focus();
    } else if (at >= 0 && event.key === "Escape") {
      event.preventDefault();
      area.focus();
    }
  });
})();
