// The consumer page: topics, subscribing, and live subscriptions — all
// kept live by the page's event stream (/api/events): messages, state,
// notes. Message keys and payloads go into the page as text only.
"use strict";

(() => {
  const { el, $, api, show, showError, fmt } = Yak;
  const SHOWN = Number($("#subscriptions").dataset.shown) || 200;
  const NOTES = 6;

  // ----- topics -----
  let topics = [];

  function setTopics(list) {
    topics = list;
    const ul = $("#topics");
    if (!list.length) {
      ul.replaceChildren(el("li", { class: "muted", text: "No topics yet. Send a message from the producer page to create one." }));
    } else {
      ul.replaceChildren(
        ...list.map((t) =>
          el(
            "li",
            {},
            el(
              "button",
              { type: "button", title: "Subscribe to " + t.name, onclick: () => chooseTopic(t.name) },
              el("span", { class: "topic-name", text: t.name }),
              el("span", { class: "pill", text: t.partitions + (t.partitions === 1 ? " partition" : " partitions") }),
            ),
          ),
        ),
      );
    }
    const select = $("#sub-topic");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "", text: list.length ? "choose a topic" : "no topics yet" }),
      ...list.map((t) => el("option", { value: t.name, text: t.name })),
    );
    if (list.some((t) => t.name === chosen)) select.value = chosen;
    fillPartitions();
  }

  function fillPartitions() {
    const topic = topics.find((t) => t.name === $("#sub-topic").value);
    const select = $("#sub-partition");
    const chosen = select.value;
    const options = [el("option", { value: "", text: "all partitions" })];
    for (let p = 0; topic && p < topic.partitions; p += 1) options.push(el("option", { value: String(p), text: "partition " + p }));
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  function chooseTopic(name) {
    $("#sub-topic").value = name;
    fillPartitions();
    $("#sub-topic").focus();
  }

  $("#sub-topic").addEventListener("change", fillPartitions);
  for (const radio of document.querySelectorAll('input[name="start"]')) {
    radio.addEventListener("change", () => {
      $("#sub-offset").hidden = !$("#start-offset").checked;
    });
  }

  $("#sub-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("#sub-result");
    const topic = $("#sub-topic").value;
    if (!topic) {
      show(result, "error", "Choose a topic.");
      return;
    }
    const partitionText = $("#sub-partition").value;
    let start = document.querySelector('input[name="start"]:checked').value;
    if (start === "offset") {
      const offset = Number($("#sub-offset").value);
      if ($("#sub-offset").value.trim() === "" || !Number.isInteger(offset) || offset < 0) {
        show(result, "error", "The offset must be a whole number, 0 or more.");
        return;
      }
      start = offset;
    }
    const button = $("#sub-button");
    button.disabled = true;
    try {
      const status = await api("POST", "/api/subscribe", {
        topic,
        partition: partitionText === "" ? null : Number(partitionText),
        start,
      });
      show(result, "ok", "Subscribed to ", el("strong", { text: status.topic }), partitionText === "" ? " (all partitions)." : " partition " + partitionText + ".");
      // The event stream usually shows it first; if not, show it now.
      if (!cards.has(status.id)) addSubscription({ status, recent: [], notes: [] });
    } catch (e) {
      showError(result, e);
    } finally {
      button.disabled = false;
    }
  });

  // ----- subscriptions -----
  const cards = new Map(); // id → card element

  function updateEmpty() {
    $("#no-subs").hidden = cards.size > 0;
  }

  function addSubscription(snapshot) {
    const status = snapshot.status;
    let card = cards.get(status.id);
    if (!card) {
      card = $("#sub-template").content.firstElementChild.cloneNode(true);
      card.dataset.sub = String(status.id);
      card.id = "sub-" + status.id;
      $(".sub-topic", card).textContent = status.topic;
      $(".sub-parts", card).textContent = status.all_partitions ? "· all partitions" : "· partition " + status.partitions[0].partition;
      $(".sub-start", card).textContent = status.start;
      $(".sub-pause", card).addEventListener("click", () => steer(status.id, "pause", card));
      $(".sub-resume", card).addEventListener("click", () => steer(status.id, "resume", card));
      $(".sub-remove", card).addEventListener("click", () => unsubscribe(status.id, card));
      cards.set(status.id, card);
      $("#subscriptions").prepend(card);
    }
    setStatus(status);
    if (snapshot.recent && snapshot.recent.length) addMessages(status.id, snapshot.recent, status.count);
    for (const note of snapshot.notes || []) addNote(status.id, note);
    updateEmpty();
  }

  function removeSubscription(id) {
    const card = cards.get(id);
    if (card) card.remove();
    cards.delete(id);
    updateEmpty();
  }

  async function steer(id, action, card) {
    try {
      setStatus(await api("POST", "/api/subscriptions/" + id + "/" + action));
    } catch (e) {
      addNote(id, { ts: Date.now(), level: "error", text: e.message });
    }
  }

  async function unsubscribe(id, card) {
    $(".sub-remove", card).disabled = true;
    try {
      await api("DELETE", "/api/unsubscribe/" + id);
      removeSubscription(id);
    } catch (e) {
      $(".sub-remove", card).disabled = false;
      addNote(id, { ts: Date.now(), level: "error", text: e.message });
    }
  }

  /** True (and remembered) if `seq` is newer than what the card shows:
   *  answers and events may cross, the newest wins. */
  function newer(card, seq) {
    if (seq <= (card.yakSeq || 0)) return false;
    card.yakSeq = seq;
    return true;
  }

  function setStatus(status) {
    const card = cards.get(status.id);
    if (!card || !newer(card, status.seq)) return;
    const badge = $(".sub-state", card);
    badge.dataset.state = status.state;
    badge.textContent = status.state;
    card.dataset.state = status.state;
    $(".sub-count", card).textContent = fmt.int(status.count);
    $(".sub-rate", card).textContent = fmt.rate(status.rate);
    const positions = $(".sub-positions", card);
    positions.classList.add("small-text");
    positions.textContent = status.partitions
      .map((p) => "p" + p.partition + " → " + (p.next_offset === null ? "…" : fmt.int(p.next_offset)))
      .join("   ");
    $(".sub-pause", card).hidden = status.paused;
    $(".sub-resume", card).hidden = !status.paused;
  }

  function addNote(id, note) {
    const card = cards.get(id);
    if (!card) return;
    const list = $(".sub-notes", card);
    list.prepend(
      el(
        "li",
        { dataset: { level: note.level } },
        el("time", { datetime: fmt.iso(note.ts), text: fmt.time(note.ts).slice(0, 8) }),
        note.text,
      ),
    );
    while (list.children.length > NOTES) list.lastElementChild.remove();
  }

  function payloadText(payload) {
    return typeof payload === "string" ? payload : JSON.stringify(payload, null, 2);
  }

  function messageRow(m, fresh) {
    return el(
      "tr",
      { class: fresh ? "fresh" : null, dataset: { partition: String(m.partition), offset: String(m.offset) } },
      el("td", { class: "num", text: String(m.partition) }),
      el("td", { class: "num", text: String(m.offset) }),
      m.key === null || m.key === undefined ? el("td", { class: "muted", text: "—" }) : el("td", { class: "key", text: m.key }),
      el("td", { title: fmt.iso(m.timestamp), text: fmt.time(m.timestamp) }),
      el("td", { class: "payload" }, el("pre", { text: payloadText(m.payload) })),
    );
  }

  /** Adds records (oldest first) at the top, newest first; keeps SHOWN. */
  function addMessages(id, records, count, seq) {
    const card = cards.get(id);
    if (!card) return;
    const body = $(".sub-messages", card);
    const start = Math.max(0, records.length - SHOWN);
    const fragment = document.createDocumentFragment();
    for (let i = records.length - 1; i >= start; i -= 1) fragment.append(messageRow(records[i], true));
    body.prepend(fragment);
    while (body.children.length > SHOWN) body.lastElementChild.remove();
    $(".sub-empty", card).hidden = body.children.length > 0;
    if (seq === undefined || newer(card, seq)) $(".sub-count", card).textContent = fmt.int(count);
    const shown = $(".sub-shown", card);
    shown.textContent = count > body.children.length ? "Showing the latest " + fmt.int(body.children.length) + " of " + fmt.int(count) + " messages." : "";
  }

  // ----- the event stream -----
  Yak.connect("/api/events", {
    hello(data) {
      // A fresh snapshot (first connection, or again after a reconnect).
      for (const id of [...cards.keys()]) removeSubscription(id);
      setTopics(data.topics || []);
      for (const snapshot of data.subscriptions || []) addSubscription(snapshot);
      updateEmpty();
    },
    topics: setTopics,
    subscribed: addSubscription,
    unsubscribed: (data) => removeSubscription(data.id),
    status: setStatus,
    messages: (data) => addMessages(data.id, data.records, data.count, data.seq),
    note: (data) => addNote(data.id, data.note),
    lagged: (data) =>
      addNote(data.id, {
        ts: Date.now(),
        level: "warn",
        text: "This page fell behind and skipped " + fmt.int(data.skipped) + " updates; it continues with the newest messages.",
      }),
  });
})();
