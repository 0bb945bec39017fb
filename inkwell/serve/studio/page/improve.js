// Improve: the feedback loop. Edits, choices, verdicts and blind judgements become training rows (export
// them, or train here); a job trains a LoRA adapter in the background (live loss curve), reports how it does
// on held-back pieces, and a blind round lets the creator judge it against the current system before
// promoting it (it becomes the default system) or discarding it.

import { download, get, post } from "./api.js";
import { busy, clear, h, labelled, s, select, showError, toast, when } from "./dom.js";
import { definitionList, emit, go, reloadSystems, templateSelect } from "./shared.js";

const POLL_MS = 1500;
const RUNNING = "running";

/** An inline SVG loss curve from [{step, loss}] (a polyline scaled to the box). */
export function lossCurve(metrics, { width = 420, height = 140 } = {}) {
  const pad = { left: 44, right: 10, top: 10, bottom: 22 };
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "loss",
    role: "img",
    "data-testid": "loss-curve",
    "aria-label": metrics.length
      ? `Training loss over ${metrics.length} steps, last ${metrics.at(-1).loss.toFixed(3)}`
      : "No training steps yet",
  });
  const x0 = pad.left;
  const x1 = width - pad.right;
  const y0 = pad.top;
  const y1 = height - pad.bottom;
  svg.append(
    s("line", { x1: x0, y1: y1, x2: x1, y2: y1, class: "axis" }),
    s("line", { x1: x0, y1: y0, x2: x0, y2: y1, class: "axis" }),
  );
  if (!metrics.length) {
    svg.append(
      s(
        "text",
        { x: (x0 + x1) / 2, y: (y0 + y1) / 2, "text-anchor": "middle", class: "label" },
        "waiting for the first step…",
      ),
    );
    return svg;
  }
  const steps = metrics.map((m) => m.step);
  const losses = metrics.map((m) => m.loss);
  const [sMin, sMax] = [Math.min(...steps), Math.max(...steps)];
  let [lMin, lMax] = [Math.min(...losses), Math.max(...losses)];
  if (lMax - lMin < 1e-9) [lMin, lMax] = [lMin - 0.5, lMax + 0.5]; // a flat line sits in the middle
  const x = (step) => (sMax === sMin ? (x0 + x1) / 2 : x0 + ((step - sMin) / (sMax - sMin)) * (x1 - x0));
  const y = (loss) => y1 - ((loss - lMin) / (lMax - lMin)) * (y1 - y0);
  const points = metrics.map((m) => `${x(m.step).toFixed(1)},${y(m.loss).toFixed(1)}`).join(" ");
  svg.append(
    s("polyline", { points, class: "line", "data-testid": "loss-line", fill: "none" }),
    ...metrics.map((m) => s("circle", { cx: x(m.step).toFixed(1), cy: y(m.loss).toFixed(1), r: 2.5, class: "dot" })),
    s("text", { x: x0 - 6, y: y0 + 8, "text-anchor": "end", class: "label" }, lMax.toFixed(2)),
    s("text", { x: x0 - 6, y: y1, "text-anchor": "end", class: "label" }, lMin.toFixed(2)),
    s("text", { x: x0, y: height - 4, class: "label" }, `step ${sMin}`),
    s("text", { x: x1, y: height - 4, "text-anchor": "end", class: "label" }, `step ${sMax}`),
  );
  return svg;
}

const num = (x) => (typeof x !== "number" ? String(x) : Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(3));
const pct = (x) => (typeof x === "number" ? `${(x * 100).toFixed(0)}%` : "—");

/** The job's held-out report (inkwell/feedback/job.py) as label/value pairs: the system it may replace
 * against the new adapter on pieces it did not train on. */
function reportEntries(report) {
  const base = report.systems?.base ?? {};
  const fresh = report.systems?.new ?? {};
  const against = report.compared_with ?? "base";
  const arrow = (a, b) => `${a == null ? "—" : num(a)} → ${b == null ? "—" : num(b)}`;
  const out = [
    [`Perplexity of your texts (${against} → new, lower is better)`, arrow(base.perplexity, fresh.perplexity)],
    [`ROUGE-L vs your texts (${against} → new)`, arrow(base.rouge_l, fresh.rouge_l)],
    ["Win rate of the new adapter", pct(report.win_rate)],
    ["Held-back pieces", report.heldout_count ?? report.heldout?.length ?? "—"],
  ];
  if (report.train_seconds != null) out.push(["Training took", `${Math.round(report.train_seconds)} s`]);
  if (report.note) out.push(["Note", report.note]);
  return out;
}

