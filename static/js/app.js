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

// The project navigator is a <details>: open beside the page on a wide screen, a closed menu at
// the top of the page on a phone. The markup ships it open, so it works without JavaScript.
const narrowScreen = window.matchMedia("(max-width: 900px)");
function fitNavigatorMenu() {
  document.querySelectorAll("details[data-nav-menu]").forEach((menu) => {
    menu.open = !narrowScreen.matches;
  });
}
fitNavigatorMenu();
narrowScreen.addEventListener("change", fitNavigatorMenu);

// A box that scrolls sideways (a wide table on a phone) must be reachable by keyboard to be
// scrolled: it joins the tab order only while its content is wider than it.
function markScrollableBoxes(root) {
  // (The runbook preview's sections scroll as a whole: it has no page chrome around them.)
  const boxes = ".scroll, .grid-scroll, [data-scroll-box] > section";
  (root || document).querySelectorAll(boxes).forEach((box) => {
    const scrolls = box.scrollWidth > box.clientWidth + 1;
    if (scrolls && !box.hasAttribute("tabindex")) {
      box.setAttribute("tabindex", "0");
      box.dataset.scrollFocus = "";
    } else if (!scrolls && "scrollFocus" in box.dataset) {
      box.removeAttribute("tabindex");
      delete box.dataset.scrollFocus;
    }
  });
}
markScrollableBoxes();
window.addEventListener("resize", () => markScrollableBoxes());
document.addEventListener("htmx:afterSettle", () => markScrollableBoxes());

// A runbook made in the request (htmx): the exports list was refreshed in place; fetch the file.
document.addEventListener("runbook-ready", (event) => {
  const url = event.detail && event.detail.url;
  if (url && url.startsWith("/") && !url.startsWith("//")) window.location.assign(url);
});
