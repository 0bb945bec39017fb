// Write: pick a template, fill its fields, pick a system and settings, and generate 1–4 variants that
// stream in side by side. "Another" adds one more; "Use this" chooses one, which opens the edit panel.
// With a knowledge folder picked, the passages go into the prompt and each variant lists what it cites.
// A style (`inkwell style learn`) puts its exemplars in the prompt and scores each variant ("style 0.64"); a
// facts table (report, data-brief) fills the facts and each variant comes back checked, unsupported numbers
// marked; best of N writes N candidates per variant and keeps the one that passes most of the template's checks.

import { get, post, stream } from "./api.js";
import { editPanel } from "./edit.js";
import { append, busy, clear, clearErrors, h, labelled, select, showError, when } from "./dom.js";
import { factsTableInput, settingsForm, templateForm } from "./fields.js";
import { emit, go, on, requestSettings, studio, systemSelect, template, templateSelect } from "./shared.js";

export function mountWrite(root) {
  let form = null; // the template's fields form
  let piece = null; // the piece on screen
  let cards = []; // variant cards in order (index = position in piece.variants once stored)
  let abort = null; // the running generation
  let editor = null;

  const templatePick = templateSelect({ testid: "write-template", name: "template" }, studio.templates[0]?.name);
  const about = h("p", { class: "help", testid: "write-template-description" });
  const fieldsBox = h("div");
  const systemPick = systemSelect({ testid: "write-system", name: "system" });
  const knowledgePick = select({ testid: "write-knowledge", name: "kb" }, [["", "none"]], "");
  const stylePick = select({ testid: "write-style", name: "style" }, [["", "none"]], "");
  const table = factsTableInput({ prefix: "write-" });
  const bestOf = select(
    { testid: "write-best-of", name: "best_of" },
    [1, 2, 4].map((n) => [n, n === 1 ? "1 (as written)" : String(n)]),
    1,
  );
  const settings = settingsForm();
  const count = select(
    { testid: "write-n", name: "n" },
    [1, 2, 3, 4].map((n) => [n, String(n)]),
    2,
  );
  const generate = h("button", { type: "submit", class: "primary", testid: "write-generate" }, "Generate");
  const stop = h("button", { type: "button", testid: "write-stop", hidden: true }, "Stop");
  const another = h("button", { type: "button", testid: "write-another", disabled: true }, "Another");
  const title = h("h2", { testid: "piece-title" }, "Your variants appear here");
  const meta = h("p", { class: "muted small", testid: "piece-meta" });
  const grid = h("div", { class: "variants", testid: "variants", "aria-live": "polite" });
  const editBox = h("div");

  const formEl = h(
    "form",
    { class: "card compose", testid: "write-form", "aria-label": "What to write", novalidate: true },
    h("h2", {}, "Write"),
    labelled("Template", templatePick, { param: "template" }).wrap,
    about,
    fieldsBox,
    labelled("System", systemPick, { param: "system", help: "the model (or adapter) that writes" }).wrap,
    labelled("Knowledge", knowledgePick, {
      param: "kb",
      help: "a knowledge folder (inkwell kb add): its passages in the prompt, citations under the text",
    }).wrap,
    labelled("Style", stylePick, {
      param: "style",
      help: "a style profile (inkwell style learn): its closest samples show the model the voice; each text gets a style-match score",
    }).wrap,
    h(
      "details",
      { class: "more" },
      h("summary", { testid: "write-settings-toggle" }, "Decoding settings"),
      settings.el,
    ),
    labelled("Variants", count, { param: "n", help: "how many texts to write side by side" }).wrap,
    labelled("Best of", bestOf, {
      param: "best_of",
      help: "candidates written for each variant; the one that passes most of the template's checks is kept",
    }).wrap,
    h("div", { class: "row" }, generate, stop),
  );
  root.append(
    h(
      "div",
      { class: "split" },
      formEl,
      h(
        "div",
        { class: "results" },
        h("div", { class: "row spread" }, h("div", {}, title, meta), another),
        grid,
        editBox,
      ),
    ),
  );

  function showTemplate(name, values) {
    const tpl = template(name);
    about.textContent = tpl?.description ?? "";
    form = templateForm(tpl, { values });
    clear(fieldsBox).append(form.el);
    // the templates written from a facts table (report, data-brief) are those with a `facts` field
    const takesTable = Boolean(tpl?.fields.some((f) => f.name === "facts"));
    table.el.hidden = !takesTable;
    if (takesTable) form.el.append(table.el);
  }
  templatePick.addEventListener("change", () => showTemplate(templatePick.value));
  showTemplate(templatePick.value);

  /** The knowledge folders on the server (GET /knowledge), "none" first; the current choice kept. */
  async function loadKnowledge() {
    const folders = (await get("/knowledge")).data;
    const current = knowledgePick.value;
    const options = [["", "none"], ...folders.map((k) => [k.name, `${k.name} (${k.files} files)`])];
    knowledgePick.replaceChildren(...select({}, options, current).children);
    knowledgePick.value = folders.some((k) => k.name === current) ? current : "";
  }
  loadKnowledge().catch((error) => showError(error, formEl));

  /** The style profiles on the server (GET /styles), "none" first; the current choice kept. */
  async function loadStyles(wanted) {
    const styles = (await get("/styles")).data;
    const current = wanted ?? stylePick.value;
    const label = (s) =>
      `${s.name} (${[s.language, `${s.samples} samples`, s.lora ? "LoRA" : null].filter(Boolean).join(", ")})`;
    const options = [["", "none"], ...styles.map((s) => [s.name, label(s)])];
    stylePick.replaceChildren(...select({}, options, current).children);
    stylePick.value = styles.some((s) => s.name === current) ? current : "";
  }
  loadStyles().catch((error) => showError(error, formEl));

  // ------------------------------------------------------------ variant cards

  function card(position) {
    const text = document.createTextNode("");
    const choose = h("button", { type: "button", testid: "variant-choose" }, "Use this");
    const badge = h("span", { class: "badge chosen-badge", testid: "variant-chosen-badge" }, "✓ Chosen");
    const label = h("span", { class: "variant-label" }, `Variant ${position + 1}`);
    const info = h("span", { class: "muted small", testid: "variant-info" }, "writing…");
    const scores = h("span", { class: "scores" }); // style match, best-of check score
    const box = h("div", { class: "variant-text", testid: "variant-text", tabindex: "0" }, text);
    const facts = h("p", { class: "muted small facts-check", testid: "variant-facts", hidden: true });
    const checks = h("details", { class: "checks small", testid: "variant-checks", hidden: true });
    const sources = h("ol", { class: "citations small", testid: "variant-citations", hidden: true });
    const el = h(
      "article",
      { class: "variant card", testid: "variant-card", "data-state": "streaming", "aria-busy": "true" },
      h("header", { class: "row spread" }, h("span", {}, label, " ", info, scores), badge),
      box,
      facts,
      checks,
      sources,
      h("footer", {}, choose),
    );
    el.setAttribute("aria-label", `Variant ${position + 1}`);
    choose.setAttribute("aria-label", `Use variant ${position + 1}`);
    const item = { el, text, box, info, scores, facts, checks, choose, sources, variant: null };
    choose.addEventListener("click", () => {
      if (!item.variant) return;
      busy(choose, async () => show(await post(`/pieces/${piece.id}/choose`, { variant_id: item.variant.id })), root);
    });
    return item;
  }

  function finish(item, variant) {
    item.variant = variant;
    item.text.data = variant.text; // the stored text (after moderation) replaces the streamed one
    showFactCheck(item, variant);
    showScores(item, variant);
    const notes = {
      length: "hit max tokens",
      escalated: "nothing relevant in the knowledge folder: the template's reply, not the model's",
    };
    item.info.textContent = [variant.system, notes[variant.finish_reason]].filter(Boolean).join(" · ");
    showCitations(item, variant.citations);
    item.el.dataset.state = "done";
    item.el.dataset.variantId = String(variant.id);
    item.el.removeAttribute("aria-busy");
  }

  /**
   * A variant checked against a facts table: its text with each unsupported span highlighted (the CLI's
   * ⟦…⟧ marks) and "numbers checked: N supported, M unsupported" under it.
   */
  function showFactCheck(item, variant) {
    const check = variant.fact_check;
    item.facts.hidden = !check;
    if (!check) return;
    // span offsets count characters (code points), as Python does; a JS string counts UTF-16 units
    const chars = Array.from(variant.text);
    const parts = [];
    let at = 0;
    for (const span of check.spans.filter((s) => !s.supported)) {
      parts.push(chars.slice(at, span.start).join(""));
      parts.push(
        h(
          "mark",
          { class: "unsupported", testid: "variant-unsupported", title: `not in the table (${span.kind})` },
          chars.slice(span.start, span.end).join(""),
        ),
      );
      at = span.end;
    }
    parts.push(chars.slice(at).join(""));
    clear(item.box).append(...parts);
    const unsupported = check.numbers - check.numbers_supported;
    const names = check.unsupported - unsupported; // names (teams, places) not in the table
    item.facts.textContent = [
      `numbers checked: ${check.numbers_supported} supported, ${unsupported} unsupported`,
      names > 0 ? `${names} name${names === 1 ? "" : "s"} not in the table` : null,
      check.attempts > 1 ? `written ${check.attempts} times, the best kept` : null,
    ]
      .filter(Boolean)
      .join(" · ");
    item.facts.classList.toggle("error-text", check.unsupported > 0);
  }

  /** The badges after the label (style match, best-of check score) and the list of checks behind the latter. */
  function showScores(item, variant) {
    const style = variant.style;
    const best = variant.best_of;
    append(
      clear(item.scores),
      style
        ? h(
            "span",
            {
              class: "badge style-badge",
              testid: "variant-style",
              title: `how close the text comes to the style '${style.name}' (0–1; 0.5: as likely this writer as another)`,
            },
            `style ${style.score.toFixed(2)}`,
          )
        : null,
      best
        ? h(
            "span",
            {
              class: "badge checks-badge",
              testid: "variant-check-score",
              title: "share of the template's checks this text passes",
            },
            `checks ${best.score.toFixed(2)}`,
          )
        : null,
    );
    item.checks.hidden = !best;
    if (!best) return;
    const checks = Object.entries(best.checks).filter(([, passed]) => passed !== null);
    const passed = checks.filter(([, ok]) => ok).length;
    clear(item.checks).append(
      h(
        "summary",
        { testid: "variant-checks-toggle" },
        `best of ${best.n}: passed ${passed} of ${checks.length} checks`,
      ),
      h(
        "ul",
        { class: "check-list" },
        checks.map(([name, ok]) =>
          h(
            "li",
            { class: ok ? "passed" : "failed", testid: "variant-check", "data-passed": String(ok) },
            `${ok ? "✓" : "✗"} ${name}`,
          ),
        ),
      ),
      h(
        "p",
        { class: "muted", testid: "variant-candidates" },
        `${best.candidates.length} candidates tried, this one ranked ${best.rank}; their check scores: ` +
          best.candidates.map((c) => c.score.toFixed(2)).join(", "),
      ),
    );
  }

  /** Under a grounded variant: each passage it cites, [n] heading — file:characters (the passage on hover). */
  function showCitations(item, citations) {
    item.sources.hidden = !citations;
    if (!citations) return;
    clear(item.sources).append(
      citations.length
        ? h("li", { class: "muted" }, "Sources:")
        : h("li", { class: "muted" }, "Cites no passage of the knowledge folder."),
      ...citations.map((c) =>
        h(
          "li",
          { testid: "variant-citation", title: c.text },
          `[${c.number}] ${c.heading ? `${c.heading.split(" > ").pop()} — ` : ""}${c.source}:${c.start}–${c.end}`,
        ),
      ),
    );
  }

  /** Draw a stored piece: its variants, the chosen one marked, and the edit panel on it. */
  function show(next) {
    piece = next;
    title.textContent = `${piece.template} · piece ${piece.id}`;
    meta.textContent = `${piece.system} · ${when(piece.created_at)}${piece.parent_piece ? ` · branched from piece ${piece.parent_piece}` : ""}`;
    cards = piece.variants.map((variant, i) => {
      const item = card(i);
      finish(item, variant);
      return item;
    });
    clear(grid).append(...cards.map((c) => c.el));
    markChosen();
    another.disabled = Boolean(abort);
    root.dataset.pieceId = String(piece.id);
  }

  function markChosen() {
    for (const item of cards) {
      const chosen = item.variant != null && item.variant.id === piece?.chosen_variant;
      item.el.dataset.chosen = String(chosen);
      item.el.classList.toggle("chosen", chosen);
      item.choose.disabled = chosen || !item.variant;
      item.choose.textContent = chosen ? "In use" : "Use this";
    }
    const chosen = piece?.variants.find((v) => v.id === piece.chosen_variant);
    if (!chosen) {
      clear(editBox);
      editor = null;
      return;
    }
    if (editor?.piece.id === piece.id && editor.piece.chosen_variant === piece.chosen_variant) {
      editor.setPiece(piece);
    } else {
      editor = editPanel(piece, (p) => {
        piece = p;
      });
      clear(editBox).append(editor.el);
    }
  }

  // ------------------------------------------------------------ generating

  function streaming(running) {
    generate.disabled = running;
    stop.hidden = !running;
    another.disabled = running || !piece;
    root.dataset.streaming = String(running);
  }

  /** What a card says while its text cannot be shown as it is written (candidates ranked, numbers checked). */
  function waiting(bestOfN, checked) {
    if (bestOfN > 1) return `writing ${bestOfN} candidates, keeping the best…`;
    if (checked) return "writing, then checking every number against the table…";
    return "writing…";
  }

  /** Stream one generation: new cards appear after the `offset` existing ones and fill as deltas arrive. */
  async function run(path, body, offset, note = "writing…") {
    abort = new AbortController();
    streaming(true);
    const fresh = [];
    const cardAt = (index) => {
      while (fresh.length <= index) {
        const item = card(offset + fresh.length);
        item.info.textContent = note;
        fresh.push(item);
        cards.push(item);
        grid.append(item.el);
      }
      return fresh[index];
    };
    try {
      await stream(
        path,
        body,
        (event) => {
          if (event.type === "piece") {
            piece = event.piece;
            title.textContent = `${piece.template} · piece ${piece.id}`;
            meta.textContent = `${piece.system} · writing…`;
            for (let i = 0; i < (body.n ?? 1); i++) cardAt(i);
          } else if (event.type === "delta") {
            cardAt(event.index).text.appendData(event.text);
          } else if (event.type === "variant") {
            finish(cardAt(event.index), event.variant);
          } else if (event.type === "done") {
            abort = null;
            show(event.piece);
            emit("pieces-changed");
          }
        },
        abort.signal,
      );
    } catch (error) {
      for (const item of fresh) if (!item.variant) item.el.dataset.state = "failed";
      if (error.name === "AbortError") {
        for (const item of fresh) if (!item.variant) item.info.textContent = "stopped";
      } else showError(error, formEl);
    } finally {
      abort = null;
      streaming(false);
    }
  }

  formEl.addEventListener("submit", (event) => {
    event.preventDefault();
    if (abort) return;
    clearErrors(formEl);
    piece = null;
    cards = [];
    editor = null;
    clear(grid);
    clear(editBox);
    title.textContent = "Writing…";
    meta.textContent = "";
    delete root.dataset.pieceId;
    const facts = table.el.hidden ? undefined : table.read();
    run(
      "/pieces",
      {
        template: templatePick.value,
        fields: form.read(),
        system: systemPick.value,
        settings: settings.read(),
        n: Number(count.value),
        kb: knowledgePick.value || undefined, // left out: no grounding
        style: stylePick.value || undefined, // left out: no style
        table: facts, // left out: the facts field as written
        best_of: Number(bestOf.value) > 1 ? Number(bestOf.value) : undefined,
      },
      0,
      waiting(Number(bestOf.value), Boolean(facts)),
    );
  });
  stop.addEventListener("click", () => abort?.abort());
  another.addEventListener("click", () => {
    if (piece && !abort) run(`/pieces/${piece.id}/variants`, {}, cards.length, waiting(piece.best_of, piece.facts));
  });

  // ------------------------------------------------------------ opened from elsewhere

  function fill(p) {
    templatePick.value = p.template;
    showTemplate(p.template, p.fields);
    if ([...systemPick.options].some((o) => o.value === p.system)) systemPick.value = p.system;
    const kb = p.grounding?.kb ?? "";
    knowledgePick.value = [...knowledgePick.options].some((o) => o.value === kb) ? kb : "";
    const style = p.style ?? "";
    stylePick.value = [...stylePick.options].some((o) => o.value === style) ? style : "";
    bestOf.value = String([2, 4].includes(p.best_of) ? p.best_of : 1);
    table.clear(); // the piece's facts are in its `facts` field, as the table gave them
    settings.set(requestSettings(p.settings));
  }

  // History's "Generate again": the form as the piece was asked for, ready to generate anew.
  on("write-again", (p) => {
    fill(p);
    count.value = "1";
    go("write");
    formEl.querySelector("[data-testid^='field-']")?.focus();
  });
  // History's "Open in editor" (and a new branch): the piece itself, to choose, edit and judge.
  on("write-open", (p) => {
    fill(p);
    show(p);
    go("write");
  });
  on("systems-changed", () => {
    const current = systemPick.value;
    const fresh = systemSelect({ testid: "write-system", name: "system" }, current);
    systemPick.replaceChildren(...fresh.children);
    systemPick.value = [...systemPick.options].some((o) => o.value === current) ? current : fresh.value;
  });
}
