// The producer page: send one message, upload a CSV file and send it as a
// job with live progress, counters and the activity log — all kept live by
// the page's event stream (/api/events). Data goes into the page as text.
"use strict";

(() => {
  const { el, $, api, show, showError, fmt } = Yak;

  // ----- topics (the datalist offered for both topic fields) -----
  function setTopics(topics) {
    $("#topic-list").replaceChildren(
      ...topics.map((t) => el("option", { value: t.name, label: t.name + " (" + t.partitions + " partitions)" })),
    );
  }

  // ----- counters and activity -----
  function setCounters(c) {
    $("#count-sent").textContent = fmt.int(c.sent);
    $("#count-failed").textContent = fmt.int(c.failed);
    $("#count-batches").textContent = fmt.int(c.batches);
  }

  const MAX_LOG = 200;
  function logEntry(entry) {
    return el(
      "li",
      { dataset: { level: entry.level } },
      el("span", { class: "dot", "aria-hidden": "true" }),
      el("time", { datetime: fmt.iso(entry.ts), title: fmt.iso(entry.ts), text: fmt.time(entry.ts).slice(0, 8) }),
      el("span", { class: "text", text: entry.text }),
    );
  }
  function setActivity(entries) {
    const list = $("#activity");
    if (!entries.length) {
      list.replaceChildren(el("li", { class: "log-empty muted", text: "Nothing yet." }));
      return;
    }
    list.replaceChildren(...entries.slice().reverse().map(logEntry));
  }
  function addActivity(entry) {
    const list = $("#activity");
    const empty = list.querySelector(".log-empty");
    if (empty) empty.remove();
    list.prepend(logEntry(entry));
    while (list.children.length > MAX_LOG) list.lastElementChild.remove();
  }

  // ----- send one message -----
  const payload = $("#send-payload");
  const format = () => (document.querySelector('input[name="format"]:checked') || {}).value || "json";

  /** Checks the payload as JSON (when JSON is chosen); returns the error
   *  message or null. */
  function checkPayload() {
    const hint = $("#payload-hint");
    if (format() === "text") {
      payload.removeAttribute("aria-invalid");
      show(hint, null, "Sent as a JSON string.");
      return null;
    }
    if (!payload.value.trim()) {
      payload.setAttribute("aria-invalid", "true");
      show(hint, "error", "The payload is empty: type a JSON value, or choose Text.");
      return "The payload is empty: type a JSON value, or choose Text.";
    }
    try {
      JSON.parse(payload.value);
      payload.removeAttribute("aria-invalid");
      show(hint, "ok", "Valid JSON.");
      return null;
    } catch (e) {
      const message = "The payload is not valid JSON: " + e.message;
      payload.setAttribute("aria-invalid", "true");
      show(hint, "error", message);
      return message;
    }
  }
  payload.addEventListener("input", checkPayload);
  for (const radio of document.querySelectorAll('input[name="format"]')) radio.addEventListener("change", checkPayload);
  checkPayload();

  $("#send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("#send-result");
    const topic = $("#send-topic").value.trim();
    if (!topic) {
      show(result, "error", "Choose a topic.");
      $("#send-topic").focus();
      return;
    }
    const invalid = checkPayload();
    if (invalid) {
      show(result, "error", invalid);
      payload.focus();
      return;
    }
    const partitionText = $("#send-partition").value.trim();
    let partition = null;
    if (partitionText !== "") {
      partition = Number(partitionText);
      if (!Number.isInteger(partition) || partition < 0) {
        show(result, "error", "The partition must be a whole number, 0 or more.");
        return;
      }
    }
    const key = $("#send-key").value;
    const button = $("#send-button");
    button.disabled = true;
    show(result, "busy", "Sending…");
    try {
      const at = await api("POST", "/api/send", {
        topic,
        key: key === "" ? null : key,
        partition,
        payload: payload.value,
        format: format(),
      });
      show(
        result,
        "ok",
        "Sent to ",
        el("strong", { text: at.topic }),
        " · partition " + at.partition + " · offset " + fmt.int(at.offset),
      );
    } catch (e) {
      showError(result, e);
    } finally {
      button.disabled = false;
    }
  });

  // ----- upload a CSV file -----
  const fileInput = $("#upload-file");
  let upload = null; // the last accepted upload

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    const name = $("#upload-file-name");
    name.textContent = file ? file.name + " (" + fmt.bytes(file.size) + ")" : "No file chosen";
    name.classList.toggle("chosen", Boolean(file));
    $("#upload-button").disabled = !file;
    show($("#upload-result"), null);
  });

  /** Sends the file with XMLHttpRequest, for the upload's progress. */
  function sendFile(file, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/upload");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch (_) {
          data = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
        else reject(new Yak.ApiError(xhr.status, (data && data.error) || "http_" + xhr.status, (data && data.message) || xhr.statusText || "The upload failed."));
      });
      xhr.addEventListener("error", () => reject(new Yak.ApiError(0, "network", "The upload failed: this UI's server cannot be reached.")));
      xhr.send(form);
    });
  }

  $("#upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    const result = $("#upload-result");
    if (!file) {
      show(result, "error", "Choose a file first.");
      return;
    }
    const button = $("#upload-button");
    const bar = $("#upload-bar");
    const progress = $("#upload-progress");
    button.disabled = true;
    progress.hidden = false;
    progress.style.visibility = "";
    bar.style.width = "0%";
    show(result, "busy", "Uploading " + file.name + "…");
    try {
      const info = await sendFile(file, (f) => {
        bar.style.width = (f * 100).toFixed(1) + "%";
      });
      bar.style.width = "100%";
      show(result, "ok", "Uploaded ", el("strong", { text: info.filename }), ": " + fmt.int(info.headers.length) + " columns. Choose how rows become records below.");
      showMapping(info);
    } catch (e) {
      showError(result, e);
      progress.hidden = true;
      $("#mapping").hidden = true;
      upload = null;
    } finally {
      button.disabled = false;
      // Fade the finished bar out but keep its room: were the form below to
      // move up now, a click already on its way to "Send all rows" would
      // land on something else.
      setTimeout(() => {
        progress.style.visibility = "hidden";
      }, 600);
    }
  });

  const DELIMITERS = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };

  /** A topic name from a file name: server_metrics.csv → server_metrics. */
  function topicFromFile(name) {
    const stem = name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
    return stem.slice(0, 249) || "uploads";
  }

  function showMapping(info) {
    upload = info;
    $("#mapping").hidden = false;
    $("#file-meta").replaceChildren(
      el("strong", { text: info.filename }),
      " · " + fmt.bytes(info.size) + " · " + info.headers.length + " columns · " + (DELIMITERS[info.delimiter] || info.delimiter) + "-separated · first " + info.preview.length + " rows:",
    );
    const head = el("tr", {}, el("th", { class: "line", text: "line" }), ...info.headers.map((h) => el("th", { text: h })));
    $("#preview thead").replaceChildren(head);
    $("#preview tbody").replaceChildren(
      ...info.preview.map((row, i) =>
        el(
          "tr",
          {},
          el("td", { class: "line", text: String(info.preview_lines[i]) }),
          ...info.headers.map((_, j) => el("td", { class: row.length !== info.headers.length ? "ragged" : null, text: j < row.length ? row[j] : "" })),
        ),
      ),
    );
    $("#batch-key").replaceChildren(el("option", { value: "", text: "none (spread over partitions)" }), ...info.headers.map((h) => el("option", { value: h, text: h })));
    $("#batch-columns").replaceChildren(
      ...info.headers.map((h) => el("label", { class: "check" }, el("input", { type: "checkbox", value: h, checked: true }), h)),
    );
    const topic = $("#batch-topic");
    if (!topic.value) topic.value = topicFromFile(info.filename);
    show($("#batch-result"), null);
    refreshExample();
  }

  function chosenColumns() {
    return [...document.querySelectorAll("#batch-columns input:checked")].map((i) => i.value);
  }

  function mappingRequest(dryRun) {
    return {
      upload_id: upload.upload_id,
      topic: $("#batch-topic").value.trim(),
      key_column: $("#batch-key").value || null,
      columns: chosenColumns(),
      typed: $("#batch-typed").checked,
      batch_size: Number($("#batch-size").value) || undefined,
      dry_run: dryRun,
    };
  }

  let exampleTimer = null;
  function refreshExample() {
    clearTimeout(exampleTimer);
    exampleTimer = setTimeout(async () => {
      if (!upload) return;
      const box = $("#batch-example");
      try {
        const example = await api("POST", "/api/send_batch", mappingRequest(true));
        box.textContent = example.error ? "This row cannot be sent: " + example.error : JSON.stringify({ key: example.key, payload: example.payload }, null, 2);
      } catch (e) {
        box.textContent = e.message;
      }
    }, 150);
  }
  for (const id of ["#batch-key", "#batch-typed", "#batch-columns"]) $(id).addEventListener("change", refreshExample);
  $("#columns-all").addEventListener("click", () => {
    for (const box of document.querySelectorAll("#batch-columns input")) box.checked = true;
    refreshExample();
  });
  $("#columns-none").addEventListener("click", () => {
    for (const box of document.querySelectorAll("#batch-columns input")) box.checked = false;
    refreshExample();
  });

  $("#batch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("#batch-result");
    if (!upload) return;
    const request = mappingRequest(false);
    if (!request.topic) {
      show(result, "error", "Choose a topic.");
      return;
    }
    if (!request.columns.length) {
      show(result, "error", "Choose at least one column for the payload.");
      return;
    }
    const button = $("#batch-start");
    button.disabled = true;
    try {
      const job = await api("POST", "/api/send_batch", request);
      show(result, "ok", "Started job " + job.id + ".");
      currentJob = job.id;
      showJob(job);
      $("#job-card").scrollIntoView({ block: "nearest" });
    } catch (e) {
      showError(result, e);
    } finally {
      button.disabled = false;
    }
  });

  // ----- the job card -----
  let currentJob = null;
  const STATE_TEXT = { running: "running", paused: "paused", cancelled: "cancelled", done: "done", failed: "failed" };

  const jobSeq = new Map(); // job id → newest seq shown

  function showJob(job) {
    if (currentJob !== null && job.id !== currentJob) return;
    // Answers and events may cross: keep the newest.
    if (job.seq <= (jobSeq.get(job.id) || 0)) return;
    jobSeq.set(job.id, job.seq);
    currentJob = job.id;
    $("#job-card").hidden = false;
    $("#job-file").textContent = job.filename;
    $("#job-topic").textContent = job.topic;
    const badge = $("#job-state");
    badge.dataset.state = job.state;
    badge.textContent = STATE_TEXT[job.state] || job.state;
    const fraction = job.bytes_total ? Math.min(1, job.bytes_done / job.bytes_total) : 0;
    const pct = job.state === "done" ? 100 : fraction * 100;
    const progress = $("#job-progress");
    progress.dataset.state = job.state;
    progress.setAttribute("aria-valuenow", pct.toFixed(0));
    $("#job-bar").style.width = pct.toFixed(1) + "%";
    const done = job.state === "done" || job.state === "cancelled" || job.state === "failed";
    let caption = fmt.int(job.rows) + " rows read · " + fmt.bytes(job.bytes_done) + " of " + fmt.bytes(job.bytes_total) + " (" + pct.toFixed(0) + "%)";
    if (job.state === "done") caption = "Finished: " + fmt.int(job.rows) + " rows read, " + fmt.int(job.sent) + " sent, " + fmt.int(job.failed) + " not sent.";
    if (job.error) caption += " " + job.error;
    $("#job-caption").textContent = caption;
    $("#job-sent").textContent = fmt.int(job.sent);
    $("#job-failed").textContent = fmt.int(job.failed);
    $("#job-rate").textContent = job.state === "running" ? fmt.rate(job.rate) : "–";
    $("#job-eta").textContent = job.state === "running" ? fmt.duration(job.eta_secs) : done ? "–" : "paused";
    $("#job-elapsed").textContent = fmt.duration(job.elapsed_secs);
    $("#job-pause").hidden = job.state !== "running";
    $("#job-resume").hidden = job.state !== "paused";
    $("#job-cancel").hidden = done;
    const failures = job.failures || { first: [], total: 0 };
    $("#job-failures").hidden = failures.total === 0;
    $("#job-failure-count").textContent = "(" + fmt.int(failures.total) + ")";
    const list = $("#job-failure-list");
    if (list.children.length !== failures.first.length) {
      list.replaceChildren(
        ...failures.first.map((f) => el("li", {}, el("span", { class: "line", text: "line " + f.line }), f.reason)),
      );
    }
    const more = failures.total - failures.first.length;
    $("#job-failure-more").hidden = more <= 0;
    $("#job-failure-more").textContent = "… and " + fmt.int(more) + " more rows not sent (only the first " + failures.first.length + " are listed).";
  }

  async function steer(action) {
    if (currentJob === null) return;
    const result = $("#job-result");
    try {
      const job = await api("POST", "/api/jobs/" + currentJob + "/" + action);
      show(result, null);
      showJob(job);
    } catch (e) {
      showError(result, e);
    }
  }
  $("#job-pause").addEventListener("click", () => steer("pause"));
  $("#job-resume").addEventListener("click", () => steer("resume"));
  $("#job-cancel").addEventListener("click", () => steer("cancel"));

  // ----- the event stream -----
  Yak.connect("/api/events", {
    hello(data) {
      setTopics(data.topics || []);
      setCounters(data.counters);
      setActivity(data.activity || []);
      const jobs = data.jobs || [];
      if (jobs.length) {
        const latest = currentJob === null ? jobs[jobs.length - 1] : jobs.find((j) => j.id === currentJob);
        if (latest) showJob(latest);
      }
    },
    topics: setTopics,
    counters: setCounters,
    activity: addActivity,
    job: showJob,
  });
})();
