// The /v1 API as the console calls it: the key from sessionStorage on every request, errors as
// ApiError carrying the API's {"error": code, "detail": ...} body.
const KEY = "gedrag.apiKey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

/** ``detail`` is the server's English text; errors.js says it in the page's language. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail || code || `HTTP ${status}`;
  }
}

// Called when any request answers 401: the key was revoked or mistyped.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${session.key}`, ...extra };
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  const error = new ApiError(response.status, body.error, body.detail);
  if (response.status === 401) onUnauthorized(error);
  return error;
}

/** fetch, with "the server does not answer" as an ApiError like the others (an aborted
 * request stays an AbortError). */
async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network");
  }
}

/** JSON in and out; ``raw: true`` returns the Response (downloads, HTML). */
export async function api(path, { method = "GET", json, raw = false, signal } = {}) {
  const headers = authHeaders(json === undefined ? {} : { "Content-Type": "application/json" });
  const response = await send(path, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** A multipart upload with progress (fetch cannot report upload progress; XHR can). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${session.key}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
        return;
      }
      const error = new ApiError(xhr.status, body.error, body.detail);
      if (xhr.status === 401) onUnauthorized(error);
      reject(error);
    };
    xhr.onerror = () => reject(new ApiError(0, "network"));
    xhr.send(form);
  });
}

/** POST ``json`` and yield the server-sent events as {event, data} (data parsed as JSON). */
export async function* events(path, json, signal) {
  const response = await send(path, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(json),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

/** Fetch a file with the key and hand it to the browser as a download. */
export async function download(path, fallbackName) {
  const response = await api(path, { raw: true });
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename\*=utf-8''([^;]+)|filename="?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1] || match[2]) : fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
