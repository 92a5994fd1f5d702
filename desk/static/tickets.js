// Tickets in the console: overdue tickets of every kind above the callbacks list (GET /api/tickets/overdue),
// and an answer box on each callback ticket (POST /api/callbacks/{id}/messages): the message reaches the
// shopper in their conversation, which then appears under the agent's own conversations.
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
    box.textContent = `超时工单：回访 ${o.callbacks} 件 · 主管复盘 ${o.reviews} 件`;
    box.classList.toggle("overdue", o.callbacks + o.reviews > 0);
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

loadCallbacks = async function loadCallbacksWithTickets() {  // eslint-disable-line no-global-assign
  await consoleLoadCallbacks();
  document.querySelectorAll("#callback-rows tr[data-callback]").forEach((row) => {
    if (!row.querySelector(".cb-answer")) row.lastElementChild.append(answerBox(row));
  });
  showOverdue();
};
