// The step-2 mapping grid: edit a cell in place, move with the keyboard, paste a block.
//
// Each cell is saved on its own through the server's form (the whole row is validated, only the
// cell changes) with the row's version, so a row someone else changed is never overwritten
// unknowingly. A block pasted from a spreadsheet is posted to the import page as a TSV file:
// it goes through the same preview as an uploaded file. Without JavaScript the table stays
// readable and each row's Edit form works as before.
(function () {
  "use strict";

  const table = document.getElementById("mapping-grid");
  if (!table || !table.hasAttribute("data-editable")) return;
  const body = table.tBodies[0];
  const editors = document.getElementById("mapping-cell-editors");
  const live = document.getElementById("mapping-grid-live");
  const pasteForm = document.getElementById("mapping-paste-form");
  const knownHeaders = new Set(
    JSON.parse(document.getElementById("mapping-header-names").textContent).map(norm),
  );
  let editing = null; // {cell, input, busy}

  function norm(text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();
  }

  function announce(text) {
    live.textContent = "";
    // A fresh text node, so the same message twice is still announced.
    window.setTimeout(() => { live.textContent = text; }, 30);
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function visibleRows() {
    return Array.from(body.querySelectorAll("tr.mapping-row")).filter((r) => !r.classList.contains("hidden"));
  }

  function cellsOf(row) {
    return Array.from(row.querySelectorAll(":scope > [data-field]"));
  }

  function headerOf(cell) {
    const th = table.tHead.querySelector(`th[data-column="${cell.dataset.field}"]`);
    return th ? th.textContent.trim() : cell.dataset.field;
  }

  // Roving tabindex: one cell of the grid is in the page's tab order, the one last focused.
  function focusCell(cell) {
    if (!cell) return;
    table.querySelectorAll('[data-field][tabindex="0"]').forEach((c) => { c.tabIndex = -1; });
    cell.tabIndex = 0;
    cell.focus();
  }

  function neighbour(cell, rowStep, colStep) {
    const rows = visibleRows();
    let r = rows.indexOf(cell.closest("tr"));
    let cells = cellsOf(rows[r]);
    let c = cells.indexOf(cell) + colStep;
    if (c >= cells.length && rowStep === 0) { r += 1; c = 0; }
    if (c < 0 && rowStep === 0) { r -= 1; c = Number.MAX_SAFE_INTEGER; }
    r += rowStep;
    if (r < 0 || r >= rows.length) return null;
    cells = cellsOf(rows[r]);
    return cells[Math.max(0, Math.min(c, cells.length - 1))];
  }

  function setValue(input, value) {
    if (input.tagName === "SELECT" && !Array.from(input.options).some((o) => o.value === value)) {
      input.value = "";
    } else {
      input.value = value;
    }
  }

  function startEdit(cell, typed) {
    if (editing || !cell) return;
    const template = editors.content.querySelector(`[data-editor="${cell.dataset.field}"]`);
    if (!template) return;
    const input = template.firstElementChild.cloneNode(true);
    input.removeAttribute("id");
    input.removeAttribute("name");
    input.removeAttribute("required");
    const row = cell.closest("tr");
    const name = cellsOf(row)[0].dataset.value;
    input.setAttribute("aria-label", `${headerOf(cell)} of ${name}`);
    setValue(input, cell.dataset.value);
    if (typed !== undefined) input.value = typed;
    cell.dataset.shown = cell.textContent;
    cell.textContent = "";
    cell.classList.add("cell-editing");
    cell.appendChild(input);
    editing = { cell, input, busy: false };
    input.focus();
    if (typed === undefined && input.select) input.select();
  }

  function restore(cell) {
    cell.classList.remove("cell-editing");
    cell.textContent = cell.dataset.shown || "";
    delete cell.dataset.shown;
  }

  function cancel() {
    if (!editing || editing.busy) return;
    const { cell } = editing;
    editing = null;
    restore(cell);
    focusCell(cell);
    announce("Edit cancelled.");
  }

  function showError(message) {
    const { cell, input } = editing;
    input.setAttribute("aria-invalid", "true");
    let note = cell.querySelector(".cell-error");
    if (!note) {
      note = document.createElement("span");
      note.className = "cell-error";
      note.id = `cell-error-${Date.now()}`;
      cell.appendChild(note);
      input.setAttribute("aria-describedby", note.id);
    }
    note.textContent = message;
    announce(message);
    input.focus();
  }

  // Swap in the saved row and what the save changed elsewhere (status box, navigator), all
  // rendered by the server from the same partials as a full page.
  function swapRow(html) {
    const holder = document.createElement("template");
    holder.innerHTML = html;
    const row = holder.content.querySelector("tr.mapping-row");
    holder.content.querySelectorAll("[hx-swap-oob][id]").forEach((part) => {
      const old = document.getElementById(part.id);
      if (old) {
        old.replaceWith(part);
        if (window.htmx) window.htmx.process(part);
      }
    });
    const old = row && document.getElementById(row.id);
    if (old) {
      old.replaceWith(row);
      if (window.htmx) window.htmx.process(row);
    }
    return row;
  }

  // rowStep/colStep: where focus goes after the save; refocus false when the user clicked away.
  async function commit(rowStep, colStep, refocus = true) {
    if (!editing || editing.busy) return;
    const { cell, input } = editing;
    const row = cell.closest("tr");
    const field = cell.dataset.field;
    const move = (start) => {
      if (!refocus) return;
      const target = rowStep || colStep ? neighbour(start, rowStep, colStep) : start;
      focusCell(target || start);
    };
    if (input.value === cell.dataset.value) {
      editing = null;
      restore(cell);
      move(cell);
      return;
    }
    editing.busy = true;
    cell.setAttribute("aria-busy", "true");
    const form = new FormData();
    form.append("field", field);
    form.append("value", input.value);
    form.append("expected_version", row.dataset.version);
    let response;
    try {
      response = await fetch(row.dataset.cellUrl, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() },
      });
    } catch (error) {
      editing.busy = false;
      cell.removeAttribute("aria-busy");
      showError("The server could not be reached; your input is kept. Try again.");
      return;
    }
    if (response.ok) {
      const saved = swapRow(await response.text());
      editing = null;
      const same = saved && saved.querySelector(`[data-field="${field}"]`);
      move(same || cell);
      announce(`Saved ${headerOf(same || cell)}.`);
      return;
    }
    let reply = {};
    try { reply = await response.json(); } catch (error) { reply = {}; }
    const message = reply.message || `The cell was not saved (error ${response.status}).`;
    const typed = input.value;
    editing.busy = false;
    cell.removeAttribute("aria-busy");
    if (response.status === 409 && reply.row) {
      // Someone else saved the row: show their values, reopen this cell with the input kept;
      // the new row carries their version, so saving again overwrites knowingly.
      editing = null;
      const fresh = swapRow(reply.row);
      const again = fresh && fresh.querySelector(`[data-field="${field}"]`);
      if (again) {
        startEdit(again, typed);
        showError(message);
      }
      return;
    }
    showError(message);
  }

  function onKeydown(event) {
    if (editing) {
      if (!editing.cell.contains(event.target)) return;
      if (event.key === "Escape") {
        event.preventDefault();
        cancel();
      } else if (event.key === "Tab") {
        event.preventDefault();
        commit(0, event.shiftKey ? -1 : 1);
      } else if (event.key === "Enter" && !(editing.input.tagName === "TEXTAREA" && event.altKey)) {
        event.preventDefault();
        commit(event.shiftKey ? -1 : 1, 0);
      }
      return;
    }
    const cell = event.target.closest && event.target.closest("[data-field]");
    if (!cell || !table.contains(cell) || event.target !== cell) return;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[event.key]) {
      event.preventDefault();
      const [r, c] = moves[event.key];
      const target = neighbour(cell, r, c);
      // Left and right stay within the row, as in a spreadsheet.
      if (target && (r !== 0 || target.closest("tr") === cell.closest("tr"))) {
        focusCell(target);
      }
    } else if (event.key === "Enter" || event.key === "F2") {
      event.preventDefault();
      startEdit(cell);
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      const cells = cellsOf(cell.closest("tr"));
      focusCell(event.key === "Home" ? cells[0] : cells[cells.length - 1]);
    } else if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
      // Typing on a cell starts editing it with what was typed, as a spreadsheet does.
      const kind = editors.content.querySelector(`[data-editor="${cell.dataset.field}"]`);
      if (kind && kind.firstElementChild.tagName !== "SELECT") {
        event.preventDefault();
        startEdit(cell, event.key);
      }
    }
  }

  function onClick(event) {
    const cell = event.target.closest("[data-field]");
    if (!cell || !table.contains(cell) || (editing && editing.cell === cell)) return;
    if (editing) return; // the open editor commits on focus loss first
    focusCell(cell);
    startEdit(cell);
  }

  function onFocusOut(event) {
    if (!editing || editing.busy || event.target !== editing.input) return;
    if (editing.cell.contains(event.relatedTarget)) return;
    commit(0, 0, false);
  }

  // ---- Pasting a block of rows -------------------------------------------------------------

  function pastedRows(text) {
    return text.replace(/\r\n?/g, "\n").replace(/\n+$/, "");
  }

  function withHeader(text, startField) {
    const first = text.split("\n", 1)[0].split("\t");
    if (first.some((cell) => knownHeaders.has(norm(cell)))) return text; // it brings its own
    const headers = Array.from(table.tHead.querySelectorAll("th[data-column]")).map((th) => th.textContent.trim());
    const fields = Array.from(table.tHead.querySelectorAll("th[data-column]")).map((th) => th.dataset.column);
    const start = Math.max(0, fields.indexOf(startField));
    const width = Math.max(...text.split("\n").map((line) => line.split("\t").length));
    return `${headers.slice(start, start + width).join("\t")}\n${text}`;
  }

  function onPaste(event) {
    if (editing) return; // pasting into the open editor is ordinary text
    // A body cell, or a column header (the only paste target of a mapping with no rows yet).
    const cell = event.target.closest && event.target.closest("[data-field], th[data-column]");
    if (!cell || !table.contains(cell)) return;
    const field = cell.dataset.field || cell.dataset.column;
    const text = pastedRows((event.clipboardData || window.clipboardData).getData("text/plain") || "");
    if (!text) return;
    event.preventDefault();
    if (!text.includes("\t") && !text.includes("\n")) {
      if (cell.dataset.field) startEdit(cell, text); // one value: into this cell, saved with Enter or Tab
      return;
    }
    const file = new File([withHeader(text, field)], "pasted-rows.tsv", {
      type: "text/tab-separated-values",
    });
    const transfer = new DataTransfer();
    transfer.items.add(file);
    pasteForm.querySelector("input[type=file]").files = transfer.files;
    announce("Opening the import preview for the pasted rows.");
    pasteForm.submit();
  }

  function init() {
    // With no rows yet, the first column header takes focus, so a block can be pasted into it.
    const first = table.querySelector("tbody [data-field]") || table.querySelector("th[data-column]");
    if (first) first.tabIndex = 0;
  }

  table.addEventListener("keydown", onKeydown);
  table.addEventListener("click", onClick);
  table.addEventListener("focusout", onFocusOut);
  table.addEventListener("paste", onPaste);
  // Rows added, duplicated or moved by htmx: keep exactly one cell in the tab order.
  document.body.addEventListener("htmx:afterSettle", () => {
    if (!table.querySelector('[data-field][tabindex="0"]')) init();
  });
  init();
}());
