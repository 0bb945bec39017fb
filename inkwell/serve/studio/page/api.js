// The studio's JSON API (docs/studio.md): JSON calls, the Server-Sent Events of writing, and downloads,
// all with the API key kept in sessionStorage (this tab only; closing it signs out).

const KEY = "inkwell.studio.key";
const BASE = "/studio/api";

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** Fired (on `events`) when the server answers 401: the page goes back to the login. */
export const events = new EventTarget();

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `The server answered ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.param = error?.param ?? null;
    this.code = error?.code ?? null;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v != null && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function send(method, path, { body, params, signal } = {}) {
  const headers = {};
  if (auth.key) headers.Authorization = `Bearer ${auth.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(BASE + path + query(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: `The server cannot be reached (${error.message}).` });
  }
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      // not JSON (a proxy's page): the status says enough
    }
    const error = new ApiError(response.status, payload?.error);
    if (response.status === 401) events.dispatchEvent(new CustomEvent("unauthorized", { detail: error }));
    throw error;
  }
  return response;
}

export const get = async (path, params) => (await send("GET", path, { params })).json();
export const post = async (path, body = {}) => (await send("POST", path, { body })).json();
export const put = async (path, body = {}) => (await send("PUT", path, { body })).json();

/**
 * POST a writing request and call `onEvent` for each `data: {json}` event as it arrives (piece, delta,
 * variant, done). An `error` event (a failure after the stream started) is thrown as an ApiError.
 * fetch + ReadableStream rather than EventSource: EventSource can neither POST nor send the key.
 */
export async function stream(path, body, onEvent, signal) {
  const response = await send("POST", path, { body: { ...body, stream: true }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (!line.startsWith("data:")) continue; // blank separators and comments
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.type === "error") throw new ApiError(0, event.error);
      onEvent(event);
    }
  }
}

/** GET a file (with the key, which a plain link cannot send) and save it through a Blob URL. */
export async function download(path, params, fallbackName) {
  const response = await send("GET", path, { params });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000); // after the browser has taken the file
  return { name, rows: Number(response.headers.get("X-Inkwell-Rows") ?? NaN), size: blob.size };
}
