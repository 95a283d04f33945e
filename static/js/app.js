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

// Instant filtering of long tables (the mapping editor has up to hundreds of rows).
function applyFilter(container) {
  const text = document.querySelector(`[data-filter="#${container.id}"]`);
  const problems = document.querySelector(`[data-filter-problems="#${container.id}"]`);
  const needle = text ? text.value.trim().toLowerCase() : "";
  const onlyProblems = problems ? problems.checked : false;
  let shown = 0;
  const rows = container.querySelectorAll(".grid-row:not(.editing)");
  rows.forEach((row) => {
    const match = (!needle || row.textContent.toLowerCase().includes(needle)) &&
      (!onlyProblems || row.classList.contains("has-problem"));
    row.classList.toggle("hidden", !match);
    if (match) shown += 1;
  });
  const counter = document.querySelector("[data-filter-count]");
  if (counter) counter.textContent = needle || onlyProblems ? `${shown} of ${rows.length} rows` : "";
}

document.addEventListener("input", (event) => {
  const selector = event.target.dataset && (event.target.dataset.filter || event.target.dataset.filterProblems);
  if (selector) applyFilter(document.querySelector(selector));
});
document.addEventListener("change", (event) => {
  const selector = event.target.dataset && event.target.dataset.filterProblems;
  if (selector) applyFilter(document.querySelector(selector));
});

// The server confirmed a move: move the row in the page instead of re-rendering the table.
document.addEventListener("mapping-moved", (event) => {
  const row = document.getElementById(event.detail.id);
  const other = document.getElementById(event.detail.other);
  if (!row || !other) return;
  if (event.detail.direction === "up") other.before(row); else other.after(row);
  row.querySelector(`[aria-label^="Move"][aria-label$="${event.detail.direction}"]`)?.focus();
});

// A select that goes to the page it names (the mapping editor's "Other connection"): wired
// here because the Content Security Policy refuses inline onchange= / onsubmit= handlers.
function navigateTo(select) {
  const url = select && select.value;
  // Only paths of this site: a javascript: or foreign URL in an option is never followed.
  if (url && url.startsWith("/") && !url.startsWith("//")) window.location.assign(url);
}
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-navigate]")) navigateTo(event.target);
});
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches || !form.matches("form[data-navigate-form]")) return;
  event.preventDefault();
  navigateTo(form.querySelector("select[data-navigate]"));
});

// A refused htmx request (403: a role that may not, or an archived project) says why instead
// of leaving the page as if nothing happened. The reason is the 403 page's own message.
document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  if (!xhr || xhr.status !== 403) return;
  const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
  const reason = page.querySelector("[data-testid=refusal]");
  const main = document.querySelector("main");
  if (!main) return;
  let box = document.getElementById("refusal");
  if (!box) {
    box = document.createElement("p");
    box.id = "refusal";
    box.className = "error";
    box.setAttribute("role", "alert");
    main.prepend(box);
  }
  box.textContent = reason ? reason.textContent : "You are not allowed to do that.";
});
