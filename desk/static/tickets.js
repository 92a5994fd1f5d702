// Tickets in the console: overdue tickets of every kind above the callbacks list (GET /api/tickets/overdue),
// and an answer box on each callback ticket (POST /api/callbacks/{id}/messages): the message reaches the
// shopper in their conversation, which then appears under the agent's own conversations. Below the
// callbacks, the carrier-urge tickets (GET /api/carrier-urges) with an answer box each
// (POST /api/carrier-urges/{id}/answer): the answer reaches the shopper's conversation and settles the ticket.
// Uses the console's helpers ($, el, api, refreshQueue from console.js); texts are inserted as text.
"use strict";

const consoleLoadCallbacks = loadCallbacks;

async function showOverdue() {
  let box = $("tickets-overdue");
  if (!box) {
    box = el("p", { id: "tickets-overdue", className: "hint" });
    $("callbacks-view").prepend(box);
  }
  try {
    const data = await api("GET", "/api/tickets/overdue");
    const o = data.overdue;
    box.textContent = `超时工单：回访 ${o.callbacks} 件 · 主管复盘 ${o.reviews} 件 · 催件未回复 ${o.carrier_urges || 0} 件`;
    box.classList.toggle("overdue", o.callbacks + o.reviews + (o.carrier_urges || 0) > 0);
  } catch (error) { box.textContent = ""; }
}

function answerBox(row) {
  const id = row.dataset.callback;
  const text = el("input", { type: "text", className: "cb-answer-text", placeholder: "在顾客的对话里回复", "aria-label": "回复顾客" });
  const status = el("span", { className: "cb-answer-status" });
  const send = el("button", { type: "button", className: "cb-answer-send", onclick: async () => {
    status.textContent = "";
    try {
      await api("POST", `/api/callbacks/${encodeURIComponent(id)}/messages`, { text: text.value });
      text.value = "";
      status.textContent = "已发送，顾客回复后会出现在您的会话中。";
      refreshQueue();
    } catch (error) { status.textContent = error.message; }
  } }, "回复");
  return el("div", { className: "cb-answer" }, text, " ", send, " ", status);
}

function urgeAnswerBox(ticketId) {
  const text = el("input", { type: "text", className: "urge-answer-text", placeholder: "查明进度后回复顾客", "aria-label": "回复顾客" });
  const status = el("span", { className: "urge-answer-status" });
  const send = el("button", { type: "button", className: "urge-answer-send", onclick: async () => {
    status.textContent = "";
    try {
      await api("POST", `/api/carrier-urges/${encodeURIComponent(ticketId)}/answer`, { text: text.value });
      text.value = "";
      status.textContent = "已发送给顾客，工单已处理。";
      showOverdue();
      showCarrierUrges();
    } catch (error) { status.textContent = error.message; }
  } }, "回复");
  return el("div", { className: "cb-answer" }, text, " ", send, " ", status);
}

async function showCarrierUrges() {
  let box = $("carrier-urges");
  if (!box) {
    box = el("div", { id: "carrier-urges" });
    $("callbacks-view").append(box);
  }
  let data;
  try {
    data = await api("GET", "/api/carrier-urges");
  } catch (error) { box.replaceChildren(); return; }
  const rows = data.tickets.map((t) => el("tr", { className: t.overdue ? "overdue" : "", dataset: { urge: t.ticket_id } },
    el("td", {}, t.overdue ? `已超时 ${duration(-t.due_in_s)}` : `${duration(t.due_in_s)}后到期`),
    el("td", {}, t.order_id),
    el("td", {}, t.who),
    el("td", {}, t.status === "overdue" ? "未按时回复，已向顾客致歉并承诺人工跟进" : "等待回复"),
    el("td", {}, urgeAnswerBox(t.ticket_id))));
  box.replaceChildren(
    el("h2", {}, "催件工单 ", el("small", {}, "机器人向顾客承诺了承运商（或仓库）的回复时间；超时未回复的请查明进度后回复顾客")),
    rows.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ["到期", "订单", "催促对象", "状态", "处理"].map((h) => el("th", {}, h)))),
        el("tbody", { id: "urge-rows" }, rows))
      : el("p", { className: "hint" }, "暂无催件工单。"));
}

loadCallbacks = async function loadCallbacksWithTickets() {  // eslint-disable-line no-global-assign
  await consoleLoadCallbacks();
  document.querySelectorAll("#callback-rows tr[data-callback]").forEach((row) => {
    if (!row.querySelector(".cb-answer")) row.lastElementChild.append(answerBox(row));
  });
  showOverdue();
  showCarrierUrges();
};
