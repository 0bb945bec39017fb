// Inkwell Studio: sign in (when the server has API keys), then five screens — Write, Long-form, Compare,
// History, Improve — over the studio's JSON API (docs/studio.md). Plain ES modules, no build step, no CDN.

import { auth, events, get } from "./api.js";
import { mountCompare } from "./compare.js";
import { byTestId, showError, toast } from "./dom.js";
import { mountHistory } from "./history.js";
import { mountImprove } from "./improve.js";
import { mountLongform } from "./longform.js";
import { loadLibrary, on, studio } from "./shared.js";
import { mountWrite } from "./write.js";

const TABS = ["write", "longform", "compare", "history", "improve"];
const screens = {}; // tab -> {show()} once mounted
const loginForm = byTestId(document, "login-form");
const loginError = byTestId(document, "login-error");
const keyInput = byTestId(document, "login-key");
const tabs = byTestId(document, "tabs");

function screen(name) {
  return document.getElementById(`screen-${name}`);
}

function showLogin(message = "") {
  for (const name of TABS) screen(name).hidden = true;
  tabs.hidden = true;
  byTestId(document, "who").hidden = true;
  screen("login").hidden = false;
  loginError.textContent = message;
  keyInput.setAttribute("aria-invalid", String(Boolean(message)));
  keyInput.focus();
}

function activate(tab, { focus = false } = {}) {
  if (!TABS.includes(tab)) tab = "write";
  for (const name of TABS) {
    const button = tabs.querySelector(`[data-tab="${name}"]`);
    const active = name === tab;
    button.setAttribute("aria-selected", String(active));
    button.tabIndex = active ? 0 : -1;
    screen(name).hidden = !active;
    if (active && focus) button.focus();
  }
  document.body.dataset.tab = tab;
  history.replaceState(null, "", `#${tab}`);
  screens[tab]?.show?.();
}

/** Signed in (or no keys needed): load the library once and mount the screens. */
async function enter(me) {
  studio.me = me;
  await loadLibrary();
  screen("login").hidden = true;
  if (!screens.write) {
    screens.write = mountWrite(screen("write")) ?? {};
    screens.longform = mountLongform(screen("longform"));
    screens.compare = mountCompare(screen("compare"));
    screens.history = mountHistory(screen("history"));
    screens.improve = mountImprove(screen("improve"));
  }
  tabs.hidden = false;
  const who = byTestId(document, "who");
  who.hidden = false;
  byTestId(document, "who-user").textContent = me.auth ? `Signed in as ${me.user}` : "Open server (no API key)";
  byTestId(document, "logout").hidden = !me.auth;
  activate(location.hash.slice(1));
  document.body.dataset.ready = "true";
}

async function boot() {
  byTestId(document, "booting").remove();
  try {
    const me = await get("/me");
    await enter(me);
  } catch (error) {
    if (error.status === 401) showLogin(auth.key ? "This key is no longer accepted; sign in again." : "");
    else showError(error);
  }
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    showLogin("Enter your API key.");
    return;
  }
  auth.key = key;
  const button = byTestId(document, "login-submit");
  button.disabled = true;
  try {
    await enter(await get("/me"));
    keyInput.value = "";
  } catch (error) {
    auth.key = "";
    showLogin(error.status === 401 ? "The server did not accept this key." : error.message);
  } finally {
    button.disabled = false;
  }
});

byTestId(document, "logout").addEventListener("click", () => {
  auth.key = "";
  location.hash = "";
  location.reload(); // a clean page: nothing of this creator's stays on screen
});

// A key revoked while the page is open: back to the login (the login form handles its own 401s).
events.addEventListener("unauthorized", () => {
  if (!screen("login").hidden) return;
  auth.key = "";
  showLogin("Your key was not accepted; sign in again.");
});

tabs.addEventListener("click", (event) => {
  const tab = event.target.closest("[data-tab]")?.dataset.tab;
  if (tab) activate(tab);
});
// Arrow keys move between tabs, as the ARIA tabs pattern expects.
tabs.addEventListener("keydown", (event) => {
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  const current = TABS.indexOf(document.body.dataset.tab);
  activate(TABS[(current + step + TABS.length) % TABS.length], { focus: true });
});
on("navigate", ({ tab }) => activate(tab));

window.addEventListener("unhandledrejection", (event) => {
  // every action catches its own errors; this is the net for anything missed, shown instead of lost
  toast(event.reason?.message || String(event.reason), "error");
});

boot();
