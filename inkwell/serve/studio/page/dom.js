// Building the page without innerHTML. Model output and template fields are untrusted: every string that
// reaches the DOM here becomes a text node (or a property value), so it can never turn into markup.

const PROPS = new Set(["value", "checked", "selected", "disabled", "hidden", "indeterminate"]);
const SVG = "http://www.w3.org/2000/svg";

function apply(el, props) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "testid") el.dataset.testid = value;
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Append children: nodes as they are, strings and numbers as text, arrays flattened, null skipped. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("button", {testid: "x", onclick}, "Label") — an element with properties, listeners and text children. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  return append(el, children);
}

/** The same for SVG elements (the loss curve). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG, tag);
  apply(el, props);
  return append(el, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export const $ = (root, selector) => root.querySelector(selector);
export const $$ = (root, selector) => [...root.querySelectorAll(selector)];
export const byTestId = (root, id) => root.querySelector(`[data-testid="${CSS.escape(id)}"]`);

let ids = 0;
/** A unique element id, for label/for and aria-describedby pairs. */
export const uid = (prefix = "el") => `${prefix}-${++ids}`;

/** A labelled form control: {wrap, control}. The wrapper carries data-param so API errors can find it. */
export function labelled(label, control, { param, help, required } = {}) {
  control.id ||= uid("ctl");
  const error = h("p", { class: "field-error", id: uid("err"), role: "alert" });
  const helpEl = help ? h("p", { class: "help", id: uid("help") }, help) : null;
  control.setAttribute("aria-describedby", [helpEl?.id, error.id].filter(Boolean).join(" "));
  if (required) control.setAttribute("aria-required", "true");
  const isCheck = control.type === "checkbox";
  const labelEl = h(
    "label",
    { for: control.id },
    label,
    required ? h("span", { class: "req", "aria-hidden": "true", title: "required" }, " *") : null,
  );
  const wrap = h(
    "div",
    { class: isCheck ? "field check" : "field", "data-param": param },
    isCheck ? [control, labelEl] : [labelEl, control],
    helpEl,
    error,
  );
  return { wrap, control };
}

/** A <select> from [value, label] pairs (labels are text). */
export function select(props, options, current) {
  const el = h("select", props);
  for (const [value, label] of options) {
    el.append(h("option", { value: String(value), selected: String(value) === String(current ?? "") }, label));
  }
  return el;
}

// ------------------------------------------------------------------ errors and toasts

/** Remove the messages that showError put next to fields inside `scope`. */
export function clearErrors(scope) {
  if (!scope) return;
  for (const el of $$(scope, ".field-error")) el.textContent = "";
  for (const el of $$(scope, "[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** An API error next to the form field its `param` names (`fields.topic`, `settings.top_p`, …), else as a toast. */
export function showError(error, scope) {
  if (error?.name === "AbortError") return;
  const message = error?.message || String(error);
  let param = error?.param;
  while (param && scope) {
    const wrap = scope.querySelector(`[data-param="${CSS.escape(param)}"]`);
    if (wrap) {
      const slot = $(wrap, ".field-error");
      slot.textContent = message;
      const control = $(wrap, "input, select, textarea");
      control?.setAttribute("aria-invalid", "true");
      control?.focus({ preventScroll: false });
      return;
    }
    // `fields.features.0` names an item of the field `fields.features`: try the shorter name.
    param = param.includes(".") ? param.slice(0, param.lastIndexOf(".")) : null;
  }
  toast(message, "error");
}

export function toast(message, kind = "info") {
  const box = document.querySelector(".toasts");
  const item = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", testid: `toast-${kind}` },
    h("span", {}, message),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
  );
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 12000 : 4000);
}

/** Run an async action with its button disabled (and marked busy) until it settles; errors go to showError. */
export async function busy(button, action, scope) {
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  clearErrors(scope);
  try {
    return await action();
  } catch (error) {
    showError(error, scope);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}

// ------------------------------------------------------------------ small formatting helpers

export const when = (seconds) =>
  seconds ? new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

export function snippet(text, length = 160) {
  const flat = (text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > length ? flat.slice(0, length - 1) + "…" : flat;
}

export const stars = (rating) => (rating ? "★".repeat(rating) + "☆".repeat(5 - rating) : "unrated");
