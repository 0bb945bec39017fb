// Compare: the same request written by two systems, shown blind (left/right in random order); the creator
// judges, then learns which system wrote which. Judgements feed the leaderboard (Bradley–Terry ratings)
// and, for a training job's blind round, the promote / discard decision.

import { get, post } from "./api.js";
import { busy, clear, h, labelled, showError, snippet, when } from "./dom.js";
import { settingsForm, templateForm } from "./fields.js";
import { emit, on, studio, systemSelect, template, templateSelect } from "./shared.js";

const fmt = (x) => (x == null ? "—" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));

export function mountCompare(root) {
  let form = null;
  let current = null; // the comparison being judged: {id, left_text, right_text, ...}

  const templatePick = templateSelect({ testid: "compare-template" }, studio.templates[0]?.name);
  const about = h("p", { class: "help" });
  const fieldsBox = h("div");
  const systems = studio.systems;
  const pickA = systemSelect({ testid: "compare-system-a" });
  const pickB = systemSelect({ testid: "compare-system-b" }, systems.find((s) => !s.default)?.id);
  const settings = settingsForm({ prefix: "compare-" });
  const run = h("button", { type: "submit", class: "primary", testid: "compare-run" }, "Write both");

  const formEl = h(
    "form",
    { class: "card compose", testid: "compare-form", "aria-label": "What to compare", novalidate: true },
    h("h2", {}, "Compare blind"),
    h("p", { class: "muted small" }, "Two systems write the same piece; you judge without knowing which is which."),
    labelled("Template", templatePick, { param: "template" }).wrap,
    about,
    fieldsBox,
    h(
      "div",
      { class: "fields two", "data-param": "systems" },
      labelled("System A", pickA).wrap,
      labelled("System B", pickB).wrap,
      h("p", { class: "field-error", role: "alert" }),
    ),
    h(
      "details",
      { class: "more" },
      h("summary", { testid: "compare-settings-toggle" }, "Decoding settings"),
      settings.el,
    ),
    h("div", { class: "row" }, run),
  );

  // The judging area
  const leftText = h("div", { class: "variant-text", testid: "compare-left-text", tabindex: "0" });
  const rightText = h("div", { class: "variant-text", testid: "compare-right-text", tabindex: "0" });
  const leftWho = h("span", { class: "badge", testid: "compare-left-system" }, "hidden");
  const rightWho = h("span", { class: "badge", testid: "compare-right-system" }, "hidden");
  const heading = h("p", { class: "muted small", testid: "compare-heading" });
  const verdict = h("p", { class: "verdict", testid: "compare-verdict", "aria-live": "polite" });
  const judgeButtons = [
    ["left", "◀ Left is better"],
    ["tie", "Tie"],
    ["right", "Right is better ▶"],
  ].map(([winner, label]) =>
    h("button", { type: "button", testid: `judge-${winner}`, onclick: (e) => judge(winner, e.currentTarget) }, label),
  );
  const judging = h(
    "section",
    { class: "card", testid: "compare-judging", hidden: true, "aria-label": "Judge the pair" },
    h("h3", {}, "Which is better?"),
    heading,
    h(
      "div",
      { class: "pair" },
      h(
        "article",
        { class: "variant card", testid: "compare-left" },
        h("header", { class: "row spread" }, "Left", leftWho),
        leftText,
      ),
      h(
        "article",
        { class: "variant card", testid: "compare-right" },
        h("header", { class: "row spread" }, "Right", rightWho),
        rightText,
      ),
    ),
    h("div", { class: "row center" }, judgeButtons),
    verdict,
  );

  const pendingCount = h("span", { class: "badge", testid: "pending-count" }, "0");
  const pendingList = h("ul", { class: "list", testid: "pending-list" });
  const board = h("tbody");
  const boardNote = h("p", { class: "muted small", testid: "leaderboard-empty" });

  root.append(
    h(
      "div",
      { class: "split" },
      formEl,
      h(
        "div",
        { class: "results" },
        judging,
        h(
          "section",
          { class: "card", "aria-label": "Pending comparisons" },
          h("h3", {}, "Waiting for your judgement ", pendingCount),
          pendingList,
        ),
        h(
          "section",
          { class: "card", "aria-label": "Leaderboard" },
          h("h3", {}, "Leaderboard"),
          h(
            "div",
            { class: "table-wrap" }, // a narrow screen scrolls the table, not the page
            h(
              "table",
              { class: "table", testid: "leaderboard" },
              h("caption", { class: "sr-only" }, "Systems ranked by their blind comparisons"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["System", "Rating", "Interval", "Won", "Lost", "Tied", "Judged"].map((c) =>
                    h("th", { scope: "col" }, c),
                  ),
                ),
              ),
              board,
            ),
          ),
          boardNote,
        ),
      ),
    ),
  );

  function showTemplate(name) {
    about.textContent = template(name)?.description ?? "";
    form = templateForm(template(name), { prefix: "compare-" });
    clear(fieldsBox).append(form.el);
  }
  templatePick.addEventListener("change", () => showTemplate(templatePick.value));
  showTemplate(templatePick.value);

  function open(comparison) {
    current = comparison;
    judging.hidden = false;
    judging.dataset.comparisonId = String(comparison.id);
    leftText.textContent = comparison.left_text ?? comparison.left?.text ?? "";
    rightText.textContent = comparison.right_text ?? comparison.right?.text ?? "";
    const fields = Object.values(comparison.fields ?? {}).filter((v) => typeof v === "string" && v);
    heading.textContent = [
      `comparison ${comparison.id}`,
      comparison.template ?? templatePick.value,
      comparison.round ? `round ${comparison.round}` : null,
      fields.length ? `“${snippet(fields[0], 60)}”` : null,
    ]
      .filter(Boolean)
      .join(" · ");
    reveal(comparison);
    judging.scrollIntoView({ block: "nearest" });
  }

  function reveal(c) {
    const judged = c.winner != null;
    for (const b of judgeButtons) b.disabled = judged;
    judging.dataset.judged = String(judged);
    leftWho.textContent = judged ? c.left_system : "hidden";
    rightWho.textContent = judged ? c.right_system : "hidden";
    leftWho.classList.toggle("revealed", judged);
    rightWho.classList.toggle("revealed", judged);
    verdict.textContent = !judged
      ? ""
      : c.winner === "tie"
        ? `A tie between ${c.left_system} and ${c.right_system}.`
        : `You preferred ${c.winner === "left" ? c.left_system : c.right_system} (the ${c.winner}).`;
  }

  async function judge(winner, button) {
    if (!current) return;
    // The judge buttons' state is reveal()'s alone: busy() would re-enable the clicked one after the
    // verdict had disabled them all (a judged comparison could be judged again).
    for (const b of judgeButtons) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    await busy(
      null,
      async () => {
        const judged = await post(`/comparisons/${current.id}/judge`, { winner });
        current = judged;
        await refresh();
        emit("comparisons-changed");
      },
      judging,
    );
    button.removeAttribute("aria-busy");
    reveal(current);
  }

  formEl.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(
      run,
      async () => {
        const made = await post("/comparisons", {
          template: templatePick.value,
          fields: form.read(),
          systems: [pickA.value, pickB.value],
          settings: settings.read(),
        });
        open({ ...made, template: templatePick.value, winner: null, fields: form.read() });
        await refreshPending();
      },
      formEl,
    );
  });

  async function refreshPending() {
    const pending = (await get("/comparisons", { pending: true })).data;
    pendingCount.textContent = String(pending.length);
    clear(pendingList);
    if (!pending.length) pendingList.append(h("li", { class: "muted" }, "Nothing to judge."));
    for (const c of pending) {
      const first = Object.values(c.fields ?? {}).find((v) => typeof v === "string" && v);
      pendingList.append(
        h(
          "li",
          { testid: "pending-item", "data-comparison-id": String(c.id) },
          h(
            "div",
            {},
            h("strong", {}, `${c.template}`),
            c.round ? h("span", { class: "badge" }, `round ${c.round}`) : null,
            h("div", { class: "muted small" }, `${first ? snippet(first, 80) + " · " : ""}${when(c.created_at)}`),
          ),
          h(
            "button",
            {
              type: "button",
              testid: "pending-open",
              "aria-label": `Judge comparison ${c.id}`,
              onclick: () => open(c),
            },
            "Judge",
          ),
        ),
      );
    }
  }

  async function refreshBoard() {
    const { data } = await get("/leaderboard");
    clear(board);
    boardNote.textContent = data.length
      ? "Ratings with their likely range (Bradley–Terry)."
      : "Judge a comparison to rank the systems.";
    for (const row of data) {
      board.append(
        h(
          "tr",
          { testid: "leaderboard-row", "data-system": row.system },
          h("th", { scope: "row" }, row.system),
          h("td", { class: "num" }, fmt(row.rating)),
          h("td", { class: "num muted" }, `${fmt(row.low)}–${fmt(row.high)}`),
          h("td", { class: "num" }, String(row.wins)),
          h("td", { class: "num" }, String(row.losses)),
          h("td", { class: "num" }, String(row.ties)),
          h("td", { class: "num" }, String(row.n)),
        ),
      );
    }
  }

  async function refresh() {
    try {
      await Promise.all([refreshPending(), refreshBoard()]);
    } catch (error) {
      showError(error);
    }
  }

  on("comparisons-changed", refreshPending);
  on("systems-changed", () => {
    for (const [pick, fallback] of [
      [pickA, null],
      [pickB, studio.systems.find((s) => !s.default)?.id],
    ]) {
      const keep = pick.value;
      const fresh = systemSelect({}, keep || fallback);
      pick.replaceChildren(...fresh.children);
      pick.value = [...pick.options].some((o) => o.value === keep) ? keep : fresh.value;
    }
  });
  return { show: refresh };
}
