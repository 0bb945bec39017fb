// History: every piece the creator wrote, searchable (full text over the current text and the fields) and
// filtered; open one to see its fields, variants and versions, generate it again, or branch from a version.

import { get, post } from "./api.js";
import { renderDiff } from "./diff.js";
import { busy, clear, h, labelled, select, showError, snippet, stars, toast, when } from "./dom.js";
import { definitionList, emit, on, studio, templateSelect } from "./shared.js";

const PAGE = 20;

/** A date input (local day) as unix seconds: its midnight, or the next midnight for an inclusive "until". */
function day(value, next = false) {
  if (!value) return undefined;
  const date = new Date(`${value}T00:00`);
  if (next) date.setDate(date.getDate() + 1);
  return Math.floor(date.getTime() / 1000);
}

export function mountHistory(root) {
  let shown = []; // the pieces listed
  let total = 0;
  let open = null; // the piece in the detail panel
  let selected = null; // the version (or null: the original) selected in it
  let stale = true; // a piece was written or edited since the list was drawn
  let latest = 0; // searches overlap while typing: only the newest one draws

  const q = h("input", { type: "search", testid: "history-q", placeholder: "words from the text or the fields" });
  const tpl = templateSelect({ testid: "history-template" }, "", { any: true });
  const system = select(
    { testid: "history-system" },
    [["", "any system"], ...studio.systems.map((s) => [s.id, s.id])],
    "",
  );
  const status = select(
    { testid: "history-status" },
    [
      ["", "any status"],
      ["draft", "draft"],
      ["accepted", "accepted"],
      ["rejected", "rejected"],
    ],
    "",
  );
  const minRating = select(
    { testid: "history-min-rating" },
    [["", "any rating"], ...[1, 2, 3, 4, 5].map((n) => [n, `${"★".repeat(n)} or more`])],
    "",
  );
  const since = h("input", { type: "date", testid: "history-since" });
  const until = h("input", { type: "date", testid: "history-until" });
  const clearButton = h("button", { type: "button", testid: "history-clear" }, "Clear filters");
  const searchButton = h("button", { type: "submit", class: "primary", testid: "history-search" }, "Search");
  const totalEl = h("p", { class: "muted small", testid: "history-total", "aria-live": "polite" });
  const list = h("ul", { class: "list pieces", testid: "history-list" });
  const more = h("button", { type: "button", testid: "history-more", hidden: true }, "Show more");
  const detail = h("section", { class: "card detail", testid: "history-detail", "aria-label": "The piece" });

  const formEl = h(
    "form",
    { role: "search", testid: "history-form", "aria-label": "Search your pieces" },
    labelled("Search", q, { param: "q" }).wrap,
    h(
      "div",
      { class: "fields filters" },
      labelled("Template", tpl, { param: "template" }).wrap,
      labelled("System", system, { param: "system" }).wrap,
      labelled("Status", status, { param: "status" }).wrap,
      labelled("Rating", minRating, { param: "min_rating" }).wrap,
      labelled("Since", since, { param: "since" }).wrap,
      labelled("Until", until, { param: "until" }).wrap,
    ),
    h("div", { class: "row" }, searchButton, clearButton),
  );
  root.append(
    h(
      "div",
      { class: "split wide-right" },
      h(
        "section",
        { class: "card compose", "aria-label": "Your pieces" },
        h("h2", {}, "History"),
        formEl,
        totalEl,
        list,
        more,
      ),
      detail,
    ),
  );
  detail.append(h("p", { class: "muted" }, "Open a piece to see its fields, variants and versions."));

  const filters = () => ({
    q: q.value.trim(),
    template: tpl.value,
    system: system.value,
    status: status.value,
    min_rating: minRating.value,
    since: day(since.value),
    until: day(until.value, true),
  });

  async function search(append = false) {
    const ticket = ++latest;
    const page = await get("/pieces", { ...filters(), limit: PAGE, offset: append ? shown.length : 0 });
    if (ticket !== latest) return;
    shown = append ? [...shown, ...page.data] : page.data;
    total = page.total;
    if (!append) clear(list);
    for (const piece of page.data) list.append(item(piece));
    totalEl.textContent = total === 1 ? "1 piece" : `${total} pieces`;
    more.hidden = shown.length >= total;
    if (!total) list.append(h("li", { class: "muted" }, "No pieces match."));
  }
  const run = (append = false) => busy(searchButton, () => search(append), formEl);

  function item(piece) {
    const open_ = () => openPiece(piece.id);
    return h(
      "li",
      { testid: "history-item", "data-piece-id": String(piece.id) },
      h(
        "button",
        { type: "button", class: "item", onclick: open_, "aria-label": `Open piece ${piece.id}, ${piece.template}` },
        h(
          "span",
          { class: "row spread" },
          h("strong", {}, piece.template),
          h("span", { class: `badge status-${piece.status}` }, piece.status),
        ),
        h("span", { class: "snippet", testid: "history-snippet" }, snippet(piece.text) || "(no text yet)"),
        h(
          "span",
          { class: "muted small" },
          `${piece.system} · ${stars(piece.rating)} · ${when(piece.updated_at)}${piece.tags.length ? " · " + piece.tags.join(", ") : ""}`,
        ),
      ),
    );
  }

  // ------------------------------------------------------------ one piece

  async function openPiece(id) {
    try {
      drawPiece(await get(`/pieces/${id}`));
    } catch (error) {
      showError(error);
    }
  }

  function drawPiece(piece) {
    open = piece;
    const editsOfChosen = piece.versions.filter((v) => v.variant_id === piece.chosen_variant);
    selected = editsOfChosen.at(-1) ?? null;
    for (const li of list.children) li.classList.toggle("open", li.dataset.pieceId === String(piece.id));
    detail.dataset.pieceId = String(piece.id);

    const textBox = h("div", { class: "variant-text", testid: "history-text", tabindex: "0" });
    const diffBox = h("div", { testid: "history-diff" });
    const versionList = h("ol", { class: "versions", testid: "version-list", "aria-label": "Versions" });
    const branch = h("button", { type: "button", testid: "history-branch" }, "Branch from this version");

    const entries = [
      [null, "Original", "as the model wrote it"],
      ...piece.versions.map((v, i) => [v, `Version ${i + 1}`, when(v.created_at)]),
    ];
    const selectVersion = (version) => {
      selected = version;
      textBox.textContent = version ? version.text : (piece.original ?? "");
      clear(diffBox);
      if (version)
        diffBox.append(
          h("h4", {}, "Changes from the original"),
          renderDiff(variantText(version.variant_id), version.text),
        );
      for (const li of versionList.children) {
        const current = li.dataset.versionId === String(version?.id ?? "original");
        li.querySelector("button").setAttribute("aria-pressed", String(current));
      }
    };
    const variantText = (variantId) => piece.variants.find((v) => v.id === variantId)?.text ?? "";
    for (const [version, label, sub] of entries) {
      versionList.append(
        h(
          "li",
          { "data-version-id": String(version?.id ?? "original") },
          h(
            "button",
            { type: "button", class: "item", testid: "version-item", onclick: () => selectVersion(version) },
            h("strong", {}, label),
            h("span", { class: "muted small" }, ` ${sub}`),
          ),
        ),
      );
    }
    branch.addEventListener("click", () =>
      busy(
        branch,
        async () => {
          const child = await post(`/pieces/${piece.id}/branch`, selected ? { version_id: selected.id } : {});
          toast(`Branched into piece ${child.id}.`);
          drawPiece(child);
          await search();
        },
        detail,
      ),
    );

    clear(detail).append(
      h(
        "div",
        { class: "row spread" },
        h("h2", { testid: "history-title" }, `${piece.template} · piece ${piece.id}`),
        h("span", { class: `badge status-${piece.status}` }, piece.status),
      ),
      h(
        "p",
        { class: "muted small" },
        `${piece.system} · ${stars(piece.rating)} · written ${when(piece.created_at)}`,
        piece.parent_piece ? ` · branched from piece ${piece.parent_piece}` : "",
        piece.tags.length ? ` · tags: ${piece.tags.join(", ")}` : "",
      ),
      h(
        "div",
        { class: "row" },
        h(
          "button",
          { type: "button", class: "primary", testid: "history-again", onclick: () => emit("write-again", piece) },
          "Generate again",
        ),
        h(
          "button",
          { type: "button", testid: "history-open", onclick: () => emit("write-open", piece) },
          "Open in editor",
        ),
        branch,
      ),
      h("h3", {}, "Fields"),
      definitionList(
        Object.entries(piece.fields).map(([k, v]) => [k.replaceAll("_", " "), Array.isArray(v) ? v.join(", ") : v]),
        { testid: "history-fields" },
      ),
      h("h3", {}, "Versions"),
      h("div", { class: "versions-view" }, versionList, h("div", {}, textBox, diffBox)),
      h("h3", {}, `Variants (${piece.variants.length})`),
      h(
        "ul",
        { class: "list", testid: "history-variants" },
        piece.variants.map((v, i) =>
          h(
            "li",
            { class: v.id === piece.chosen_variant ? "chosen" : "" },
            h(
              "div",
              {},
              h("strong", {}, `Variant ${i + 1}`),
              v.id === piece.chosen_variant ? h("span", { class: "badge" }, "chosen") : null,
              h("span", { class: "muted small" }, ` ${v.system}`),
            ),
            h("div", { class: "variant-text small" }, v.text),
          ),
        ),
      ),
    );
    selectVersion(selected);
  }

  // ------------------------------------------------------------ wiring

  let timer = 0;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(), 250); // search as the creator types, not on every key
  };
  formEl.addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(timer);
    run();
  });
  q.addEventListener("input", soon);
  for (const el of [tpl, system, status, minRating, since, until]) el.addEventListener("change", () => run());
  clearButton.addEventListener("click", () => {
    formEl.reset();
    run();
  });
  more.addEventListener("click", () => run(true));
  on("systems-changed", () => {
    const keep = system.value;
    system.replaceChildren(
      ...[["", "any system"], ...studio.systems.map((s) => [s.id, s.id])].map(([v, l]) => h("option", { value: v }, l)),
    );
    system.value = keep;
  });
  on("pieces-changed", () => {
    stale = true;
  });
  return {
    show: () => {
      if (stale) {
        stale = false;
        run();
      }
      if (open) openPiece(open.id);
    },
  };
}
