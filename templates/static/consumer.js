// The consumer page: topics, subscribing (to partitions, or as a member of
// a consumer group), and live subscriptions — all kept live by the page's
// event stream (/api/events): messages, state, notes, the partitions a
// group member holds. Message keys and payloads, group names and member ids
// go into the page as text only.
"use strict";

(() => {
  const { el, $, api, show, showError, fmt } = Yak;
  const SHOWN = Number($("#subscriptions").dataset.shown) || 200;
  const NOTES = 6;

  // This tab's name for itself. Its group memberships belong to it: only
  // it shows them, and they end when it closes. Kept in sessionStorage, so
  // a reload keeps them; random, from getRandomValues (randomUUID needs a
  // secure context, and the UI may be reached over plain http).
  const TAB = (() => {
    const kept = sessionStorage.getItem("yak-tab");
    if (kept) return kept;
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    const made = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("yak-tab", made);
    return made;
  })();

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
    fillTopicChecks();
  }

  /** The group mode's topic choice: one checkbox per topic, the checked
   *  ones kept. */
  function fillTopicChecks() {
    const box = $("#sub-topics");
    const checked = new Set(checkedTopics());
    box.replaceChildren(
      ...(topics.length
        ? topics.map((t) =>
            el("label", { class: "check" }, el("input", { type: "checkbox", name: "topics", value: t.name, checked: checked.has(t.name) }), t.name),
          )
        : [el("span", { class: "hint", text: "No topics yet." })]),
    );
  }

  function checkedTopics() {
    return [...document.querySelectorAll('#sub-topics input[name="topics"]:checked')].map((input) => input.value);
  }

  function groupMode() {
    return $("#mode-group").checked;
  }

  /** Shows the fields of the chosen mode. A group member starts where the
   *  group committed, so "Offset" is a partitions-only choice. */
  function setMode() {
    const group = groupMode();
    for (const node of document.querySelectorAll("#sub-form [data-mode]")) node.hidden = (node.dataset.mode === "group") !== group;
    if (group) {
      if ($("#start-offset").checked) $("#start-earliest").checked = true;
      const topic = $("#sub-topic").value;
      const box = topic && document.querySelector('#sub-topics input[value="' + CSS.escape(topic) + '"]');
      if (box && !checkedTopics().length) box.checked = true;
    }
    $("#sub-offset").hidden = group || !$("#start-offset").checked;
    $("#sub-button").textContent = group ? "Join the group" : "Subscribe";
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
    if (groupMode()) {
      const box = document.querySelector('#sub-topics input[value="' + CSS.escape(name) + '"]');
      if (box) box.checked = true;
      $("#sub-group").focus();
      return;
    }
    $("#sub-topic").value = name;
    fillPartitions();
    $("#sub-topic").focus();
  }

  $("#sub-topic").addEventListener("change", fillPartitions);
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", setMode);
  for (const radio of document.querySelectorAll('input[name="start"]')) {
    radio.addEventListener("change", () => {
      $("#sub-offset").hidden = !$("#start-offset").checked;
    });
  }

  /** The subscribe request the form describes, or a message saying what
   *  is missing. */
  function subscribeRequest() {
    let start = document.querySelector('input[name="start"]:checked').value;
    if (groupMode()) {
      const group = $("#sub-group").value.trim();
      if (!group) return { error: "Name the consumer group to join." };
      const chosen = checkedTopics();
      if (!chosen.length) return { error: "Choose the topics the group reads." };
      return { body: { group, topics: chosen, start, tab: TAB } };
    }
    const topic = $("#sub-topic").value;
    if (!topic) return { error: "Choose a topic." };
    const partitionText = $("#sub-partition").value;
    if (start === "offset") {
      const offset = Number($("#sub-offset").value);
      if ($("#sub-offset").value.trim() === "" || !Number.isInteger(offset) || offset < 0) {
        return { error: "The offset must be a whole number, 0 or more." };
      }
      start = offset;
    }
    return { body: { topic, partition: partitionText === "" ? null : Number(partitionText), start } };
  }

  function subscribedText(status) {
    if (status.kind === "group") {
      return ["Joining group ", el("strong", { text: status.group }), " for " + status.topics.join(", ") + ": this tab holds what the group assigns it."];
    }
    return ["Subscribed to ", el("strong", { text: status.topic }), status.all_partitions ? " (all partitions)." : " partition " + status.partitions[0].partition + "."];
  }

  $("#sub-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("#sub-result");
    const request = subscribeRequest();
    if (request.error) {
      show(result, "error", request.error);
      return;
    }
    const button = $("#sub-button");
    button.disabled = true;
    try {
      const status = await api("POST", "/api/subscribe", request.body);
      show(result, "ok", ...subscribedText(status));
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
      card.dataset.kind = status.kind;
      card.id = "sub-" + status.id;
      if (status.kind === "group") {
        $(".sub-topic", card).textContent = status.group;
        $(".sub-parts", card).textContent = "· group member · " + status.topics.join(", ");
        // Partition cells name the topic when there are several.
        card.yakTopicInRows = status.topics.length > 1;
        $(".sub-pause", card).remove();
        $(".sub-remove", card).textContent = "Leave group";
      } else {
        $(".sub-topic", card).textContent = status.topic;
        $(".sub-parts", card).textContent = status.all_partitions ? "· all partitions" : "· partition " + status.partitions[0].partition;
        $(".sub-pause", card).addEventListener("click", () => steer(status.id, "pause", card));
      }
      $(".sub-start", card).textContent = status.start;
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
    if (status.kind === "group") {
      setMember(card, status);
      return;
    }
    const positions = $(".sub-positions", card);
    positions.classList.add("small-text");
    positions.textContent = status.partitions
      .map((p) => "p" + p.partition + " → " + (p.next_offset === null ? "…" : fmt.int(p.next_offset)))
      .join("   ");
    $(".sub-pause", card).hidden = status.paused;
    $(".sub-resume", card).hidden = !status.paused;
  }

  /** What a group member shows: its id and generation, and the partitions
   *  it holds now, each with the next offset to show. */
  function setMember(card, status) {
    $(".sub-member", card).textContent = status.member_id || "joining…";
    $(".sub-generation", card).textContent = status.generation === null ? "–" : fmt.int(status.generation);
    const holds = $(".sub-holds", card);
    if (!status.partitions.length) {
      const why = { starting: "nothing yet: joining the group…", rebalancing: "nothing while the group rebalances…" }[status.state];
      holds.replaceChildren(el("li", { class: "muted", text: why || "nothing: the group has more members than partitions" }));
      return;
    }
    holds.replaceChildren(
      ...status.partitions.map((p) =>
        el(
          "li",
          { class: "chip", dataset: { topic: p.topic, partition: String(p.partition) } },
          p.topic + "/" + p.partition,
          p.next_offset === null ? null : el("span", { class: "chip-note", text: " → " + fmt.int(p.next_offset) }),
        ),
      ),
    );
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

  function messageRow(m, fresh, topicInRow) {
    return el(
      "tr",
      { class: fresh ? "fresh" : null, dataset: { topic: m.topic, partition: String(m.partition), offset: String(m.offset) } },
      el("td", { class: "num", text: topicInRow ? m.topic + "/" + m.partition : String(m.partition) }),
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
    for (let i = records.length - 1; i >= start; i -= 1) fragment.append(messageRow(records[i], true, card.yakTopicInRows));
    body.prepend(fragment);
    while (body.children.length > SHOWN) body.lastElementChild.remove();
    $(".sub-empty", card).hidden = body.children.length > 0;
    if (seq === undefined || newer(card, seq)) $(".sub-count", card).textContent = fmt.int(count);
    const shown = $(".sub-shown", card);
    shown.textContent = count > body.children.length ? "Showing the latest " + fmt.int(body.children.length) + " of " + fmt.int(count) + " messages." : "";
  }

  // A reload may restore the form with the group mode chosen.
  setMode();

  // ----- the event stream -----
  Yak.connect("/api/events?tab=" + encodeURIComponent(TAB), {
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
