// The edit panel under the chosen variant: edit in place and save a version, see the word diff against
// what the model wrote, and give the verdict (accept / reject, 1–5 stars, tags). Each verdict control
// saves at once (POST /feedback), so nothing is lost when the creator moves on.

import { post } from "./api.js";
import { renderDiff } from "./diff.js";
import { busy, clear, h, showError, toast, uid, when } from "./dom.js";
import { emit } from "./shared.js";

export const PRESET_TAGS = [
  "great",
  "on-brand",
  "off-brand",
  "wrong facts",
  "too long",
  "too short",
  "needs a fact check",
];

const slug = (tag) =>
  tag
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "") || "tag";

/** The panel for `piece` (which has a chosen variant). `onPiece(piece)` hears every update. */
export function editPanel(initial, onPiece = () => {}) {
  let piece = initial;
  const textId = uid("edit");
  const textarea = h("textarea", { id: textId, rows: "8", testid: "edit-text", spellcheck: "true" });
  textarea.value = piece.text ?? "";
  // As tall as the text (within reason), so a short text does not sit in a tall empty box.
  const fit = () => {
    textarea.rows = Math.min(
      16,
      Math.max(3, textarea.value.split("\n").length + Math.ceil(textarea.value.length / 110)),
    );
  };
  fit();
  const diffBox = h("div", { testid: "edit-diff", "aria-live": "polite" });
  const saved = h("p", { class: "muted small", testid: "edit-saved" });
  const status = h("span", { class: "badge", testid: "edit-status" });
  const accept = h("button", { type: "button", testid: "edit-accept", class: "good" }, "Accept");
  const reject = h("button", { type: "button", testid: "edit-reject", class: "bad" }, "Reject");
  const starRow = h("div", { class: "stars", role: "group", "aria-label": "Rating", testid: "rating" });
  const tagRow = h("div", { class: "chips", role: "group", "aria-label": "Tags", testid: "tags" });
  const tagInput = h("input", {
    type: "text",
    testid: "tag-input",
    "aria-label": "Add a tag of your own",
    placeholder: "your own tag",
    maxlength: "40",
  });
  const save = h("button", { type: "button", class: "primary", testid: "edit-save" }, "Save edit");
  const reset = h("button", { type: "button", testid: "edit-revert" }, "Back to the original");

  const panel = h(
    "section",
    { class: "card edit", testid: "edit-panel", "aria-labelledby": `${textId}-title` },
    h("div", { class: "row spread" }, h("h3", { id: `${textId}-title` }, "Edit the chosen text"), status),
    h("label", { for: textId, class: "sr-only" }, "Edited text"),
    textarea,
    h("div", { class: "row" }, save, reset, saved),
    h("h4", {}, "Changes from the model's text"),
    diffBox,
    h("h4", {}, "Your verdict"),
    h("div", { class: "row" }, accept, reject, starRow),
    tagRow,
    h(
      "form",
      {
        class: "row",
        onsubmit: (e) => {
          e.preventDefault();
          const tag = tagInput.value.trim();
          if (tag) update((p) => ({ tags: p.tags.includes(tag) ? p.tags : [...p.tags, tag] }));
          tagInput.value = "";
        },
      },
      tagInput,
      h("button", { type: "submit", testid: "tag-add" }, "Add tag"),
    ),
  );

  let timer = 0;
  // A textarea turns \r\n and \r into \n: compare like with like, or an untouched text would show a change.
  const asTyped = (text) => (text ?? "").replace(/\r\n?/g, "\n");
  const redrawDiff = () => clear(diffBox).append(renderDiff(asTyped(piece.original), textarea.value));
  textarea.addEventListener("input", () => {
    fit();
    clearTimeout(timer);
    timer = setTimeout(redrawDiff, 120); // typing stays smooth on long texts
    panel.dataset.dirty = String(textarea.value !== asTyped(piece.text));
  });

  // Verdict updates go one at a time, each built from the piece as the previous one left it: two quick
  // tag clicks must add both tags, not race and keep only the last.
  let queue = Promise.resolve();
  function update(makeBody, button) {
    queue = queue.then(() =>
      busy(button, async () => accepted(await post(`/pieces/${piece.id}/feedback`, makeBody(piece))), panel),
    );
    return queue;
  }
  const toggleTag = (tag) =>
    update((p) => ({ tags: p.tags.includes(tag) ? p.tags.filter((t) => t !== tag) : [...p.tags, tag] }));

  save.addEventListener("click", () =>
    busy(
      save,
      async () => {
        const next = await post(`/pieces/${piece.id}/versions`, { text: textarea.value });
        accepted(next);
        toast("Saved a new version.");
        emit("pieces-changed");
      },
      panel,
    ),
  );
  reset.addEventListener("click", () => {
    textarea.value = piece.original ?? "";
    textarea.dispatchEvent(new Event("input"));
  });
  accept.addEventListener("click", () => update(() => ({ status: "accepted" }), accept));
  reject.addEventListener("click", () => update(() => ({ status: "rejected" }), reject));

  function drawVerdict() {
    status.textContent = piece.status;
    status.dataset.status = piece.status;
    accept.setAttribute("aria-pressed", String(piece.status === "accepted"));
    reject.setAttribute("aria-pressed", String(piece.status === "rejected"));
    clear(starRow);
    for (let n = 1; n <= 5; n++) {
      const on = piece.rating != null && n <= piece.rating;
      starRow.append(
        h(
          "button",
          {
            type: "button",
            class: on ? "star on" : "star",
            testid: `star-${n}`,
            "aria-label": `Rate ${n} of 5`,
            "aria-pressed": String(piece.rating === n),
            onclick: (e) => update(() => ({ rating: n }), e.currentTarget),
          },
          on ? "★" : "☆",
        ),
      );
    }
    clear(tagRow);
    const all = [...PRESET_TAGS, ...piece.tags.filter((t) => !PRESET_TAGS.includes(t))];
    for (const tag of all) {
      const on = piece.tags.includes(tag);
      tagRow.append(
        h(
          "button",
          {
            type: "button",
            class: on ? "chip on" : "chip",
            testid: `tag-${slug(tag)}`,
            "aria-pressed": String(on),
            onclick: () => toggleTag(tag),
          },
          tag,
        ),
      );
    }
    const edits = piece.versions.filter((v) => v.variant_id === piece.chosen_variant);
    saved.textContent = edits.length
      ? `${edits.length} saved version${edits.length > 1 ? "s" : ""}, last ${when(edits.at(-1).created_at)}`
      : "Not edited yet.";
  }

  function accepted(next) {
    const textChanged = next.text !== piece.text;
    piece = next;
    // Keep what the creator is typing unless the stored text itself changed (a save).
    if (textChanged || textarea.value === "") {
      textarea.value = piece.text ?? "";
      fit();
    }
    panel.dataset.dirty = String(textarea.value !== asTyped(piece.text));
    drawVerdict();
    redrawDiff();
    onPiece(piece);
  }

  drawVerdict();
  redrawDiff();
  panel.dataset.dirty = "false";
  return {
    el: panel,
    get piece() {
      return piece;
    },
    setPiece: accepted,
    showError: (e) => showError(e, panel),
  };
}
