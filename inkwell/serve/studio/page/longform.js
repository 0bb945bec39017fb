// Long-form: a long piece planned, then written section by section with the creator choosing among
// candidates (taking one, editing it, asking for more, going back to any section: a new branch, nothing
// lost), then assembled — the studio side of `inkwell write long --interactive` (docs/longform.md).

import { get, post, put } from "./api.js";
import { busy, clear, h, labelled, select, snippet, when } from "./dom.js";
import { studio, systemSelect } from "./shared.js";

const KINDS = [
  ["article", "Article"],
  ["report", "Report"],
  ["story", "Story"],
  ["study-guide", "Study guide"],
];

export function mountLongform(root) {
  let run = null; // the open run as GET /longform/{id} gives it

  // ------------------------------------------------------------ a new piece
  const kind = select({ testid: "longform-kind" }, KINDS, "article");
  const topic = h("input", { type: "text", testid: "longform-topic", maxlength: "500", required: true });
  const words = h("input", { type: "number", testid: "longform-words", min: "150", max: "20000", value: "1200" });
  const lang = select({ testid: "longform-lang" }, [["en", "English"], ["zh", "中文"]], "en");
  const system = systemSelect({ testid: "longform-system" });
  const count = select({ testid: "longform-count" }, [[1, "1"], [2, "2"], [3, "3"], [4, "4"]], 3);
  const planButton = h("button", { type: "submit", class: "primary", testid: "longform-start" }, "Plan it");
  const runsList = h("ul", { class: "list", testid: "longform-runs" });
  const newForm = h(
    "form",
    { class: "card compose", testid: "longform-form", "aria-label": "A new long piece", novalidate: true },
    h("h2", {}, "Write something long"),
    h("p", { class: "muted small" }, "An outline first, then each section from a few candidates you choose among."),
    labelled("Kind", kind, { param: "kind" }).wrap,
    labelled("Topic", topic, { param: "topic", required: true, help: "What the piece is about." }).wrap,
    h(
      "div",
      { class: "fields two" },
      labelled("Words", words, { param: "words", help: "Chinese: characters." }).wrap,
      labelled("Language", lang, { param: "lang" }).wrap,
    ),
    h(
      "div",
      { class: "fields two" },
      labelled("System", system, { param: "system" }).wrap,
      labelled("Candidates", count, { param: "settings.candidates" }).wrap,
    ),
    h("div", { class: "row" }, planButton),
    h("h3", {}, "Your long pieces"),
    runsList,
  );

  // ------------------------------------------------------------ the open run
  const heading = h("h2", { testid: "longform-title" });
  const planBox = h("div", { class: "plan", testid: "longform-plan" });
  // the plan's own error slot comes first: showError puts a `plan.…` error in the wrap's first .field-error
  const planError = h("p", { class: "field-error", role: "alert", testid: "longform-plan-error" });
  const savePlan = h("button", { type: "button", testid: "longform-save-plan" }, "Save plan");
  const chainBox = h("ol", { class: "chain", testid: "longform-chain" });
  const nextBox = h("div", { testid: "longform-next" });
  const pieceBox = h("div", { testid: "longform-piece-box" });
  const work = h(
    "section",
    { class: "card", testid: "longform-work", hidden: true, "aria-label": "The piece" },
    heading,
    h(
      "details",
      { class: "more", testid: "longform-plan-details" },
      h("summary", { testid: "longform-plan-toggle" }, "Plan (edit the sections, then save: writing starts again)"),
      h("div", { "data-param": "plan" }, planError, planBox),
      h("div", { class: "row" }, savePlan),
    ),
    h("h3", {}, "Written so far"),
    chainBox,
    nextBox,
    pieceBox,
  );

  root.append(h("div", { class: "split wide-right" }, newForm, work));

  newForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(
      planButton,
      async () => {
        const body = {
          kind: kind.value,
          topic: topic.value.trim(),
          words: Number(words.value),
          lang: lang.value,
          system: system.value,
          settings: { candidates: Number(count.value) },
        };
        show(await post("/longform", body));
        await listRuns();
      },
      newForm,
    );
  });

  savePlan.addEventListener("click", (e) =>
    busy(e.currentTarget, async () => show(await put(`/longform/${run.id}/plan`, { plan: readPlan() })), work),
  );

  // ------------------------------------------------------------ drawing

  function show(next) {
    run = next;
    work.hidden = false;
    work.dataset.runId = String(run.id);
    heading.textContent = `${run.plan.title} · ${run.kind} · ${run.plan.words} words`;
    drawPlan();
    drawChain();
    drawNext();
    clear(pieceBox);
  }

  function drawPlan() {
    clear(planBox);
    run.plan.sections.forEach((section, i) => {
      planBox.append(
        h(
          "fieldset",
          { class: "plan-section", testid: "longform-plan-section" },
          h("legend", {}, `Section ${i + 1}`),
          labelled("Title", h("input", { type: "text", value: section.title, testid: "longform-section-title" })).wrap,
          labelled(
            "Points (one per line)",
            h("textarea", { rows: "2", testid: "longform-section-points" }, section.points.join("\n")),
          ).wrap,
          labelled("Words", h("input", { type: "number", min: "1", value: String(section.words), testid: "longform-section-words" })).wrap,
        ),
      );
    });
  }

  function readPlan() {
    const sections = [...planBox.querySelectorAll("[data-testid=longform-plan-section]")].map((box) => ({
      title: box.querySelector("[data-testid=longform-section-title]").value,
      points: box
        .querySelector("[data-testid=longform-section-points]")
        .value.split("\n")
        .map((p) => p.trim())
        .filter(Boolean),
      words: Number(box.querySelector("[data-testid=longform-section-words]").value),
    }));
    return { ...run.plan, sections };
  }

  function drawChain() {
    clear(chainBox);
    if (!run.chain.length) chainBox.append(h("li", { class: "muted" }, "Nothing yet: write the first section."));
    run.chain.forEach((node, i) => {
      const title = run.plan.sections[node.section]?.title ?? `Section ${node.section + 1}`;
      chainBox.append(
        h(
          "li",
          { testid: "longform-chain-section", "data-node-id": String(node.id), "data-kind": node.kind },
          h("h4", {}, title, node.kind === "edit" ? h("span", { class: "badge" }, "edited") : null),
          h("div", { class: "variant-text small" }, node.text),
          h(
            "button",
            {
              type: "button",
              class: "link",
              testid: "longform-back",
              onclick: (e) =>
                busy(e.currentTarget, async () => {
                  // back to before this section: its candidates are offered again, next to new ones
                  show(await post(`/longform/${run.id}/back`, { node_id: i ? run.chain[i - 1].id : null }));
                }, work),
            },
            "Write this section again",
          ),
        ),
      );
    });
  }

  function drawNext() {
    clear(nextBox);
    if (run.complete) {
      nextBox.append(h("p", { class: "muted", testid: "longform-complete" }, "Every section is written."));
    } else {
      const section = run.plan.sections[run.next_section];
      const more = h(
        "button",
        { type: "button", class: run.next.length ? "" : "primary", testid: "longform-more" },
        run.next.length ? "More candidates" : `Write section ${run.next_section + 1}: ${section.title}`,
      );
      more.addEventListener("click", (e) =>
        busy(e.currentTarget, async () => show(await post(`/longform/${run.id}/candidates`, {})), work),
      );
      nextBox.append(h("h3", {}, `Next: ${section.title} (about ${section.words} words)`));
      const cards = h("div", { class: "variants", testid: "longform-candidates" });
      run.next.forEach((node) => cards.append(candidate(node)));
      nextBox.append(cards, h("div", { class: "row" }, more));
    }
    const assembleButton = h("button", { type: "button", testid: "longform-assemble" }, "Assemble the piece");
    assembleButton.addEventListener("click", (e) => busy(e.currentTarget, assemble, work));
    nextBox.append(h("div", { class: "row" }, assembleButton));
  }

  function candidate(node) {
    const text = h("div", { class: "variant-text", tabindex: "0" }, node.text);
    const editor = h("textarea", { rows: "8", testid: "longform-edit-text", hidden: true }, node.text);
    const saveEdit = h("button", { type: "button", testid: "longform-edit-save", hidden: true }, "Save my version");
    const card = h(
      "article",
      { class: "variant card", testid: "longform-candidate", "data-node-id": String(node.id) },
      h("p", { class: "muted small" }, `score ${node.score?.toFixed(2) ?? "—"} · ${node.words ?? "?"} words`),
      text,
      editor,
      h(
        "div",
        { class: "row" },
        h(
          "button",
          {
            type: "button",
            class: "primary",
            testid: "longform-take",
            onclick: (e) =>
              busy(e.currentTarget, async () => show(await post(`/longform/${run.id}/choose`, { node_id: node.id })), card),
          },
          "Take this",
        ),
        h(
          "button",
          {
            type: "button",
            testid: "longform-edit",
            onclick: () => {
              editor.hidden = saveEdit.hidden = false;
              text.hidden = true;
              editor.focus();
            },
          },
          "Edit",
        ),
        saveEdit,
      ),
    );
    saveEdit.addEventListener("click", (e) =>
      busy(
        e.currentTarget,
        async () => show(await post(`/longform/${run.id}/edit`, { node_id: node.id, text: editor.value })),
        card,
      ),
    );
    return card;
  }

  async function assemble() {
    const piece = await get(`/longform/${run.id}/piece`);
    const m = piece.measures;
    const download = h(
      "a",
      {
        href: URL.createObjectURL(new Blob([piece.markdown], { type: "text/markdown" })),
        download: `${snippet(run.plan.title, 40).replace(/[^\w-]+/g, "-") || "piece"}.md`,
        testid: "longform-download",
      },
      "Download Markdown",
    );
    clear(pieceBox).append(
      h("h3", {}, piece.complete ? "The piece" : "The piece so far"),
      h(
        "p",
        { class: "muted small", testid: "longform-measures" },
        `${piece.words} of ${piece.words_target} words · length score ${m.length_score} · ` +
          `repeated 4-grams ${(100 * m.repeated_4gram_rate).toFixed(1)}%`,
      ),
      h("pre", { class: "variant-text", testid: "longform-piece" }, piece.markdown),
      download,
    );
  }

  async function listRuns() {
    const runs = (await get("/longform")).data;
    clear(runsList);
    if (!runs.length) runsList.append(h("li", { class: "muted" }, "None yet."));
    for (const r of runs) {
      runsList.append(
        h(
          "li",
          { testid: "longform-run", "data-run-id": String(r.id) },
          h(
            "button",
            {
              type: "button",
              class: "link",
              onclick: (e) => busy(e.currentTarget, async () => show(await get(`/longform/${r.id}`)), root),
            },
            `${r.topic} · ${r.kind}`,
          ),
          h("span", { class: "muted small" }, ` ${when(r.updated_at)}`),
        ),
      );
    }
  }

  return { show: () => listRuns().catch(() => {}) };
}
