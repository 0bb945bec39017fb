// What the screens share: who is signed in, the template library, the systems, and a way to send the
// creator to another screen with something open there (History's "Generate again" opens Write, …).

import { get } from "./api.js";
import { h, select, showError } from "./dom.js";

export const studio = {
  me: null, // {user, auth, default_system}
  templates: [], // GET /templates
  systems: [], // GET /systems
  bus: new EventTarget(), // "navigate" {tab}, "open-write" {piece, mode}, "comparisons-changed", "pieces-changed"
};

export async function loadLibrary() {
  const [templates, systems] = await Promise.all([get("/templates"), get("/systems")]);
  studio.templates = templates.data;
  studio.systems = systems.data;
}

export async function reloadSystems() {
  studio.systems = (await get("/systems")).data;
  studio.bus.dispatchEvent(new CustomEvent("systems-changed"));
}

export const template = (name) => studio.templates.find((t) => t.name === name);
export const defaultSystem = () => studio.systems.find((s) => s.default)?.id ?? studio.me?.default_system ?? "base";

export function go(tab, detail = {}) {
  studio.bus.dispatchEvent(new CustomEvent("navigate", { detail: { tab, ...detail } }));
}

export function emit(name, detail) {
  studio.bus.dispatchEvent(new CustomEvent(name, { detail }));
}

/** Listen on the bus; a failing (async) handler shows its error instead of going unhandled. */
export function on(name, handler) {
  studio.bus.addEventListener(name, (event) => {
    Promise.resolve()
      .then(() => handler(event.detail))
      .catch((error) => showError(error));
  });
}

/** A <select> of the systems (base model, adapters, the creator's trained ones), the default chosen. */
export function systemSelect(props, current) {
  return select(
    props,
    studio.systems.map((s) => [s.id, s.default ? `${s.label} — default` : s.label]),
    current ?? defaultSystem(),
  );
}

export function templateSelect(props, current, { any = false } = {}) {
  const options = studio.templates.map((t) => [t.name, t.name]);
  return select(props, any ? [["", "any template"], ...options] : options, current);
}

/** Decoding settings as the API names them, from the stored piece settings (which use max_new_tokens). */
export function requestSettings(stored = {}) {
  const out = {};
  for (const key of ["temperature", "top_p", "seed", "repetition_penalty"])
    if (stored[key] != null) out[key] = stored[key];
  const max = stored.max_tokens ?? stored.max_new_tokens;
  if (max != null) out.max_tokens = max;
  return out;
}

/** A small "label: value" list (piece fields, job reports), values as text. */
export function definitionList(entries, props = {}) {
  return h(
    "dl",
    { class: "pairs", ...props },
    entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === "" || v == null ? "—" : String(v))]),
  );
}
