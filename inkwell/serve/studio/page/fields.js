// Forms built from declarations: a template's fields (GET /templates) and the decoding settings.
// Field types: str → input (textarea for long texts), int/float → number, bool → checkbox,
// choices → select, list → comma-separated input. Empty optional fields are left out so the
// template's defaults apply; the server checks the rest and names the field in its 400.

import { h, labelled } from "./dom.js";

// Fields that hold a text to work on (or a long brief) get a textarea.
const LONG = /^(text|message|facts|notes|premise|body|content|source|brief|outline|details|context)$/;

function control(spec, testid) {
  if (spec.choices?.length) {
    const options = spec.choices.map((choice, i) => h("option", { value: String(i) }, String(choice)));
    if (!spec.required && spec.default == null) options.unshift(h("option", { value: "" }, "—"));
    return h("select", { name: spec.name, testid }, options);
  }
  switch (spec.type) {
    case "bool":
      return h("input", { type: "checkbox", name: spec.name, testid });
    case "int":
      return h("input", { type: "number", step: "1", inputmode: "numeric", name: spec.name, testid });
    case "float":
      return h("input", { type: "number", step: "any", inputmode: "decimal", name: spec.name, testid });
    case "list":
      return h("input", { type: "text", name: spec.name, testid, placeholder: "comma, separated, items" });
    default:
      return LONG.test(spec.name)
        ? h("textarea", { name: spec.name, rows: "4", testid })
        : h("input", { type: "text", name: spec.name, testid });
  }
}

function setValue(el, spec, value) {
  if (spec.choices?.length) {
    const index = spec.choices.findIndex((c) => String(c) === String(value));
    el.value = index >= 0 ? String(index) : (el.options[0]?.value ?? "");
  } else if (spec.type === "bool") el.checked = Boolean(value);
  else if (spec.type === "list") el.value = Array.isArray(value) ? value.join(", ") : (value ?? "");
  else el.value = value ?? "";
}

function readValue(el, spec) {
  if (spec.choices?.length) return el.value === "" ? undefined : spec.choices[Number(el.value)];
  if (spec.type === "bool") return el.checked;
  const raw = el.value.trim();
  if (raw === "") return undefined; // left out: the template's default (or the server's "required" error)
  if (spec.type === "int" || spec.type === "float") return Number(raw);
  if (spec.type === "list")
    return raw
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
  return el.value; // str: as typed (leading spaces may matter in a text to rewrite)
}

/** A template's fields as a form: {el, read() → fields, set(values)}. `prefix` keeps test ids apart. */
export function templateForm(tpl, { prefix = "", values } = {}) {
  const controls = new Map();
  const el = h("div", { class: "fields", testid: `${prefix}fields` });
  for (const spec of tpl?.fields ?? []) {
    const input = control(spec, `${prefix}field-${spec.name}`);
    controls.set(spec.name, [input, spec]);
    const label = spec.name.replaceAll("_", " ");
    const { wrap } = labelled(label, input, {
      param: `fields.${spec.name}`,
      help: spec.description || null,
      required: spec.required,
    });
    if (input.tagName === "TEXTAREA") wrap.classList.add("wide");
    el.append(wrap);
  }
  const set = (given = {}) => {
    for (const [name, [input, spec]] of controls) {
      setValue(input, spec, name in given ? given[name] : spec.default);
    }
  };
  const read = () => {
    const out = {};
    for (const [name, [input, spec]] of controls) {
      const value = readValue(input, spec);
      if (value !== undefined) out[name] = value;
    }
    return out;
  };
  set(values);
  return { el, read, set };
}

const SETTINGS = [
  // [name, label, step, min, max, help]
  ["temperature", "Temperature", "0.05", "0", "5", "higher: more surprising; 0: always the likeliest word"],
  ["top_p", "Top p", "0.01", "0.01", "1", "sample from the likeliest words that make up this share"],
  ["max_tokens", "Max tokens", "1", "1", "32768", "the longest the text may get"],
  ["seed", "Seed", "1", "0", null, "the same seed and settings give the same text"],
];

/** Decoding settings (blank: the template's default): {el, read() → settings, set(settings)}. */
export function settingsForm({ prefix = "", values } = {}) {
  const inputs = new Map();
  const el = h("div", { class: "fields settings", testid: `${prefix}settings` });
  for (const [name, label, step, min, max, help] of SETTINGS) {
    const input = h("input", {
      type: "number",
      step,
      min,
      max,
      name,
      placeholder: "default",
      testid: `${prefix}setting-${name}`,
    });
    inputs.set(name, input);
    el.append(labelled(label, input, { param: `settings.${name}`, help }).wrap);
  }
  const set = (given = {}) => {
    for (const [name, input] of inputs) input.value = given[name] ?? "";
  };
  const read = () => {
    const out = {};
    for (const [name, input] of inputs) if (input.value.trim() !== "") out[name] = Number(input.value);
    return out;
  };
  set(values);
  return { el, read, set };
}

// ------------------------------------------------------------------ a facts table (report, data-brief)

const TABLE_FILES = ".csv,.tsv,.jsonl,.ndjson,.json,text/csv,text/tab-separated-values,application/json";

/**
 * A facts table as the API takes it (`table: {text, name}`): a file (CSV, TSV, JSON lines) read into the
 * box, where it can be checked and edited, or a table pasted there. The server reads it as the CLI does
 * (`inkwell write report --data`) and names the file and line of a problem. {el, read() → table or
 * undefined, clear()}.
 */
export function factsTableInput({ prefix = "" } = {}) {
  let name = null; // the file's name: its ending says how to read the text (pasted: the server guesses)
  const file = h("input", { type: "file", accept: TABLE_FILES, testid: `${prefix}table-file` });
  const text = h("textarea", {
    name: "table",
    rows: "4",
    spellcheck: "false",
    testid: `${prefix}table-text`,
    placeholder: "team,goals\nReds,3\nBlues,1",
  });
  const info = h("p", { class: "help", testid: `${prefix}table-info` });
  const clearButton = h("button", { type: "button", class: "link", testid: `${prefix}table-clear` }, "Clear");
  const describe = () => {
    const rows = text.value.split("\n").filter((line) => line.trim()).length;
    info.textContent = text.value.trim()
      ? `${name ?? "pasted table"} · ${rows} line${rows === 1 ? "" : "s"}`
      : "no table: the facts field is used as written";
  };
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    name = chosen.name;
    text.value = await chosen.text();
    describe();
  });
  text.addEventListener("input", () => {
    if (!text.value.trim()) name = null; // emptied: a new paste is read by its own look
    describe();
  });
  const clear = () => {
    name = null;
    file.value = "";
    text.value = "";
    describe();
  };
  clearButton.addEventListener("click", clear);
  const { wrap } = labelled("Facts table", text, {
    param: "table",
    help: "a CSV, TSV or JSON-lines file, or a table pasted here: the facts are derived from it and every number of the text is checked",
  });
  wrap.classList.add("facts-table");
  wrap.dataset.testid = `${prefix}table`;
  wrap.insertBefore(h("div", { class: "row" }, file, clearButton), text);
  wrap.append(info);
  describe();
  const read = () => (text.value.trim() ? { text: text.value, ...(name ? { name } : {}) } : undefined);
  return { el: wrap, read, clear };
}
