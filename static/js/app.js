// Keyboard comfort for inline editing: Escape cancels an edit, a new edit form takes focus.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const form = event.target.closest && event.target.closest("form.editing");
  const cancel = form && form.querySelector("[data-cancel]");
  if (cancel) {
    event.preventDefault();
    cancel.click();
  }
});

document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail.elt;
  const first = target.querySelector && target.querySelector("form.editing input:not([type=hidden]), form.editing select");
  if (first) first.focus();
});
