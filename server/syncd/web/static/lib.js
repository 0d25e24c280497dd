// Helpers of the syncd web console: building DOM nodes, UTC formatting, reading
// Server-Sent Events over fetch. Plain browser JavaScript, no build step.
"use strict";

window.syncdLib = (() => {
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  };
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- formatting (UTC only, said explicitly) ---------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  function utc(iso, seconds) {
    if (!iso) return "—";
    const d = new Date(iso);
    const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` + (seconds ? `:${pad(d.getUTCSeconds())}` : "");
    return `${date} ${time} UTC`;
  }
  function duration(total) {
    if (total === null || total === undefined) return "—";
    if (total <= 0) return "0 s";
    // A quick run is not "0.0 s": under a tenth of a second it reads in milliseconds.
    if (total < 0.1) return `${Math.max(1, Math.round(total * 1000))} ms`;
    if (total < 10) return `${total.toFixed(1)} s`;
    const s = Math.floor(total);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h) return `${h} h ${pad(m)} min`;
    if (m) return `${m} min ${pad(s % 60)} s`;
    return `${s} s`;
  }
  const words = (value) => String(value || "").replaceAll("_", " ");

  // --- HTTP -------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  async function failure(response) {
    let message = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON: keep the status text */ }
    return new HttpError(response.status, message);
  }
  // Server-Sent Events over fetch (EventSource cannot send a bearer token).
  async function readEvents(path, headers, onEvent, signal) {
    const response = await fetch(path, {
      headers: Object.assign({}, headers, { Accept: "text/event-stream" }), cache: "no-store", signal,
    });
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
        if (data.length) onEvent(event, data.join("\n"));
      }
    }
  }

  // One JSON log line as a line of text: time, level, event, then the other fields.
  function logText(raw) {
    let entry;
    try { entry = JSON.parse(raw); } catch (_) { return { text: raw, level: "info" }; }
    const time = entry.timestamp ? entry.timestamp.slice(11, 19) : "";
    const skip = new Set(["timestamp", "level", "event", "logger", "job", "run_id", "trigger"]);
    const extra = Object.entries(entry)
      .filter(([key, value]) => !skip.has(key) && value !== null)
      .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
    const level = entry.level || "info";
    return { text: [time, level.toUpperCase().padEnd(7), entry.event, ...extra].join(" "), level };
  }

  return { el, wait, utc, duration, words, HttpError, failure, readEvents, logText };
})();
