// Connection settings: show only the fields that matter for the chosen connection kind (and,
// for HTTP APIs, the chosen authentication and pagination). Without JavaScript every field
// stays visible, each in its labelled group.
function showKindFields(form) {
  const value = (name) => (form.querySelector(`[name=${name}]`) || {}).value || "";
  const kind = value("kind");
  const http = kind === "http_json";
  const matches = (list, current) => !list || list.split(" ").includes(current);
  form.querySelectorAll("[data-kinds]").forEach((el) => {
    const { kinds, auth, pagination } = el.dataset;
    el.hidden = !(
      matches(kinds, kind) &&
      (!http || matches(auth, value("auth"))) &&
      (!http || matches(pagination, value("pagination")))
    );
  });
  form.querySelectorAll("fieldset.kind-group").forEach((group) => {
    group.hidden = !group.querySelector("[data-kinds]:not([hidden])");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-kind-form]").forEach(showKindFields);
});
document.addEventListener("change", (event) => {
  if (!["kind", "auth", "pagination"].includes(event.target.name)) return;
  const form = event.target.closest("form[data-kind-form]");
  if (form) showKindFields(form);
});
