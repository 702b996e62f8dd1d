// autoglm ui: small helpers, no framework. Every string from the server is set with
// textContent (never innerHTML), so nothing a user typed can become markup.
"use strict";
const autoglm = (() => {
  const csrf = document.querySelector('meta[name="autoglm-csrf"]').content;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  async function post(url, body, isForm) {
    const headers = {"X-AutoGLM-CSRF": csrf};
    if (!isForm) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {method: "POST", headers, body: isForm ? body : JSON.stringify(body)});
    let data;
    try { data = await response.json(); } catch (e) { data = {error: await response.text()}; }
    if (!response.ok && !data.error) data.error = "HTTP " + response.status;
    return data;
  }

  function plot(node, figure) {
    node.textContent = "";
    // Optuna's slice plot fixes a width for many parameters: let the box decide instead.
    const layout = Object.assign({}, figure.layout || {}, {autosize: true});
    delete layout.width;
    Plotly.newPlot(node, figure.data || [], layout, {responsive: true, displaylogo: false});
    node.dataset.drawn = "1";
  }

  // plotly.js (4.8 MB) is fetched only after the page has painted, and only where a page
  // has plots: parsing it would otherwise hold back the first paint by a second.
  let plotlyLoading = null;
  function loadPlotly() {
    if (window.Plotly) return Promise.resolve();
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        requestAnimationFrame(() => setTimeout(() => {
          const script = document.createElement("script");
          script.src = "/static/plotly.min.js";
          script.onload = resolve;
          script.onerror = () => reject(new Error("plotly.js did not load"));
          document.head.appendChild(script);
        }, 0));
      });
    }
    return plotlyLoading;
  }

  // Stored figures are drawn once plotly.js is in; a study's plots are fetched meanwhile,
  // each drawn as soon as both it and plotly.js have arrived.
  function drawPlots() {
    if (!document.querySelector(".plot")) return;
    const ready = loadPlotly();
    ready.then(() => document.querySelectorAll(".plot[data-figure]").forEach(
      (node) => plot(node, JSON.parse(node.dataset.figure))));
    document.querySelectorAll(".plot[data-src]").forEach(async (node) => {
      const started = performance.now();
      const figure = await (await fetch(node.dataset.src)).json();
      if (figure.error) { node.textContent = ""; node.appendChild(el("p", figure.error, "error")); return; }
      await ready;
      plot(node, figure);
      node.dataset.ms = String(Math.round(performance.now() - started));
    });
  }

  function line(box, text, cls) { const p = el("div", text, cls); box.appendChild(p); return p; }

  function runLinks(box, ids) {
    const p = el("p", "Runs: ");
    (ids || []).forEach((id) => { const a = el("a", "run " + id); a.href = "/runs/" + id; p.appendChild(a); p.append(" "); });
    box.appendChild(p);
  }

  // Follow a job's events (server-sent); `onDone(event)` after it succeeded.
  function watchJob(jobId, box, onDone) {
    box.classList.add("job");
    box.dataset.job = jobId;
    const status = line(box, "job " + jobId + ": queued", "job-status");
    let progress = null;
    const source = new EventSource("/api/jobs/" + jobId + "/events");
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.event === "started") status.textContent = "job " + jobId + ": running";
      else if (event.event === "plan") line(box, event.text, "plan");
      else if (event.event === "confirm") askConfirm(box, jobId, event.reason);
      else if (event.event === "epoch") {
        if (!progress) progress = line(box, "", "progress");
        const shown = Object.entries(event.metrics).slice(0, 4).map(([k, v]) => k + " " + Number(v).toFixed(4)).join(", ");
        progress.textContent = "run " + event.run_id + ", seed " + event.seed + ", epoch " + event.epoch + ": " + shown;
      } else if (event.event === "trial") line(box, "trial " + event.number + ": " + event.value, "progress");
      else if (event.event === "done") {
        status.textContent = "job " + jobId + ": done";
        if (progress) progress.remove();  // the reply says how many epochs ran
        box.dataset.state = "done";
        if (event.reply) line(box, event.reply, "reply");
        runLinks(box, event.run_ids);
        if (onDone) onDone(event);
      } else if (event.event === "failed") {
        status.textContent = "job " + jobId + ": failed";
        box.dataset.state = "failed";
        line(box, event.message, "error");
      }
    };
    source.addEventListener("end", () => source.close());
    return source;
  }

  function askConfirm(box, jobId, reason) {
    const p = line(box, reason + ". Go ahead? ", "confirm");
    for (const [label, yes] of [["Yes, run it", true], ["No", false]]) {
      const b = el("button", label);
      b.onclick = async () => { await post("/api/jobs/" + jobId + "/confirm", {yes}); p.remove(); };
      p.appendChild(b);
    }
  }

  function chatForm() {
    const form = document.getElementById("chat-form");
    const messages = document.getElementById("messages");
    // A turn started in another tab (or before a reload): follow it here too.
    if (form.dataset.activeJob) watchJob(Number(form.dataset.activeJob), document.getElementById("job"));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const text = document.getElementById("chat-text").value.trim();
      if (!text) return;
      const box = document.getElementById("job");
      box.textContent = "";
      const data = await post("/api/chat", {text, session: form.dataset.session});
      if (data.error) { line(box, data.error, "error"); return; }
      const mine = el("div", null, "message user");
      mine.appendChild(el("span", "you", "role")); mine.appendChild(el("div", text, "text"));
      messages.appendChild(mine);
      document.getElementById("chat-text").value = "";
      if (form.dataset.session !== data.session) {
        form.dataset.session = data.session;
        history.replaceState(null, "", "/chat?session=" + encodeURIComponent(data.session));
      }
      watchJob(data.job, box);
    };
  }

  function dataPage() {
    const box = document.getElementById("job");
    document.querySelectorAll("button.doctor").forEach((b) => b.onclick = async () => {
      box.textContent = "";
      const data = await post("/api/action", {action: "inspect", dataset: b.dataset.dataset});
      if (data.error) line(box, data.error, "error"); else watchJob(data.job, box);
    });
    document.querySelectorAll("form.train-form").forEach((f) => f.onsubmit = async (e) => {
      e.preventDefault();
      box.textContent = "";
      const data = await post("/api/action", {action: "train", dataset: f.dataset.dataset,
        model: f.model.value, epochs: Number(f.epochs.value)});
      if (data.error) line(box, data.error, "error"); else watchJob(data.job, box);
    });
    const upload = document.getElementById("upload-form");
    upload.onsubmit = async (e) => {
      e.preventDefault();
      const result = document.getElementById("upload-result");
      const data = await post("/api/upload", new FormData(upload), true);
      if (data.error) { result.textContent = data.error; result.className = "error"; return; }
      location.reload();
    };
  }

  function rerunButton() {
    const b = document.getElementById("rerun");
    if (!b) return;
    b.onclick = async () => {
      const box = document.getElementById("job");
      box.textContent = "";
      const data = await post("/api/runs/" + b.dataset.run + "/rerun", {});
      if (data.error) line(box, data.error, "error"); else watchJob(data.job, box);
    };
  }

  // The list: status and result of running rows, refreshed every 2 s while any runs.
  function liveRuns() {
    const rows = () => document.querySelectorAll('tr[data-run-id].status-running');
    async function refresh() {
      if (!rows().length) return;
      const ids = Array.from(rows()).map((tr) => tr.dataset.runId).join(",");
      const response = await fetch("/api/runs?ids=" + ids);
      const data = await response.json();
      const byId = new Map(data.runs.map((r) => [String(r.id), r]));
      rows().forEach((tr) => {
        const run = byId.get(tr.dataset.runId);
        if (!run) return;
        tr.querySelector(".status").textContent = run.status;
        tr.className = "status-" + run.status;
        if (run.metric !== null) tr.querySelector(".metric").textContent = run.metric_name + " " + run.metric.toFixed(4);
      });
      setTimeout(refresh, 2000);
    }
    setTimeout(refresh, 2000);
  }

  // A running run's page: its curves redrawn every 2 s from the store, the page reloaded
  // once it has ended (its explanation, costs and confusion matrix are then stored).
  function followRun(runId) {
    async function step() {
      const data = await (await fetch("/api/runs/" + runId + "/figures")).json();
      if (data.status && data.status !== "running") { location.reload(); return; }
      await loadPlotly();
      const boxes = document.getElementById("live-curves");
      (data.figures || []).forEach((figure, i) => {
        let node = boxes.children[i];
        if (!node) { node = el("div", null, "plot"); boxes.appendChild(node); }
        const layout = Object.assign({}, figure.layout, {autosize: true});
        Plotly.react(node, figure.data, layout, {responsive: true, displaylogo: false});
        node.dataset.drawn = "1";
      });
      setTimeout(step, 2000);
    }
    step();
  }

  return {post, drawPlots, watchJob, chatForm, dataPage, rerunButton, liveRuns, followRun};
})();
