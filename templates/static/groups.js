// The group view: every consumer group of the cluster, kept live by the
// page's event stream (/api/events/groups: the whole view once a second).
// Group, topic, member and client names go into the page as text only.
"use strict";

(() => {
  const { el, $, fmt } = Yak;
  const cards = new Map(); // group name → card, in the view's order

  const list = (partitions) => (partitions.length ? partitions.map((p) => p.topic + "/" + p.partition).join(", ") : "nothing");
  const orDash = (n) => (n === null || n === undefined ? "–" : fmt.int(n));

  function memberRow(m) {
    return el(
      "tr",
      { dataset: { member: m.member_id } },
      el("td", { class: "member-id", text: m.member_id }),
      m.client_id ? el("td", { text: m.client_id }) : el("td", { class: "muted", text: "–" }),
      el("td", { class: "member-holds", text: list(m.assignment) }),
      el("td", { class: "num", text: fmt.duration(m.session_timeout_ms / 1000) }),
      el("td", { text: m.joined ? "yes" : "not yet (rebalancing)" }),
    );
  }

  function partitionRow(p) {
    return el(
      "tr",
      { dataset: { topic: p.topic, partition: String(p.partition) } },
      el("td", { text: p.topic }),
      el("td", { class: "num", text: String(p.partition) }),
      p.member_id ? el("td", { class: "owner", text: p.member_id }) : el("td", { class: "owner muted", text: "none" }),
      el("td", { class: "num committed", text: orDash(p.committed) }),
      el("td", { class: "num", text: fmt.int(p.high_water_mark) }),
      el("td", { class: "num lag" + (p.lag > 0 ? " lagging" : ""), text: fmt.int(p.lag) }),
    );
  }

  function fill(card, g) {
    $(".group-name", card).textContent = g.group;
    $(".group-topics", card).textContent = g.topics.length ? "· " + g.topics.join(", ") : "";
    const badge = $(".group-state", card);
    badge.dataset.state = g.state;
    badge.textContent = g.state;
    $(".group-generation", card).textContent = fmt.int(g.generation);
    $(".group-member-count", card).textContent = fmt.int(g.members.length);
    $(".group-assignor", card).textContent = g.kafka_protocol ? `${g.kafka_protocol} (Kafka clients)` : g.assignor;
    $(".group-lag", card).textContent = fmt.int(g.partitions.reduce((sum, p) => sum + p.lag, 0));
    $(".group-members", card).replaceChildren(
      ...(g.members.length
        ? g.members.map(memberRow)
        : [el("tr", {}, el("td", { colspan: 5, class: "table-empty muted", text: "no members: the committed offsets wait for the next one" }))]),
    );
    $(".group-partitions", card).replaceChildren(
      ...(g.partitions.length
        ? g.partitions.map(partitionRow)
        : [el("tr", {}, el("td", { colspan: 6, class: "table-empty muted", text: "no partitions" }))]),
    );
  }

  function render(view) {
    $("#groups-updated").textContent = view.at_ms ? "updated " + fmt.time(view.at_ms).slice(0, 8) : "waiting for the cluster…";
    const error = $("#groups-error");
    error.hidden = !view.error;
    error.textContent = view.error ? "The cluster does not answer (" + view.error + "); the groups are shown as they last were." : "";
    const box = $("#groups");
    const seen = new Set();
    let previous = null;
    for (const g of view.groups) {
      seen.add(g.group);
      let card = cards.get(g.group);
      if (!card) {
        card = $("#group-template").content.firstElementChild.cloneNode(true);
        card.dataset.group = g.group;
        cards.set(g.group, card);
      }
      fill(card, g);
      // In the view's order, moving only what is out of place.
      const wanted = previous ? previous.nextElementSibling : box.firstElementChild;
      if (wanted !== card) box.insertBefore(card, wanted);
      previous = card;
    }
    for (const [name, card] of cards) {
      if (!seen.has(name)) {
        card.remove();
        cards.delete(name);
      }
    }
    $("#no-groups").hidden = !view.at_ms || view.groups.length > 0;
  }

  Yak.connect("/api/events/groups", {
    hello: (data) => render(data.groups),
    groups: render,
  });
})();
