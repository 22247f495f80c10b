// The Spooled dashboard: one page, hash routes (#/queues, #/jobs?…, #/jobs/<id>, #/workers, #/schedules[/<id>],
// #/workflows[/<id>], #/dlq), talking only to the public REST API (api.js) and refreshed by the realtime stream
// (live.js). No build step.

import {
  html, render, useCallback, useContext, useEffect, useMemo, useRef, useState, createContext,
} from "./vendor/htm-preact-3.1.1.mjs";
import { del, get, post, prettyJson, request, session, signIn, signOut } from "./api.js";
import * as live from "./live.js";

const STATES = ["pending", "scheduled", "processing", "completed", "failed", "deadletter", "cancelled"];
const RETRYABLE = new Set(["failed", "deadletter", "cancelled"]);
const CANCELLABLE = new Set(["pending", "scheduled", "processing"]);
const FINISHED = new Set(["completed", "failed", "deadletter"]);
const JOB_FRAMES = new Set(["JobCreated", "JobStatusChange", "JobCompleted", "JobFailed"]);
const WORKER_FRAMES = new Set(["WorkerRegistered", "WorkerDeregistered", "WorkerHeartbeat"]);

const Ctx = createContext(null);
const enc = encodeURIComponent;

// -- routing ----------------------------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/queues";
  const [path, qs] = raw.split("?", 2);
  return { path: path || "/queues", params: new URLSearchParams(qs || "") };
}

export function go(path, params) {
  const qs = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString() : "";
  location.hash = "#" + path + (qs ? "?" + qs : "");
}

function href(path, params) {
  const qs = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString() : "";
  return "#" + path + (qs ? "?" + qs : "");
}

// -- small hooks --------------------------------------------------------------------------------------------

// Calls the latest `fn` for every realtime frame while the component is mounted.
function useLive(fn) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => live.onFrame((frame) => ref.current(frame)), []);
}

// debounce(key, ms, fn): runs fn once, `ms` after the last call with that key (a burst of frames, one reload).
function useDebounce() {
  const timers = useRef(new Map());
  useEffect(() => () => { for (const t of timers.current.values()) clearTimeout(t); }, []);
  return useCallback((key, ms, fn) => {
    clearTimeout(timers.current.get(key));
    timers.current.set(key, setTimeout(() => { timers.current.delete(key); fn(); }, ms));
  }, []);
}

// { data, error, reload, setData }: `load` runs on mount and whenever `deps` change. `reload` always runs the
// latest `load`: a reload scheduled earlier (a debounced live update) loads what the page asks for now, not what
// it asked for when the frame came (a stale filter's answer, newest by sequence, would replace the current one).
function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null });
  const seq = useRef(0);
  const latest = useRef(load);
  latest.current = load;
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const data = await latest.current();
      if (mine === seq.current) setState({ data, error: null });
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ data: s.data, error }));
    }
  }, []);
  useEffect(() => { reload(); }, deps);
  const setData = useCallback((fn) => setState((s) => ({ ...s, data: fn(s.data) })), []);
  return { ...state, reload, setData };
}

// -- shared pieces --------------------------------------------------------------------------------------------

function Alert({ error }) {
  if (!error) return null;
  return html`<div class="alert error" role="alert">${error.message || String(error)}</div>`;
}

function Badge({ status }) {
  return html`<span class=${"badge s-" + status} data-status=${status}>${status}</span>`;
}

function When({ ts }) {
  if (!ts) return html`<span class="muted">–</span>`;
  const d = new Date(ts);
  return html`<time datetime=${ts} title=${d.toISOString()}>${ago(d)}</time>`;
}

function ago(d) {
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(secs);
  const unit = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return secs >= 0 ? `${unit[0]} ${unit[1]} ago` : `in ${unit[0]} ${unit[1]}`;
}

// Ids are UUIDv7 (time first): the tail tells jobs apart, the full id is in the title and on the job page.
function short(id) {
  return "…" + String(id).slice(-8);
}

// A button that runs an action, shows it is busy, and reports a failure as the server's message.
function Action({ label, title, run, kind }) {
  const { notify } = useContext(Ctx);
  const [busy, setBusy] = useState(false);
  const click = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    try {
      const message = await run();
      if (message) notify({ kind: "ok", text: message });
    } catch (e) {
      notify({ kind: "error", text: e.message });
    } finally {
      setBusy(false);
    }
  };
  return html`<button class=${"btn " + (kind || "")} disabled=${busy} title=${title} onClick=${click}>${label}</button>`;
}

function QueueSelect({ queues, value, onChange, label = "Queue" }) {
  return html`<label>${label}
    <select name="queue" value=${value} onChange=${(e) => onChange(e.target.value)}>
      <option value="">any queue</option>
      ${(queues || []).map((q) => html`<option value=${q.name}>${q.name}</option>`)}
    </select></label>`;
}

function useQueueNames() {
  return useLoad(() => get("/queues"), []).data;
}

// -- Queues ---------------------------------------------------------------------------------------------------

