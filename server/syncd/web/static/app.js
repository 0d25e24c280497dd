// syncd web console: plain browser JavaScript, no build step, no third-party code.
// State comes from the daemon's event stream (api/v1/events); nothing here polls.
"use strict";

(() => {
  const TOKEN_KEY = "syncd.console.token";
  const LOG_KEEP = 2000; // lines kept in the log pane

  const state = {
    session: null,
    jobs: new Map(), // name -> job view, plus receivedAt (performance.now()) of its current run
    order: [],
    rows: new Map(), // name -> {tr, cells}; rows are found by job name, never by a built id
    selected: null,
    logRun: null,
    logAbort: null,
    historyTimer: null,
    clockBase: null, // [server time ms, performance.now()] for the UTC clock
  };

  const $ = (id) => document.getElementById(id);
  const { el, wait, utc, duration, words, failure, readEvents, logText } = window.syncdLib;

  // --- HTTP: the bearer token when one was given; else the CSRF token on every write -------

  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  function headers(extra) {
    const result = Object.assign({ Accept: "application/json" }, extra || {});
    if (token()) result.Authorization = `Bearer ${token()}`;
    return result;
  }
  async function api(method, path, body, retried) {
    const init = { method, headers: headers(), cache: "no-store", credentials: "same-origin" };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      if (!token() && state.session) init.headers["X-CSRF-Token"] = state.session.csrfToken;
      init.body = JSON.stringify(body || {});
    }
    const response = await fetch(path, init);
    if (response.ok) {
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
    const err = await failure(response);
    // A restarted daemon has a new CSRF token: fetch it once and try again.
    if (!retried && err.status === 403 && /CSRF/.test(err.message)) {
      await loadSession();
      return api(method, path, body, true);
    }
    throw err;
  }

  // --- messages and connection state ------------------------------------------------------

  let messageTimer = null;
  function say(text, isError) {
    const box = $("message");
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
    box.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { box.hidden = true; }, isError ? 15000 : 6000);
  }
  function setConn(text, kind) {
    const conn = $("conn");
    conn.textContent = text;
    conn.className = `conn conn-${kind}`;
  }

  // --- session and token ------------------------------------------------------------------

  async function loadSession() {
    state.session = await api("GET", "api/v1/session");
    const s = state.session;
    $("profile").textContent = s.profile;
    $("version").textContent = s.version;
    state.clockBase = [Date.parse(s.now), performance.now()];
    $("run-all").disabled = !s.canRun;
    $("run-all").title = s.canRun ? "" : "Running jobs needs an operator token";
    $("banner").hidden = !s.draining;
    $("banner").textContent = s.draining ? "The daemon is shutting down: it starts no new runs." : "";
    for (const name of state.rows.keys()) updateRow(name); // canRun may have changed
    tick();
    return s;
  }

  let tokenWaiter = null;
  function askForToken(why) {
    $("token-why").textContent = why || "Bearer token";
    $("token-form").hidden = false;
    $("token-input").focus();
    return new Promise((resolve) => { tokenWaiter = resolve; });
  }
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    $("token-form").hidden = true;
    if (tokenWaiter) { tokenWaiter(); tokenWaiter = null; } else reconnect();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-form").hidden = true;
    reconnect();
  });
  $("token-toggle").addEventListener("click", () => {
    $("token-form").hidden = !$("token-form").hidden;
    if (!$("token-form").hidden) $("token-input").focus();
  });

  // --- the job table ----------------------------------------------------------------------

  function upsert(job) {
    job.receivedAt = performance.now();
    state.jobs.set(job.name, job);
    if (!state.order.includes(job.name)) state.order.push(job.name);
  }

  function buildRow(name) {
    const cells = {
      name: el("button", { type: "button", class: "link", dataset: { action: "select" }, onclick: () => select(name) }, name),
      key: el("span", { class: "sub" }),
      state: el("span", { class: "badge", dataset: { field: "state" } }),
      reason: el("span", { class: "sub reason", dataset: { field: "reason" } }),
      health: el("span", { class: "badge", dataset: { field: "health" } }),
      progressText: el("span", { class: "sub", dataset: { field: "progress" } }),
      bar: el("div", { class: "bar" }, el("span")),
      outcome: el("span", { class: "badge", dataset: { field: "outcome" } }),
      lastWhen: el("span", { class: "sub when" }),
      lastError: el("span", { class: "error-text" }),
      next: el("span", { class: "when", dataset: { field: "next" } }),
      run: el("button", { type: "button", dataset: { action: "run" }, onclick: () => runFromRow(name) }, "Run"),
      cancel: el("button", { type: "button", class: "danger", dataset: { action: "cancel" }, onclick: () => cancelJob(name) }, "Cancel"),
    };
    cells.progress = el("div", { class: "progress" }, cells.bar, cells.progressText);
    cells.progressCell = el("td", { "data-label": "Progress" }, cells.progress);
    const tr = el("tr", { dataset: { job: name } },
      el("td", { class: "name" }, el("div", {}, cells.name, cells.key)),
      el("td", { "data-label": "State" }, el("div", {}, cells.state, cells.health, cells.reason)),
      cells.progressCell,
      el("td", { "data-label": "Last run" }, el("div", {}, cells.outcome, cells.lastWhen, cells.lastError)),
      el("td", { "data-label": "Next run" }, cells.next),
      el("td", { class: "actions" }, cells.run, cells.cancel));
    return { tr, cells };
  }

  function renderTable() {
    const body = $("job-rows");
    const visible = state.order.filter((n) => state.jobs.has(n) && !state.jobs.get(n).hidden);
    for (const [name, row] of state.rows) {
      if (!visible.includes(name)) { row.tr.remove(); state.rows.delete(name); }
    }
    for (const name of visible) {
      if (!state.rows.has(name)) state.rows.set(name, buildRow(name));
      body.append(state.rows.get(name).tr); // append moves an existing row into order
      updateRow(name);
    }
    $("no-jobs").hidden = visible.length > 0;
  }

  function elapsedOf(job) {
    const run = job.current;
    if (!run || run.durationSeconds === null) return null;
    return run.durationSeconds + (performance.now() - job.receivedAt) / 1000;
  }

  function updateRow(name) {
    const row = state.rows.get(name);
    const job = state.jobs.get(name);
    if (!row || !job) return; // a job hidden on this profile, or not known yet
    const c = row.cells;
    const canRun = Boolean(state.session && state.session.canRun);
    const busy = job.state === "running" || job.state === "cancelling";
    row.tr.classList.toggle("selected", state.selected === name);
    c.name.title = job.description;
    c.key.textContent = job.jobKey && job.jobKey !== name ? job.jobKey : "";
    c.state.textContent = words(job.state);
    c.state.className = `badge ${job.state}`;
    c.state.title = job.disabledReason || "";
    // Why a job cannot run belongs in plain sight, not only in a tooltip.
    c.reason.textContent = job.state === "disabled" ? job.disabledReason || "" : "";
    c.reason.hidden = !c.reason.textContent;
    // Failing and stuck are the daemon's verdict (job.health); the page only shows it.
    c.health.hidden = job.health === "ok";
    c.health.textContent = words(job.health);
    c.health.className = `badge health-${job.health}`;
    c.health.title = job.healthReason || "";

    const run = job.current;
    c.progress.hidden = !run;
    c.progressCell.classList.toggle("empty", !run);
    if (run) {
      const total = run.progressTotal;
      const known = total > 0;
      c.bar.classList.toggle("unknown", !known);
      c.bar.firstChild.style.width = known ? `${Math.min(100, (100 * run.progressDone) / total)}%` : "";
      const counts = known ? `${run.progressDone} / ${total}` : run.rowsRead ? `${run.rowsRead} rows` : "started";
      const where = job.replica ? ` · on ${job.replica}` : ""; // cluster mode: which replica
      c.progressText.textContent = `${counts} · ${duration(elapsedOf(job))}${where}`;
      c.progressText.title = `started ${utc(run.startedAt, true)} by ${run.actor} (${run.trigger})`;
    }

    const last = job.last;
    c.outcome.hidden = !last;
    if (last) {
      c.outcome.textContent = words(last.outcome);
      c.outcome.className = `badge ${last.outcome}`;
      c.lastWhen.textContent = `${utc(last.endedAt || last.startedAt)} · ${duration(last.durationSeconds)}`;
      c.lastError.textContent = last.outcome !== "success" && last.errorMessage ? last.errorMessage : "";
      c.lastError.title = last.errorType || "";
    } else {
      c.lastWhen.textContent = "never run";
      c.lastError.textContent = "";
    }
    c.next.textContent = job.nextRunAt ? utc(job.nextRunAt) : job.schedule === "none" ? "not scheduled" : "—";

    c.run.disabled = !canRun || busy || job.state === "disabled";
    c.run.title = !canRun ? "Running jobs needs an operator token" : busy ? "Running now" : job.disabledReason || "Run now";
    c.cancel.disabled = !canRun || job.state !== "running";
    c.cancel.title = job.state === "running" ? "Ask the run to stop" : "Nothing to cancel";
  }

  function tick() {
    if (state.clockBase) {
      const [server, at] = state.clockBase;
      const now = new Date(server + performance.now() - at).toISOString();
      $("clock").textContent = utc(now, true);
    }
    for (const [name, job] of state.jobs) {
      if (job.current) updateRow(name);
    }
  }

  // --- actions ----------------------------------------------------------------------------

  async function runJob(name, args, withDependants) {
    const row = state.rows.get(name);
    if (row) row.cells.run.disabled = true; // until the stream says it runs
    try {
      const body = { arguments: args };
      if (withDependants) body.withDependants = true;
      const reply = await api("POST", `api/v1/jobs/${encodeURIComponent(name)}/run`, body);
      const then = reply.then && reply.then.length ? `; then ${reply.then.join(" → ")}` : "";
      say(`${name}: started run ${reply.run.runId}${then}`);
    } catch (err) {
      say(`${name}: ${err.message}`, true);
      updateRow(name);
    }
  }

  function runFromRow(name) {
    const job = state.jobs.get(name);
    if (job && job.parameters.some((p) => p.required)) {
      select(name); // a required argument: the form in the details asks for it
      const first = $("args-fields").querySelector("input");
      if (first) first.focus();
      return;
    }
    runJob(name, {});
  }

  async function cancelJob(name) {
    if (!window.confirm(`Cancel the run of ${name} under way?`)) return;
    try {
      const reply = await api("POST", `api/v1/jobs/${encodeURIComponent(name)}/cancel`);
      say(`${name}: cancelling run ${reply.run.runId}`);
    } catch (err) {
      say(`${name}: ${err.message}`, true);
    }
  }

  $("run-all").addEventListener("click", async () => {
    if (!window.confirm("Run every enabled job now, one after another in dependency order?")) return;
    try {
      const reply = await api("POST", "api/v1/run-all");
      say(`Running all jobs: ${reply.jobs.join(" → ")}`);
    } catch (err) {
      say(`Run all: ${err.message}`, true);
    }
  });

  // --- the selected job: details, history, re-run advice, log ----------------------------

  function select(name) {
    const changed = state.selected !== name;
    state.selected = name;
    $("detail").hidden = false;
    for (const row of state.rows.keys()) updateRow(row);
    renderDetail(changed);
    loadHistory();
    if (changed) {
      $("log-follow").checked = true;
      const job = state.jobs.get(name);
      const run = job && (job.current || job.last);
      if (run) followLog(run.runId); else clearLog("no runs yet");
      $("detail").scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  $("detail-close").addEventListener("click", () => {
    state.selected = null;
    $("detail").hidden = true;
    stopLog();
    for (const row of state.rows.keys()) updateRow(row);
  });

  function fact(list, term, value) {
    list.append(el("dt", {}, term), el("dd", {}, value));
  }

  function renderDetail(rebuildForm) {
    const job = state.jobs.get(state.selected);
    if (!job) return;
    $("detail-name").textContent = job.name;
    $("detail-description").textContent = job.description;
    const facts = $("detail-facts");
    facts.replaceChildren();
    if (job.jobKey) fact(facts, "Old REST key", job.jobKey);
    if (job.aliases && job.aliases.length) fact(facts, "Also answers to", job.aliases.join(", "));
    fact(facts, "Next run", job.nextRunAt ? utc(job.nextRunAt) : "not scheduled");
    fact(facts, "Timetable from", job.schedule);
    fact(facts, "Runs after", job.after.length ? job.after.join(", ") : "nothing");
    fact(facts, "Last success", utc(job.lastSuccessAt));
    if (job.disabledReason) fact(facts, "Disabled", job.disabledReason);

    const canRun = Boolean(state.session && state.session.canRun);
    const busy = job.state === "running" || job.state === "cancelling";
    const disabled = job.state === "disabled";
    const why = disabled ? job.disabledReason || "This job is disabled" : busy ? "Running now" : "";
    const rerun = job.needsRerun && job.last;
    $("rerun").hidden = !rerun;
    if (rerun) {
      const last = job.last;
      const reason = last.errorMessage ? ` (${last.errorMessage})` : "";
      const then = job.dependants.length
        ? `Once the cause is fixed, re-run ${job.name}, then, in this order: ${job.dependants.join(" → ")}.`
        : `Once the cause is fixed, re-run ${job.name}; no other job depends on it.`;
      $("rerun-text").textContent = `The last run ended ${words(last.outcome)} at ${utc(last.endedAt)}${reason}. ${then}`;
      $("rerun-button").hidden = job.dependants.length === 0;
      $("rerun-button").disabled = !canRun || busy || disabled;
      $("rerun-button").title = why;
    }

    const form = $("args-form");
    form.hidden = job.parameters.length === 0;
    if (rebuildForm) {
      const fields = $("args-fields");
      fields.replaceChildren();
      for (const p of job.parameters) {
        const id = `arg-${p.name}`;
        const hint = [p.type, p.required ? "required" : p.default !== null && p.default !== "" ? `default ${p.default}` : "optional"].join(", ");
        fields.append(el("div", { class: "field" },
          el("label", { for: id }, p.name),
          el("input", { id, type: "text", name: p.name, autocomplete: "off", placeholder: hint }),
          p.description ? el("span", { class: "hint" }, p.description) : null));
      }
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = !canRun || busy || disabled;
    submit.title = !canRun ? "Running jobs needs an operator token" : why;
  }

  $("rerun-button").addEventListener("click", () => {
    if (state.selected) runJob(state.selected, {}, true);
  });
  $("args-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const args = {};
    for (const input of $("args-fields").querySelectorAll("input")) {
      if (input.value !== "") args[input.name] = input.value;
    }
    if (state.selected) runJob(state.selected, args);
  });

  async function loadHistory() {
    const name = state.selected;
    if (!name) return;
    try {
      const reply = await api("GET", `api/v1/jobs/${encodeURIComponent(name)}/runs?limit=20`);
      if (state.selected === name) renderHistory(reply.runs);
    } catch (err) {
      say(`History of ${name}: ${err.message}`, true);
    }
  }
  function loadHistorySoon() {
    clearTimeout(state.historyTimer); // a burst of events makes one request
    state.historyTimer = setTimeout(loadHistory, 250);
  }

  // A run's arguments as name=value; parameters left at their default (null) are not shown.
  function argumentsText(args) {
    const given = Object.entries(args || {}).filter(([, v]) => v !== null && v !== "");
    if (!given.length) return { text: "—", title: "no arguments: the job's defaults" };
    const text = given.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
    return { text, title: text };
  }

  function renderHistory(runs) {
    const body = $("history-rows");
    body.replaceChildren();
    $("no-history").hidden = runs.length > 0;
    for (const run of runs) {
      const outcome = run.outcome || run.state;
      const rows = run.rowsRead || run.rowsWritten ? `${run.rowsRead} read / ${run.rowsWritten} written` : "—";
      const error = run.errorMessage ? `${run.errorType ? run.errorType + ": " : ""}${run.errorMessage}` : "";
      const args = argumentsText(run.arguments);
      const selected = state.logRun === run.runId ? " selected" : "";
      body.append(el("tr", { dataset: { run: run.runId }, class: (error ? "has-error" : "") + selected },
        el("td", { class: "when" }, utc(run.startedAt, true)),
        el("td", { class: "wide" }, run.trigger, el("span", { class: "sub" }, run.actor)),
        el("td", { class: "args-cell", dataset: { field: "arguments" }, title: args.title }, args.text),
        el("td", {}, el("span", { class: `badge ${outcome}` }, words(outcome))),
        el("td", {}, duration(run.durationSeconds)),
        el("td", { class: "wide" }, rows),
        el("td", {}, el("button", {
          type: "button", class: "quiet", dataset: { action: "log" },
          onclick: () => { $("log-follow").checked = false; followLog(run.runId); },
        }, "Log"))));
      if (error) {
        body.append(el("tr", { class: `error-row${selected}`, dataset: { run: run.runId } },
          el("td", { colspan: "7" }, el("span", { class: "error-text" }, error))));
      }
    }
  }

  function stopLog() {
    if (state.logAbort) state.logAbort.abort();
    state.logAbort = null;
    state.logRun = null;
  }
  function clearLog(note) {
    stopLog();
    $("log").replaceChildren(el("span", { class: "note" }, note));
    $("log-title").textContent = "";
  }

  async function followLog(runId) {
    stopLog();
    const controller = new AbortController();
    state.logAbort = controller;
    state.logRun = runId;
    const pane = $("log");
    pane.replaceChildren();
    $("log-title").textContent = `run ${runId} · following`;
    for (const tr of $("history-rows").children) tr.classList.toggle("selected", tr.dataset.run === runId);
    const append = (node) => {
      const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
      pane.append(node);
      while (pane.childNodes.length > LOG_KEEP) pane.firstChild.remove();
      if (atBottom) pane.scrollTop = pane.scrollHeight;
    };
    try {
      await readEvents(`api/v1/runs/${encodeURIComponent(runId)}/logs?lines=500`, headers(), (event, data) => {
        if (event === "line") {
          const { text, level } = logText(data);
          append(el("div", { class: `lvl-${level}` }, text));
        } else if (event === "lost") {
          append(el("div", { class: "note" }, `… ${JSON.parse(data).lines} lines were dropped`));
        } else if (event === "end") {
          const run = JSON.parse(data);
          $("log-title").textContent = `run ${runId} · ${words(run.outcome || run.state)}`;
          if (!pane.childNodes.length) append(el("div", { class: "note" }, "No log lines of this run are in the daemon's memory."));
        }
      }, controller.signal);
    } catch (err) {
      if (err.name !== "AbortError" && state.logRun === runId) {
        append(el("div", { class: "note" }, `log stream ended: ${err.message}`));
      }
    }
  }

  // --- the event stream -------------------------------------------------------------------

  function onEvent(kind, data) {
    const body = JSON.parse(data);
    if (kind === "snapshot") {
      state.order = [];
      state.jobs.clear();
      body.jobs.forEach(upsert);
      state.clockBase = [Date.parse(body.now), performance.now()];
      $("banner").hidden = !body.draining;
      renderTable();
      tick();
      if (state.selected && state.jobs.has(state.selected)) { renderDetail(false); loadHistorySoon(); }
    } else if (kind === "job") {
      const isNew = !state.rows.has(body.job.name);
      upsert(body.job);
      if (isNew) renderTable(); else updateRow(body.job.name);
      onJobEvent(body.job, body.event);
    } else if (kind === "progress") {
      const job = state.jobs.get(body.job);
      if (job) {
        job.current = body.current;
        job.receivedAt = performance.now();
        updateRow(body.job);
      }
    } else if (kind === "daemon") {
      $("banner").textContent = "The daemon is shutting down: it starts no new runs.";
      $("banner").hidden = !body.draining;
    }
  }

  // --- replication: the last SynchronizeJobData table (read again when a sync run ends) ---------

  async function loadReplication() {
    let view;
    try {
      view = await api("GET", "api/v1/replication");
    } catch (err) {
      return; // the table is extra: the jobs above still work
    }
    $("replication").hidden = !view.enabled;
    if (!view.enabled) return;
    const status = view.lastStatus === null ? "no cycle has run here yet" : `last cycle: status ${view.lastStatus}`;
    $("replication-summary").textContent =
      `Repository ${view.repository} (cluster ${view.clusterId || "—"}) · ${view.stableWatermark} changes logged · ${status}`;
    const body = $("replication-rows");
    body.replaceChildren();
    for (const row of view.lastSync) {
      body.append(el("tr", { class: row.error ? "has-error" : "" },
        el("td", {}, row.child_repository, el("span", { class: "sub" }, row.url)),
        el("td", {}, el("span", { class: `badge ${row.result === "ok" ? "success" : row.result}` }, row.result)),
        el("td", { class: "when" }, row.last_sync_time ? utc(row.last_sync_time, true) : "—"),
        el("td", {}, String(row.pulled)),
        el("td", {}, String(row.pushed)),
        el("td", { class: "wide" }, String(row.conflicts)),
        el("td", {}, el("span", { class: "error-text" }, row.error || row.warning || ""))));
    }
  }

  function onJobEvent(job, event) {
    if (event.kind === "run.finished" && job.name === "SynchronizeJobData") loadReplication();
    if (event.kind === "run.finished" && job.health !== "ok") {
      say(`${job.name} is ${words(job.health)}: ${job.healthReason}`, true);
    }
    if (state.selected !== job.name) return;
    renderDetail(false);
    loadHistorySoon();
    if (event.kind === "run.started" && $("log-follow").checked) followLog(event.runId);
  }

  let streamAbort = null;
  async function connect() {
    let delay = 1000;
    for (;;) {
      streamAbort = new AbortController();
      try {
        await loadSession();
        loadReplication();
        setConn("live", "live");
        delay = 1000;
        await readEvents("api/v1/events", headers(), onEvent, streamAbort.signal);
        setConn("reconnecting…", "wait"); // the daemon closed the stream (restart)
      } catch (err) {
        if (err.status === 401) {
          setConn("needs a token", "down");
          await askForToken(err.message);
          continue;
        }
        if (err.name !== "AbortError") setConn("disconnected — retrying", "down");
      }
      await wait(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }
  function reconnect() {
    if (streamAbort) streamAbort.abort(); // connect() notices and starts over
  }

  setInterval(tick, 1000);
  connect();
})();
