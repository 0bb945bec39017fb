// A word-level diff of the model's text against the creator's edit: the longest common subsequence of
// tokens (words and the whitespace characters between them), rendered with <ins>/<del> elements built
// through the DOM.

import { h } from "./dom.js";

// Above this many table cells (tokens × tokens) the middle is shown as one deletion and one insertion:
// an edit that large reads better whole, and the table would take noticeable time and memory.
const MAX_CELLS = 4_000_000;

// Words, and each whitespace character on its own: text added after a trailing space or newline then
// reads as one insertion instead of replacing the whitespace run it touches.
const tokens = (text) => (text ?? "").match(/\s|[^\s]+/g) ?? [];

/** [{op: "same" | "ins" | "del", text}] turning `before` into `after`, runs of one op merged. */
export function diffWords(before, after) {
  const a = tokens(before);
  const b = tokens(after);
  // The common start and end need no table (most edits touch a few words in the middle).
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const ops = a.slice(0, start).map((t) => ["same", t]);
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  ops.push(...middle(midA, midB));
  ops.push(...a.slice(endA).map((t) => ["same", t]));
  return group(merge(ops));
}

// A common word or space found inside a rewritten passage ("the", " ") is a coincidence, not text the
// creator kept: shown as kept, it chops the passage into alternating crossed-out and added words. Such short
// runs between two changes join the change, and each changed stretch then reads as the old words, crossed
// out, followed by the new ones (as diff tools show a replaced paragraph).
const SHORT_KEPT = 4; // characters of a kept run, spaces aside, that still count as a coincidence

function group(ops) {
  const isChange = (o) => o && o.op !== "same";
  const out = [];
  let dels = "";
  let ins = "";
  const flush = () => {
    if (dels) out.push({ op: "del", text: dels });
    if (ins) out.push({ op: "ins", text: ins });
    dels = "";
    ins = "";
  };
  ops.forEach((o, k) => {
    if (o.op === "del") dels += o.text;
    else if (o.op === "ins") ins += o.text;
    else if (isChange(ops[k - 1]) && isChange(ops[k + 1]) && o.text.trim().length <= SHORT_KEPT) {
      dels += o.text; // a coincidence inside the rewrite: part of both the old and the new words
      ins += o.text;
    } else {
      flush();
      out.push(o);
    }
  });
  flush();
  return out;
}

function middle(a, b) {
  const n = a.length;
  const m = b.length;
  if (!n || !m || n * m > MAX_CELLS) return [...a.map((t) => ["del", t]), ...b.map((t) => ["ins", t])];
  // lcs[i][j]: the longest common subsequence of a[i:] and b[j:], one flat row-major array.
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j] ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const ops = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push(["same", a[i++]]);
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) ops.push(["del", a[i++]]);
    else ops.push(["ins", b[j++]]);
  }
  while (i < n) ops.push(["del", a[i++]]);
  while (j < m) ops.push(["ins", b[j++]]);
  return ops;
}

function merge(ops) {
  const out = [];
  for (const [op, text] of ops) {
    const last = out[out.length - 1];
    if (last && last.op === op) last.text += text;
    else out.push({ op, text });
  }
  return out;
}

/** The diff as a <div>: unchanged text as text nodes, insertions in <ins>, deletions in <del>. */
export function renderDiff(before, after, props = {}) {
  const ops = diffWords(before, after);
  const changed = ops.some((o) => o.op !== "same");
  return h(
    "div",
    { class: "diff", ...props },
    changed
      ? ops.map(({ op, text }) => (op === "same" ? text : h(op, { title: op === "ins" ? "added" : "removed" }, text)))
      : h("span", { class: "muted" }, "No changes yet: edit the text above."),
  );
}