export function mountImprove(root) {
  const cards = new Map(); // job id -> {el, job}
  let timer = 0;

  const stat = (id, label) => {
    const value = h("strong", { testid: `summary-${id}` }, "–");
    return [h("div", { class: "stat" }, value, h("span", { class: "muted small" }, label)), value];
  };
  const [piecesEl, piecesValue] = stat("pieces", "pieces written");
  const [sftEl, sftValue] = stat("sft", "SFT rows (accepted or edited texts)");
  const [dpoEl, dpoValue] = stat("dpo", "DPO pairs (preferred over rejected)");
  const [cmpEl, cmpValue] = stat("comparisons", "blind comparisons judged");
  const exportNote = h("p", { class: "muted small", testid: "export-note", "aria-live": "polite" });
  const exportButton = (kind, label) =>
    h(
      "button",
      {
        type: "button",
        testid: `export-${kind}`,
        onclick: (e) =>
          busy(e.currentTarget, async () => {
            const file = await download("/feedback/export", { kind }, `inkwell-feedback-${kind}.jsonl`);
            exportNote.textContent = `Downloaded ${file.name}${Number.isFinite(file.rows) ? ` (${file.rows} rows)` : ""}.`;
          }),
      },
      label,
    );

  const stage = select(
    { testid: "train-stage" },
    [
      ["sft", "SFT: your final texts"],
      ["dpo", "DPO: your preferences"],
    ],
    "sft",
  );
  const maxSteps = h("input", {
    type: "number",
    min: "1",
    max: "10000",
    step: "1",
    placeholder: "recipe default",
    testid: "train-max-steps",
  });
  const trainTemplate = templateSelect({ testid: "train-template" }, "", { any: true });
  const start = h("button", { type: "submit", class: "primary", testid: "train-start" }, "Train");
  const trainForm = h(
    "form",
    { class: "card", testid: "train-form", "aria-label": "Train from your feedback", novalidate: true },
    h("h3", {}, "Train from your feedback"),
    h(
      "p",
      { class: "muted small" },
      "Trains a small adapter on top of the model in the background; your pieces stay on this server.",
    ),
    h(
      "div",
      { class: "fields" },
      labelled("Stage", stage, { param: "stage" }).wrap,
      labelled("Max steps", maxSteps, { param: "max_steps", help: "a few for a quick try; blank: the recipe's" }).wrap,
      labelled("Only template", trainTemplate, { param: "template" }).wrap,
    ),
    h("div", { class: "row" }, start),
  );
  const jobsList = h("div", { class: "jobs", testid: "jobs-list" });

  root.append(
    h(
      "div",
      { class: "improve" },
      h(
        "div",
        {},
        h(
          "section",
          { class: "card", testid: "improve-summary", "aria-label": "Your feedback" },
          h("h2", {}, "Improve from your feedback"),
          h(
            "p",
            { class: "muted" },
            "Every edit you save, variant you choose, verdict you give and blind comparison you judge is a lesson. ",
            "Export them as training data, or train an adapter here, judge it blind against what you use now, and promote it if it wins.",
          ),
          h("div", { class: "stats" }, piecesEl, sftEl, dpoEl, cmpEl),
          h(
            "div",
            { class: "row" },
            exportButton("sft", "Export SFT rows (JSONL)"),
            exportButton("dpo", "Export DPO pairs (JSONL)"),
          ),
          exportNote,
        ),
        trainForm,
      ),
      h("section", { class: "card", "aria-label": "Training jobs" }, h("h3", {}, "Training jobs"), jobsList),
    ),
  );

  trainForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(
      start,
      async () => {
        const body = { stage: stage.value };
        if (maxSteps.value.trim()) body.max_steps = Number(maxSteps.value);
        if (trainTemplate.value) body.template = trainTemplate.value;
        const job = await post("/training", body);
        toast(`Training job ${job.id} started.`);
        draw(job, true);
        schedule();
      },
      trainForm,
    );
  });

  // ------------------------------------------------------------ jobs

  function draw(job, first = false) {
    let entry = cards.get(job.id);
    if (!entry) {
      entry = { el: h("article", { class: "job card", testid: "job-card" }) };
      cards.set(job.id, entry);
      if (first) jobsList.prepend(entry.el);
      else jobsList.append(entry.el);
      jobsList.querySelector(".empty")?.remove();
    }
    entry.job = job;
    const el = entry.el;
    el.dataset.jobId = String(job.id);
    el.dataset.status = job.status;
    const finished = job.status === "finished";
    const round = job.round ?? { comparisons: 0, judged: 0 };
    const action = (testid, label, handler, enabled, cls = "") =>
      h(
        "button",
        { type: "button", testid, class: cls, disabled: !enabled, onclick: (e) => busy(e.currentTarget, handler, el) },
        label,
      );
    const report = job.report ? reportEntries(job.report) : [];
    clear(el).append(
      h(
        "header",
        { class: "row spread" },
        h(
          "h4",
          {},
          `Job ${job.id} · ${job.stage}`,
          job.system ? h("span", { class: "muted small" }, ` → ${job.system}`) : null,
        ),
        h("span", { class: `badge status-${job.status}`, testid: "job-status" }, job.status),
      ),
      h(
        "p",
        { class: "muted small" },
        `${when(job.created_at)} · compared with ${job.base ?? "base"}${job.data?.rows?.train ? ` · ${job.data.rows.train} training rows` : ""}`,
      ),
      h(
        "div",
        { class: "job-body" },
        h(
          "figure",
          {},
          lossCurve(job.metrics ?? []),
          h(
            "figcaption",
            { class: "muted small" },
            job.metrics?.length
              ? `loss ${job.metrics.at(-1).loss.toFixed(3)} at step ${job.metrics.at(-1).step}`
              : "loss",
          ),
        ),
        h(
          "div",
          { testid: "job-report" },
          report.length
            ? [h("h5", {}, "On held-back pieces"), definitionList(report)]
            : h(
                "p",
                { class: "muted small" },
                job.status === RUNNING ? "Training… the report appears when it finishes." : "No report.",
              ),
          job.error ? h("p", { class: "error-text", testid: "job-error" }, job.error) : null,
          round.comparisons
            ? h(
                "p",
                { class: "small", testid: "job-round-info" },
                `Blind round: ${round.judged} of ${round.comparisons} judged.`,
              )
            : null,
        ),
      ),
      h(
        "div",
        { class: "row" },
        action(
          "job-round",
          "Start blind round",
          async () => {
            const made = await post(`/training/${job.id}/round`, {});
            toast(`${made.comparisons.length} blind comparisons are waiting in Compare.`);
            emit("comparisons-changed");
            await refreshJob(job.id);
          },
          finished && !round.comparisons,
        ),
        round.comparisons > round.judged
          ? h("button", { type: "button", testid: "job-judge", onclick: () => go("compare") }, "Judge them")
          : null,
        action(
          "job-promote",
          "Promote",
          async () => {
            const done = await post(`/training/${job.id}/decide`, { action: "promote" });
            toast(`${done.system} is now your default system.`);
            await reloadSystems();
            await refreshJob(job.id);
          },
          finished,
          "good",
        ),
        action(
          "job-discard",
          "Discard",
          async () => {
            await post(`/training/${job.id}/decide`, { action: "discard" });
            toast(`Job ${job.id} discarded.`);
            await refreshJob(job.id);
          },
          finished,
          "bad",
        ),
      ),
    );
  }

  async function refreshJob(id) {
    draw(await get(`/training/${id}`));
    await refreshSummary();
  }

  // Poll the running jobs every POLL_MS while any is running (the loss curve grows as metrics arrive).
  function schedule() {
    clearTimeout(timer);
    if ([...cards.values()].some((c) => c.job.status === RUNNING)) timer = setTimeout(poll, POLL_MS);
  }
  async function poll() {
    try {
      for (const { job } of [...cards.values()]) if (job.status === RUNNING) draw(await get(`/training/${job.id}`));
    } catch (error) {
      showError(error);
    }
    schedule();
  }

  async function refreshSummary() {
    const summary = await get("/feedback/summary");
    piecesValue.textContent = String(summary.pieces);
    sftValue.textContent = String(summary.sft);
    dpoValue.textContent = String(summary.dpo);
    cmpValue.textContent = String(summary.comparisons);
  }

  async function refresh() {
    try {
      const [{ data }] = await Promise.all([get("/training"), refreshSummary()]);
      for (const job of data) draw(job);
      if (!data.length && !jobsList.querySelector(".empty"))
        jobsList.append(h("p", { class: "muted empty" }, "No training jobs yet."));
      schedule();
    } catch (error) {
      showError(error);
    }
  }
  return { show: refresh };
}