function QueuesPage() {
  const { canAct } = useContext(Ctx);
  const debounce = useDebounce();
  const queues = useLoad(async () => {
    const list = await get("/queues");
    return Promise.all(list.map(async (q) => ({ ...q, stats: await get(`/queues/${enc(q.name)}/stats`) })));
  }, []);
  const totals = useLoad(() => get("/jobs/stats"), []);
  // null until the queues are in: the chart's first data is the real one, not an empty hour
  const names = queues.data ? queues.data.map((q) => q.name).join("\n") : null;
  const throughput = useLoad(async () => {
    if (names === null) return null;
    const list = names ? names.split("\n") : [];
    return sumSeries(await Promise.all(list.map((n) => get(`/queues/${enc(n)}/throughput`, { minutes: 60 }))));
  }, [names]);

  const refreshQueue = async (name) => {
    try {
      const q = await get(`/queues/${enc(name)}`);
      queues.setData((rows) => {
        const list = rows || [];
        return list.some((r) => r.name === name) ? list.map((r) => (r.name === name ? q : r))
          : [...list, q].sort((a, b) => a.name.localeCompare(b.name));
      });
    } catch (e) {
      if (e.status === 404) queues.setData((rows) => (rows || []).filter((r) => r.name !== name));
    }
  };

  useLive((frame) => {
    const name = frame.data?.queue_name;
    if (!JOB_FRAMES.has(frame.type) && frame.type !== "QueueStats") return;
    if (name) debounce("q:" + name, 250, () => refreshQueue(name));
    debounce("totals", 250, totals.reload);
    if (frame.type !== "JobCreated") debounce("throughput", 2000, throughput.reload);
  });

  const toggle = (q) => async () => {
    if (q.paused) {
      await post(`/queues/${enc(q.name)}/resume`);
      await refreshQueue(q.name);
      return `Queue ${q.name} resumed`;
    }
    await post(`/queues/${enc(q.name)}/pause`, {});
    await refreshQueue(q.name);
    return `Queue ${q.name} paused`;
  };

  return html`<section>
    <h1>Queues</h1>
    <${Alert} error=${queues.error || totals.error} />
    ${totals.data && html`<div class="cards">
      ${STATES.map((s) => html`<a class="card" href=${href("/jobs", { status: s })} data-total=${s}>
        <span class="n">${totals.data[s] ?? 0}</span><span class="label">${s}</span></a>`)}
    </div>`}
    <div class="panel">
      <h2>Throughput, last hour <span class="muted">(finished jobs per minute, all queues)</span></h2>
      <${Alert} error=${throughput.error} />
      <${Chart} series=${throughput.data} />
    </div>
    ${queues.data && !queues.data.length && html`<p class="empty">No queues yet: they appear with their first job.</p>`}
    ${queues.data && queues.data.length > 0 && html`<table class="grid" id="queues">
      <thead><tr><th>Queue</th><th>State</th><th class="num">Pending</th><th class="num">Scheduled</th>
        <th class="num">Processing</th><th class="num">Completed 24 h</th><th class="num">Failed 24 h</th>
        <th class="num">Dead letters</th><th class="num">Workers</th><th>Oldest pending</th>${canAct && html`<th></th>`}</tr></thead>
      <tbody>${queues.data.map((q) => html`<tr data-queue=${q.name} key=${q.name}>
        <td><a href=${href("/jobs", { queue: q.name })}>${q.name}</a></td>
        <td><span class=${"badge " + (q.paused ? "s-paused" : "s-active")} data-col="state">${q.paused ? "paused" : "active"}</span></td>
        <td class="num" data-col="pending">${q.stats.pending_jobs}</td>
        <td class="num" data-col="scheduled">${q.stats.scheduled_jobs}</td>
        <td class="num" data-col="processing">${q.stats.processing_jobs}</td>
        <td class="num" data-col="completed">${q.stats.completed_jobs_24h}</td>
        <td class="num" data-col="failed">${q.stats.failed_jobs_24h}</td>
        <td class="num" data-col="deadletter"><a href=${href("/dlq", { queue: q.name })}>${q.stats.deadletter_jobs}</a></td>
        <td class="num" data-col="workers">${q.stats.active_workers}</td>
        <td>${q.stats.max_job_age_seconds == null ? html`<span class="muted">–</span>` : `${q.stats.max_job_age_seconds} s`}</td>
        ${canAct && html`<td class="actions"><${Action} label=${q.paused ? "Resume" : "Pause"}
          title=${(q.paused ? "Resume" : "Pause") + " queue " + q.name} run=${toggle(q)} /></td>`}
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

// Sum per-queue throughput responses by bucket start: {x: [unix secs], completed: [], failed: []}.
function sumSeries(responses) {
  const byStart = new Map();
  for (const r of responses) {
    for (const b of r.buckets) {
      const t = Date.parse(b.start) / 1000;
      const cur = byStart.get(t) || { completed: 0, failed: 0 };
      cur.completed += b.completed;
      cur.failed += b.failed;
      byStart.set(t, cur);
    }
  }
  const x = [...byStart.keys()].sort((a, b) => a - b);
  return { x, completed: x.map((t) => byStart.get(t).completed), failed: x.map((t) => byStart.get(t).failed) };
}

function Chart({ series }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!series || !box.current || typeof uPlot === "undefined") return;
    const data = [series.x, series.completed, series.failed];
    if (plot.current) {
      plot.current.setData(data);
      return;
    }
    plot.current = new uPlot({
      width: Math.max(320, box.current.clientWidth), height: 180,
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }],
      series: [{}, { label: "completed", stroke: "#2e7d32", fill: "rgba(46,125,50,0.12)", width: 2, points: { show: false } },
        { label: "failed", stroke: "#c62828", fill: "rgba(198,40,40,0.10)", width: 2, points: { show: false } }],
    }, data, box.current);
  }, [series]);
  useEffect(() => () => plot.current?.destroy(), []);
  const total = series ? series.completed.reduce((a, b) => a + b, 0) + series.failed.reduce((a, b) => a + b, 0) : null;
  return html`<div class="chart" ref=${box} data-finished=${total ?? ""}></div>`;
}

// -- Jobs -------------------------------------------------------------------------------------------------------

function JobsPage({ params }) {
  const queues = useQueueNames();
  const debounce = useDebounce();
  const filter = {
    queue: params.get("queue") || "", status: params.get("status") || "",
    tag: params.get("tag") || "", q: params.get("q") || "",
  };
  const key = JSON.stringify(filter);
  const [form, setForm] = useState(filter);
  useEffect(() => setForm(filter), [key]);
  const [more, setMore] = useState({ cursor: null, paged: false });
  const jobs = useLoad(async () => {
    const { data, headers } = await listPage("/jobs", filter, null);
    setMore({ cursor: headers.get("X-Next-Cursor"), paged: false });
    return data;
  }, [key]);

  const loadMore = async () => {
    const { data, headers } = await listPage("/jobs", filter, more.cursor);
    jobs.setData((rows) => [...(rows || []), ...data]);
    setMore({ cursor: headers.get("X-Next-Cursor"), paged: true });
  };

  useLive((frame) => {
    if (!JOB_FRAMES.has(frame.type)) return;
    const id = frame.data?.job_id;
    if (id && (jobs.data || []).some((j) => j.id === id)) {
      debounce("job:" + id, 150, async () => {
        try {
          const fresh = await get(`/jobs/${enc(id)}`);
          jobs.setData((rows) => (rows || []).map((j) => (j.id === id ? fresh : j)));
        } catch { /* gone: the next search shows it */ }
      });
    } else if (frame.type === "JobCreated" && !more.paged && (!filter.queue || frame.data?.queue_name === filter.queue)) {
      debounce("list", 500, jobs.reload);
    }
  });

  const submit = (ev) => {
    ev.preventDefault();
    go("/jobs", form);
  };
  const set = (k) => (v) => setForm({ ...form, [k]: v });

  return html`<section>
    <h1>Jobs</h1>
    <form class="filters" onSubmit=${submit} role="search">
      <${QueueSelect} queues=${queues} value=${form.queue} onChange=${set("queue")} />
      <label>State
        <select name="status" value=${form.status} onChange=${(e) => set("status")(e.target.value)}>
          <option value="">any state</option>
          ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
      <label>Tag <input name="tag" placeholder="key or key:value" value=${form.tag}
        onInput=${(e) => set("tag")(e.target.value)} /></label>
      <label>Text <input name="q" type="search" placeholder="payload text or job id" value=${form.q}
        onInput=${(e) => set("q")(e.target.value)} /></label>
      <button class="btn primary" type="submit">Search</button>
    </form>
    <${Alert} error=${jobs.error} />
    ${jobs.data && html`<${JobTable} jobs=${jobs.data} />`}
    ${more.cursor && html`<p><${Action} label="Load more" run=${loadMore} /></p>`}
  </section>`;
}

function listPage(path, filter, cursor) {
  return request("GET", path, {
    params: { queue_name: filter.queue, status: filter.status, tag: filter.tag, q: filter.q, limit: 50, cursor },
  });
}

function JobTable({ jobs, extra }) {
  if (!jobs.length) return html`<p class="empty">No jobs match.</p>`;
  return html`<table class="grid" id="jobs">
    <thead><tr><th>Job</th><th>Queue</th><th>Type</th><th>State</th><th class="num">Priority</th><th class="num">Tries</th>
      <th>Last error</th><th>Created</th><th>Updated</th>${extra && html`<th></th>`}</tr></thead>
    <tbody>${jobs.map((j) => html`<tr data-job-id=${j.id} key=${j.id}>
      <td><a class="mono" href=${href("/jobs/" + j.id)}>${j.id}</a></td>
      <td>${j.queue_name}</td>
      <td>${j.job_type ?? (typeof j.payload?.job_type === "string" ? j.payload.job_type : "")}</td>
      <td><${Badge} status=${j.status} /></td>
      <td class="num">${j.priority}</td>
      <td class="num">${j.retry_count}/${j.max_retries}</td>
      <td class="clip" title=${j.last_error || ""}>${j.last_error || ""}</td>
      <td><${When} ts=${j.created_at} /></td>
      <td><${When} ts=${j.updated_at} /></td>
      ${extra && html`<td class="actions">${extra(j)}</td>`}
    </tr>`)}</tbody>
  </table>`;
}

// -- one job ------------------------------------------------------------------------------------------------------

function JobPage({ id }) {
  const { canAct } = useContext(Ctx);
  const debounce = useDebounce();
  const job = useLoad(async () => {
    const [j, history] = await Promise.all([get(`/jobs/${enc(id)}`), get(`/jobs/${enc(id)}/history`)]);
    return { ...j, history };
  }, [id]);
  useLive((frame) => {
    if (JOB_FRAMES.has(frame.type) && frame.data?.job_id === id) debounce("job", 150, job.reload);
  });
  const j = job.data;
  const retry = async () => { await post(`/jobs/${enc(id)}/retry`); await job.reload(); return "Job retried"; };
  const cancel = async () => { await del(`/jobs/${enc(id)}`); await job.reload(); return "Job cancelled"; };
  return html`<section>
    <p><a href=${href("/jobs", j ? { queue: j.queue_name } : null)}>← Jobs</a></p>
    <${Alert} error=${job.error} />
    ${j && html`<div id="job" data-job-id=${j.id} data-status=${j.status}>
      <h1>Job <span class="mono">${j.id}</span> <${Badge} status=${j.status} /></h1>
      ${canAct && html`<div class="toolbar">
        ${RETRYABLE.has(j.status) && html`<${Action} label="Retry" kind="primary" run=${retry} />`}
        ${CANCELLABLE.has(j.status) && html`<${Action} label="Cancel" kind="danger" run=${cancel} />`}
      </div>`}
      <dl class="facts">
        <dt>Queue</dt><dd><a href=${href("/jobs", { queue: j.queue_name })}>${j.queue_name}</a></dd>
        <dt>Priority</dt><dd>${j.priority}</dd>
        <dt>Tries</dt><dd>${j.retry_count} of ${j.max_retries} retries</dd>
        <dt>Timeout</dt><dd>${j.timeout_seconds} s</dd>
        <dt>Worker</dt><dd>${j.assigned_worker_id || html`<span class="muted">–</span>`}</dd>
        <dt>Lease expires</dt><dd><${When} ts=${j.lease_expires_at} /></dd>
        <dt>Created</dt><dd><${When} ts=${j.created_at} /></dd>
        <dt>Scheduled</dt><dd><${When} ts=${j.scheduled_at} /></dd>
        <dt>Started</dt><dd><${When} ts=${j.started_at} /></dd>
        <dt>Finished</dt><dd><${When} ts=${j.completed_at} /></dd>
        <dt>Workflow</dt><dd>${j.workflow_id ? html`<a class="mono" id="job-workflow" href=${href("/workflows/" + j.workflow_id)}>${j.workflow_id}</a>`
          : html`<span class="muted">–</span>`}</dd>
        <dt>Dependencies</dt><dd>${j.dependency_mode ? `${j.dependency_mode}, ${j.dependencies_met ? "met" : "waiting"}`
          : html`<span class="muted">–</span>`}</dd>
        <dt>Idempotency key</dt><dd>${j.idempotency_key || html`<span class="muted">–</span>`}</dd>
        <dt>Tags</dt><dd class="mono">${j.tags == null ? html`<span class="muted">–</span>` : prettyJson(j.tags)}</dd>
      </dl>
      <h2>Payload</h2><pre class="json" id="payload">${prettyJson(j.payload)}</pre>
      <h2>Result</h2>${j.result == null ? html`<p class="muted" id="result">none</p>`
        : html`<pre class="json" id="result">${prettyJson(j.result)}</pre>`}
      <h2>Error</h2>${j.last_error ? html`<pre class="error-text" id="last-error">${j.last_error}</pre>`
        : html`<p class="muted" id="last-error">none</p>`}
      <h2>History</h2>
      <table class="grid" id="history">
        <thead><tr><th>When</th><th>Event</th><th>From → to</th><th>Worker</th><th>Details</th></tr></thead>
        <tbody>${j.history.map((h) => html`<tr key=${h.id} data-event=${h.event_type}>
          <td><${When} ts=${h.created_at} /></td><td>${h.event_type}</td>
          <td>${h.old_status || "–"} → ${h.new_status || "–"}</td><td>${h.worker_id || ""}</td>
          <td class="mono clip">${h.details == null ? "" : JSON.stringify(h.details)}</td></tr>`)}</tbody>
      </table>
    </div>`}
  </section>`;
}

// -- Workers ------------------------------------------------------------------------------------------------------

function WorkersPage() {
  const debounce = useDebounce();
  const workers = useLoad(() => get("/workers"), []);
  const running = useLoad(() => get("/jobs", { status: "processing", limit: 100 }), []);
  useLive((frame) => {
    if (WORKER_FRAMES.has(frame.type)) debounce("workers", 300, workers.reload);
    if (JOB_FRAMES.has(frame.type)) {
      debounce("running", 300, running.reload);
      debounce("workers", 1000, workers.reload);
    }
  });
  const byWorker = useMemo(() => {
    const m = new Map();
    for (const j of running.data || []) {
      if (!m.has(j.assigned_worker_id)) m.set(j.assigned_worker_id, []);
      m.get(j.assigned_worker_id).push(j);
    }
    return m;
  }, [running.data]);
  return html`<section>
    <h1>Workers</h1>
    <${Alert} error=${workers.error || running.error} />
    ${workers.data && !workers.data.length && html`<p class="empty">No workers have registered.</p>`}
    ${workers.data && workers.data.length > 0 && html`<table class="grid" id="workers">
      <thead><tr><th>Worker</th><th>Host</th><th>Queues</th><th>Status</th><th class="num" title="as the worker last reported">Load</th>
        <th>Current jobs</th><th>Last heartbeat</th><th class="num">Processed</th><th class="num">Failed</th></tr></thead>
      <tbody>${workers.data.map((w) => html`<tr data-worker-id=${w.id} key=${w.id}>
        <td class="mono">${w.id}</td><td>${w.hostname}</td><td>${(w.queue_names || [w.queue_name]).join(", ")}</td>
        <td><${Badge} status=${w.status} /></td>
        <td class="num">${w.current_jobs}/${w.max_concurrency}</td>
        <td class="current">${(byWorker.get(w.id) || []).map((j) => html`<a class="mono chip" href=${href("/jobs/" + j.id)}
          title=${j.queue_name + " " + j.id}>${short(j.id)}</a> `)}</td>
        <td><${When} ts=${w.last_heartbeat} /></td>
        <td class="num">${w.jobs_processed}</td><td class="num">${w.jobs_failed}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

// -- Dead letters -------------------------------------------------------------------------------------------------

function DlqPage({ params }) {
  const { canAct } = useContext(Ctx);
  const queues = useQueueNames();
  const debounce = useDebounce();
  const queue = params.get("queue") || "";
  const [confirming, setConfirming] = useState(false);
  const [more, setMore] = useState(null);
  const jobs = useLoad(async () => {
    const { data, headers } = await listPage("/jobs/dlq", { queue }, null);
    setMore(headers.get("X-Next-Cursor"));
    return data;
  }, [queue]);
  useEffect(() => setConfirming(false), [queue]);
  useLive((frame) => {
    if (!JOB_FRAMES.has(frame.type)) return;
    const d = frame.data || {};
    if (queue && d.queue_name && d.queue_name !== queue) return;
    const touches = d.new_status === "deadletter" || d.old_status === "deadletter" || frame.type === "JobFailed"
      || (jobs.data || []).some((j) => j.id === d.job_id);
    if (touches) debounce("dlq", 300, jobs.reload);
  });
  const loadMore = async () => {
    const { data, headers } = await listPage("/jobs/dlq", { queue }, more);
    jobs.setData((rows) => [...(rows || []), ...data]);
    setMore(headers.get("X-Next-Cursor"));
  };
  const retryOne = (j) => async () => {
    await post(`/jobs/${enc(j.id)}/retry`);
    jobs.setData((rows) => (rows || []).filter((r) => r.id !== j.id));
    return `Job ${short(j.id)} retried`;
  };
  // POST /jobs/dlq/retry takes at most 1000 a call: repeat while calls come back full (bounded)
  const retryAll = async () => {
    setConfirming(false);
    let total = 0;
    for (let i = 0; i < 100; i++) {
      const r = await post("/jobs/dlq/retry", { queue_name: queue || undefined, limit: 1000 });
      total += r.retried_count;
      if (r.retried_count < 1000) break;
    }
    await jobs.reload();
    return `Retried ${total} dead-lettered job${total === 1 ? "" : "s"}${queue ? " in " + queue : ""}`;
  };
  const scope = queue ? `in queue ${queue}` : "in every queue";
  return html`<section>
    <h1>Dead letters</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <${QueueSelect} queues=${queues} value=${queue} onChange=${(v) => go("/dlq", { queue: v })} />
      ${canAct && !confirming && jobs.data && jobs.data.length > 0 && html`<button class="btn" type="button" id="retry-all"
        onClick=${() => setConfirming(true)}>Retry all ${scope}…</button>`}
      ${canAct && confirming && html`<span class="confirm">Retry every dead letter ${scope}?
        <${Action} label="Confirm retry" kind="primary" run=${retryAll} />
        <button class="btn" type="button" onClick=${() => setConfirming(false)}>Keep them</button></span>`}
    </form>
    <${Alert} error=${jobs.error} />
    ${jobs.data && html`<${JobTable} jobs=${jobs.data}
      extra=${canAct ? (j) => html`<${Action} label="Retry" title=${"Retry job " + j.id} run=${retryOne(j)} />` : null} />`}
    ${more && html`<p><${Action} label="Load more" run=${loadMore} /></p>`}
  </section>`;
}

// -- Schedules ------------------------------------------------------------------------------------------------

const PAGE = 50;

// Offset-paged lists (schedules, workflows): { data, error, reload, setData, more, loadMore }. `fetchPage(offset)`
// answers { rows, more }.
function useOffsetList(fetchPage, deps) {
  const [more, setMore] = useState(false);
  const list = useLoad(async () => {
    const page = await fetchPage(0);
    setMore(page.more);
    return page.rows;
  }, deps);
  const loadMore = async () => {
    const page = await fetchPage((list.data || []).length);
    list.setData((rows) => [...(rows || []), ...page.rows]);
    setMore(page.more);
  };
  return { ...list, more, loadMore };
}

// The pages of a list route without X-Has-More (schedules and their runs): a full page may have more.
const pagesOf = (path) => async (offset) => {
  const rows = await get(path, { limit: PAGE, offset });
  return { rows, more: rows.length === PAGE };
};

// Trigger now / Pause / Resume of one schedule; `done(schedule?)` follows each.
function scheduleActions(s, done) {
  const trigger = async () => {
    const r = await post(`/schedules/${enc(s.id)}/trigger`);
    await done();
    return `Schedule ${s.name} triggered: job ${short(r.job_id)}`;
  };
  const toggle = async () => {
    const fresh = await post(`/schedules/${enc(s.id)}/${s.is_active ? "pause" : "resume"}`);
    await done(fresh);
    return `Schedule ${s.name} ${fresh.is_active ? "resumed" : "paused"}`;
  };
  return html`<${Action} label="Trigger now" title=${"Trigger schedule " + s.name} run=${trigger} />
    <${Action} label=${s.is_active ? "Pause" : "Resume"} title=${(s.is_active ? "Pause" : "Resume") + " schedule " + s.name}
      run=${toggle} />`;
}

function ActiveBadge({ active }) {
  return html`<span class=${"badge " + (active ? "s-active" : "s-paused")} data-col="state">${active ? "active" : "paused"}</span>`;
}

function SchedulesPage() {
  const { canAct } = useContext(Ctx);
  const debounce = useDebounce();
  const schedules = useOffsetList(pagesOf("/schedules"), []);
  const replace = (fresh) => schedules.setData((rows) => (rows || []).map((r) => (r.id === fresh.id ? fresh : r)));
  const done = (s) => async (fresh) => replace(fresh || await get(`/schedules/${enc(s.id)}`));
  useLive((frame) => {
    // a fire enqueues a job into the schedule's queue: its run count and times move
    const queue = frame.data?.queue_name;
    if (frame.type === "JobCreated" && (schedules.data || []).some((s) => s.queue_name === queue)) {
      debounce("list", 1000, schedules.reload);
    }
  });
  const rows = schedules.data;
  return html`<section>
    <h1>Schedules</h1>
    <${Alert} error=${schedules.error} />
    ${rows && !rows.length && html`<p class="empty">No schedules yet (POST /api/v1/schedules).</p>`}
    ${rows && rows.length > 0 && html`<table class="grid" id="schedules">
      <thead><tr><th>Schedule</th><th>Cron</th><th>Zone</th><th>Queue</th><th>State</th><th>Next run</th>
        <th>Last run</th><th class="num">Runs</th>${canAct && html`<th></th>`}</tr></thead>
      <tbody>${rows.map((s) => html`<tr data-schedule-id=${s.id} key=${s.id}>
        <td><a href=${href("/schedules/" + s.id)}>${s.name}</a></td>
        <td class="mono" data-col="cron">${s.cron_expression}</td>
        <td data-col="zone">${s.timezone}</td>
        <td><a href=${href("/jobs", { queue: s.queue_name })}>${s.queue_name}</a></td>
        <td><${ActiveBadge} active=${s.is_active} /></td>
        <td data-col="next"><${When} ts=${s.next_run_at} /></td>
        <td data-col="last"><${When} ts=${s.last_run_at} /></td>
        <td class="num" data-col="runs">${s.run_count}</td>
        ${canAct && html`<td class="actions">${scheduleActions(s, done(s))}</td>`}
      </tr>`)}</tbody>
    </table>`}
    ${schedules.more && html`<p><${Action} label="Load more" run=${schedules.loadMore} /></p>`}
  </section>`;
}

function SchedulePage({ id }) {
  const { canAct } = useContext(Ctx);
  const debounce = useDebounce();
  const schedule = useLoad(() => get(`/schedules/${enc(id)}`), [id]);
  const runs = useOffsetList(pagesOf(`/schedules/${enc(id)}/history`), [id]);
  const s = schedule.data;
  useLive((frame) => {
    const d = frame.data || {};
    const ours = (runs.data || []).some((r) => r.job_id && r.job_id === d.job_id);
    if ((frame.type === "JobCreated" && s && d.queue_name === s.queue_name) || (JOB_FRAMES.has(frame.type) && ours)) {
      debounce("schedule", 500, () => { schedule.reload(); runs.reload(); });
    }
  });
  const done = async (fresh) => {
    await Promise.all([fresh ? schedule.setData(() => fresh) : schedule.reload(), runs.reload()]);
  };
  return html`<section>
    <p><a href="#/schedules">← Schedules</a></p>
    <${Alert} error=${schedule.error || runs.error} />
    ${s && html`<div id="schedule" data-schedule-id=${s.id} data-active=${String(s.is_active)}>
      <h1>Schedule ${s.name} <${ActiveBadge} active=${s.is_active} /></h1>
      ${canAct && html`<div class="toolbar">${scheduleActions(s, done)}</div>`}
      ${s.description && html`<p>${s.description}</p>`}
      <dl class="facts">
        <dt>Cron</dt><dd class="mono">${s.cron_expression}</dd>
        <dt>Time zone</dt><dd>${s.timezone}</dd>
        <dt>Queue</dt><dd><a href=${href("/jobs", { queue: s.queue_name })}>${s.queue_name}</a></dd>
        <dt>Runs</dt><dd>${s.run_count}</dd>
        <dt>Next run</dt><dd><${When} ts=${s.next_run_at} /></dd>
        <dt>Last run</dt><dd><${When} ts=${s.last_run_at} /></dd>
        <dt>Priority</dt><dd>${s.priority}</dd>
        <dt>Retries</dt><dd>${s.max_retries}</dd>
        <dt>Timeout</dt><dd>${s.timeout_seconds} s</dd>
        <dt>Missed fires</dt><dd>catch up: ${s.catch_up ?? "latest"}, overlap: ${s.overlap ?? "allow"}</dd>
        <dt>Created</dt><dd><${When} ts=${s.created_at} /></dd>
        <dt>Tags</dt><dd class="mono">${s.tags == null ? html`<span class="muted">–</span>` : prettyJson(s.tags)}</dd>
      </dl>
      <h2>Payload template</h2><pre class="json" id="payload-template">${prettyJson(s.payload_template)}</pre>
    </div>`}
    <h2>Runs <span class="muted">(newest first)</span></h2>
    ${runs.data && !runs.data.length && html`<p class="empty">No runs yet.</p>`}
    ${runs.data && runs.data.length > 0 && html`<table class="grid" id="runs">
      <thead><tr><th>Fire time</th><th>Fired</th><th>Run</th><th>Job</th><th>Finished</th><th>Error</th></tr></thead>
      <tbody>${runs.data.map((r) => html`<tr key=${r.id} data-run-id=${r.id} data-job-id=${r.job_id || ""}>
        <td><${When} ts=${r.fire_time} /></td><td><${When} ts=${r.started_at} />${r.manual ? html` <span class="muted">(manual)</span>` : ""}</td>
        <td><${Badge} status=${r.status} /></td>
        <td>${r.job_id ? html`<a class="mono" href=${href("/jobs/" + r.job_id)} title=${r.job_id}>${short(r.job_id)}</a>`
          : html`<span class="muted">–</span>`}</td>
        <td><${When} ts=${r.completed_at} /></td>
        <td class="clip" title=${r.error_message || ""}>${r.error_message || ""}</td></tr>`)}</tbody>
    </table>`}
    ${runs.more && html`<p><${Action} label="Load more" run=${runs.loadMore} /></p>`}
  </section>`;
}

// -- Workflows ----------------------------------------------------------------------------------------------------

const WORKFLOW_STATES = ["pending", "running", "completed", "failed", "cancelled"];
const WORKFLOW_CANCELLABLE = new Set(["pending", "running"]);

function Progress({ w }) {
  return html`<span class="progress" data-col="progress">
    <progress max=${w.total_jobs || 1} value=${w.completed_jobs}></progress>
    ${w.completed_jobs}/${w.total_jobs} <span class="muted">(${Math.round(w.progress_percent)} %)</span></span>`;
}

function WorkflowsPage({ params }) {
  const debounce = useDebounce();
  const status = params.get("status") || "";
  const workflows = useOffsetList(async (offset) => {
    const { data, headers } = await request("GET", "/workflows", { params: { status, limit: PAGE, offset } });
    return { rows: data, more: headers.get("X-Has-More") === "true" };
  }, [status]);
  useLive((frame) => {
    if (JOB_FRAMES.has(frame.type)) debounce("list", 1000, workflows.reload);
  });
  const rows = workflows.data;
  return html`<section>
    <h1>Workflows</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label>State
        <select name="status" value=${status} onChange=${(e) => go("/workflows", { status: e.target.value })}>
          <option value="">any state</option>
          ${WORKFLOW_STATES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
    </form>
    <${Alert} error=${workflows.error} />
    ${rows && !rows.length && html`<p class="empty">No workflows${status ? " in that state" : ""}.</p>`}
    ${rows && rows.length > 0 && html`<table class="grid" id="workflows">
      <thead><tr><th>Workflow</th><th>State</th><th>Progress</th><th class="num">Failed</th><th class="num">Cancelled</th>
        <th>Created</th><th>Started</th><th>Finished</th></tr></thead>
      <tbody>${rows.map((w) => html`<tr data-workflow-id=${w.id} key=${w.id}>
        <td><a href=${href("/workflows/" + w.id)}>${w.name}</a></td>
        <td><${Badge} status=${w.status} /></td>
        <td><${Progress} w=${w} /></td>
        <td class="num" data-col="failed">${w.failed_jobs}</td>
        <td class="num" data-col="cancelled">${w.cancelled_jobs ?? 0}</td>
        <td><${When} ts=${w.created_at} /></td><td><${When} ts=${w.started_at} /></td>
        <td><${When} ts=${w.completed_at} /></td>
      </tr>`)}</tbody>
    </table>`}
    ${workflows.more && html`<p><${Action} label="Load more" run=${workflows.loadMore} /></p>`}
  </section>`;
}

function WorkflowPage({ id }) {
  const { canAct } = useContext(Ctx);
  const debounce = useDebounce();
  const workflow = useLoad(() => get(`/workflows/${enc(id)}`), [id]);
  const w = workflow.data;
  useLive((frame) => {
    const jobId = frame.data?.job_id;
    if (JOB_FRAMES.has(frame.type) && (w?.jobs || []).some((j) => j.id === jobId)) {
      debounce("workflow", 250, workflow.reload);
    }
  });
  const act = (verb, said) => async () => {
    await post(`/workflows/${enc(id)}/${verb}`);
    await workflow.reload();
    return `Workflow ${w.name} ${said}`;
  };
  const retryable = (w?.jobs || []).some((j) => RETRYABLE.has(j.status));
  return html`<section>
    <p><a href="#/workflows">← Workflows</a></p>
    <${Alert} error=${workflow.error} />
    ${w && html`<div id="workflow" data-workflow-id=${w.id} data-status=${w.status}>
      <h1>Workflow ${w.name} <${Badge} status=${w.status} /></h1>
      ${canAct && html`<div class="toolbar">
        ${WORKFLOW_CANCELLABLE.has(w.status) && html`<${Action} label="Cancel workflow" kind="danger"
          run=${act("cancel", "cancelled")} />`}
        ${retryable && html`<${Action} label="Retry workflow" kind="primary" run=${act("retry", "retried")} />`}
      </div>`}
      ${w.description && html`<p>${w.description}</p>`}
      <dl class="facts">
        <dt>Progress</dt><dd><${Progress} w=${w} /></dd>
        <dt>Failed / cancelled</dt><dd>${w.failed_jobs} / ${w.cancelled_jobs ?? 0}</dd>
        <dt>Created</dt><dd><${When} ts=${w.created_at} /></dd>
        <dt>Started</dt><dd><${When} ts=${w.started_at} /></dd>
        <dt>Finished</dt><dd><${When} ts=${w.completed_at} /></dd>
        <dt>Metadata</dt><dd class="mono">${w.metadata == null ? html`<span class="muted">–</span>` : prettyJson(w.metadata)}</dd>
      </dl>
      <h2>Jobs and their dependencies <span class="muted">(parent → child; a dashed node waits for its dependencies)</span></h2>
      <div class="panel dag-box"><${Dag} jobs=${w.jobs} edges=${w.dependencies} /></div>
      <${JobTable} jobs=${w.jobs} />
    </div>`}
  </section>`;
}

// A small layered layout (Sugiyama-style, no library): each job's layer is its longest path from a job without
// dependencies; a few barycentre sweeps order each layer to shorten crossings; edges are curves parent → child.
const NODE_W = 200, NODE_H = 48, GAP_X = 28, GAP_Y = 56, PAD = 16;

export function layoutDag(jobs, edges) {
  const ids = jobs.map((j) => j.id);
  const known = new Set(ids);
  const parents = new Map(ids.map((i) => [i, []]));
  const children = new Map(ids.map((i) => [i, []]));
  const links = edges.filter((e) => known.has(e.parent_job_id) && known.has(e.child_job_id));
  for (const e of links) {
    parents.get(e.child_job_id).push(e.parent_job_id);
    children.get(e.parent_job_id).push(e.child_job_id);
  }
  const layer = new Map(ids.map((i) => [i, 0]));
  const waiting = new Map(ids.map((i) => [i, parents.get(i).length]));
  const ready = ids.filter((i) => waiting.get(i) === 0);
  while (ready.length) {                                   // Kahn: the server refuses cycles
    const i = ready.shift();
    for (const c of children.get(i)) {
      layer.set(c, Math.max(layer.get(c), layer.get(i) + 1));
      if (waiting.set(c, waiting.get(c) - 1).get(c) === 0) ready.push(c);
    }
  }
  const layers = [];
  for (const i of ids) (layers[layer.get(i)] ??= []).push(i);
  const index = new Map();
  const place = () => layers.forEach((l) => l.forEach((i, n) => index.set(i, n)));
  place();
  const sweep = (l, near) => {
    const key = new Map(l.map((i, n) => {
      const ns = near.get(i).map((x) => index.get(x));
      return [i, ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : n];
    }));
    l.sort((a, b) => key.get(a) - key.get(b) || index.get(a) - index.get(b));
    l.forEach((i, n) => index.set(i, n));
  };
  for (let round = 0; round < 4; round++) {
    for (let k = 1; k < layers.length; k++) sweep(layers[k], parents);
    for (let k = layers.length - 2; k >= 0; k--) sweep(layers[k], children);
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const pos = new Map();
  layers.forEach((l, k) => {
    const left = (width - (l.length * NODE_W + (l.length - 1) * GAP_X)) / 2;
    l.forEach((i, n) => pos.set(i, { x: left + n * (NODE_W + GAP_X), y: PAD + k * (NODE_H + GAP_Y) }));
  });
  return { pos, links, width, height: PAD * 2 + layers.length * NODE_H + Math.max(0, layers.length - 1) * GAP_Y };
}

function nodeLabel(j) {
  const t = j.payload && typeof j.payload === "object" && typeof j.payload.job_type === "string" ? j.payload.job_type : j.queue_name;
  return t.length > 26 ? t.slice(0, 25) + "…" : t;
}

function Dag({ jobs, edges }) {
  const { pos, links, width, height } = useMemo(() => layoutDag(jobs, edges), [jobs, edges]);
  return html`<svg class="dag" id="dag" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`}
      role="img" aria-label=${`${jobs.length} jobs, ${links.length} dependencies`}>
    <defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
      <path d="M0,0 L10,5 L0,10 z" class="arrow" /></marker></defs>
    <g class="edges">${links.map((e) => {
      const a = pos.get(e.parent_job_id), b = pos.get(e.child_job_id);
      const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y - 2, mid = (y1 + y2) / 2;
      return html`<path key=${e.parent_job_id + e.child_job_id} class="edge" data-parent=${e.parent_job_id}
        data-child=${e.child_job_id} d=${`M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`} marker-end="url(#dag-arrow)" />`;
    })}</g>
    <g class="nodes">${jobs.map((j) => {
      const p = pos.get(j.id);
      const waits = j.status === "pending" && j.dependencies_met === false;
      return html`<a key=${j.id} href=${href("/jobs/" + j.id)} class=${"node" + (waits ? " waiting" : "")}
          data-job-id=${j.id} data-status=${j.status}>
        <title>${(j.payload?.job_type || j.queue_name) + " · " + j.id + " · " + j.status + (waits ? " (waiting)" : "")}</title>
        <rect x=${p.x} y=${p.y} width=${NODE_W} height=${NODE_H} rx="7" />
        <text x=${p.x + 10} y=${p.y + 19} class="label">${nodeLabel(j)}</text>
        <text x=${p.x + 10} y=${p.y + 37} class="state">${j.status}${waits ? " · waiting" : ""} · ${short(j.id)}</text>
      </a>`;
    })}</g>
  </svg>`;
}

// -- the shell ------------------------------------------------------------------------------------------------------

// The navigation, in order; `item` is the page of one thing of the list (#/<path>/<id>).
const PAGES = [
  { path: "/queues", title: "Queues", view: QueuesPage },
  { path: "/jobs", title: "Jobs", view: JobsPage, item: JobPage },
  { path: "/workers", title: "Workers", view: WorkersPage },
  { path: "/schedules", title: "Schedules", view: SchedulesPage, item: SchedulePage },
  { path: "/workflows", title: "Workflows", view: WorkflowsPage, item: WorkflowPage },
  { path: "/dlq", title: "Dead letters", view: DlqPage },
];

function pageFor(route) {
  const m = route.path.match(/^(\/[^/]+)\/([^/]+)$/);
  const item = m && PAGES.find((p) => p.path === m[1])?.item;
  if (item) return html`<${item} id=${decodeURIComponent(m[2])} />`;
  const page = PAGES.find((p) => p.path === route.path);
  if (!page) return html`<p class="empty">No such page. <a href="#/queues">Queues</a></p>`;
  return html`<${page.view} params=${route.params} />`;
}

function LiveIndicator() {
  const [state, setState] = useState("disconnected");
  useEffect(() => live.onState(setState), []);
  return html`<span class="live" id="live" data-state=${state} title="Realtime updates (SSE)">live: ${state}</span>`;
}

function Notices({ notices, dismiss }) {
  return html`<div class="notices">${notices.map((n) => html`<div key=${n.id}
    class=${"alert " + (n.kind === "error" ? "error" : "ok")} role=${n.kind === "error" ? "alert" : "status"}>
    ${n.text} <button class="close" aria-label="Dismiss" onClick=${() => dismiss(n.id)}>×</button></div>`)}</div>`;
}

function Shell() {
  const [route, setRoute] = useState(parseHash());
  const [notices, setNotices] = useState([]);
  const seq = useRef(0);
  const firstHash = useRef(location.hash);
  useEffect(() => {
    const onHash = () => { setRoute(parseHash()); setNotices([]); };
    addEventListener("hashchange", onHash);
    // the hash may have changed between the first render and this listener (a link followed right after
    // signing in): that change fired no event we heard
    if (location.hash !== firstHash.current) onHash();
    return () => removeEventListener("hashchange", onHash);
  }, []);
  const notify = useCallback((n) => {
    const id = ++seq.current;
    setNotices((list) => [...list.slice(-3), { ...n, id }]);
    if (n.kind !== "error") setTimeout(() => setNotices((list) => list.filter((x) => x.id !== id)), 6000);
  }, []);
  const dismiss = (id) => setNotices((list) => list.filter((x) => x.id !== id));
  const me = session.me;
  const ctx = useMemo(() => ({ canAct: !session.readOnly, notify }), [notify]);
  const section = "/" + route.path.split("/")[1];
  return html`<${Ctx.Provider} value=${ctx}>
    <header class="top">
      <a class="brand" href="#/queues">Spooled</a>
      <nav>${PAGES.map((p) => html`<a href=${"#" + p.path} class=${section === p.path ? "active" : ""}>${p.title}</a>`)}</nav>
      <span class="spacer"></span>
      <${LiveIndicator} />
      ${session.readOnly && html`<span class="badge s-paused" id="read-only">read-only</span>`}
      <span class="org" title=${me?.organization_id}>${me?.organization?.name || ""}</span>
      <button class="btn" id="sign-out" onClick=${() => signOut()}>Sign out</button>
    </header>
    <${Notices} notices=${notices} dismiss=${dismiss} />
    <main key=${route.path + "?" + route.params}>${pageFor(route)}</main>
  <//>`;
}

function SignIn({ reason }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(key.trim());
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <form onSubmit=${submit} id="sign-in">
      <h1>Spooled</h1>
      ${reason && !error && html`<div class="alert" role="status">${reason}</div>`}
      <${Alert} error=${error} />
      <label>API key <input name="api_key" type="password" autocomplete="off" required value=${key}
        onInput=${(e) => setKey(e.target.value)} placeholder="sk_live_…" /></label>
      <button class="btn primary" type="submit" disabled=${busy}>Sign in</button>
      <p class="muted">The key is exchanged for a session token (POST /api/v1/auth/login) kept in this tab only.</p>
    </form>
  </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(session.signedIn);
  const [reason, setReason] = useState(null);
  useEffect(() => session.onChange((why) => {
    setSignedIn(session.signedIn);
    setReason(why);
  }), []);
  useEffect(() => {
    if (signedIn) live.start();
    else live.stop();
  }, [signedIn]);
  return signedIn ? html`<${Shell} />` : html`<${SignIn} reason=${reason} />`;
}

render(html`<${App} />`, document.getElementById("app"));
