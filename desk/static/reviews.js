// Supervisor review items in the console (supervisors only), below the callbacks and the carrier-urge tickets:
// the open reviews by due time (GET /api/reviews: a rating of 1-2, a missed first-response target, a complaint
// about an agent) with a box to close each with a note (POST /api/reviews/{id}/close).
// Uses the console's helpers ($, el, api, duration, state from console.js); texts are inserted as text.
"use strict";

const REVIEW_KINDS = { low_rating: "低评分", sla_breach: "首次响应超时", complaint: "顾客投诉客服" };
const loadCallbacksBeforeReviews = loadCallbacks;

function reviewCloseBox(reviewId) {
  const note = el("input", { type: "text", className: "review-note", placeholder: "复盘结论（顾客已联系、处理结果）", "aria-label": "复盘结论" });
  const status = el("span", { className: "review-status" });
  const close = el("button", { type: "button", className: "review-close", onclick: async () => {
    status.textContent = "";
    try {
      await api("POST", `/api/reviews/${encodeURIComponent(reviewId)}/close`, { note: note.value });
      showReviews();
    } catch (error) { status.textContent = error.message; }
  } }, "关闭");
  return el("div", { className: "cb-answer" }, note, " ", close, " ", status);
}

async function showReviews() {
  if (!state.me || state.me.agent.role !== "supervisor") return;
  let box = $("reviews");
  if (!box) {
    box = el("div", { id: "reviews" });
    $("callbacks-view").append(box);
  }
  let data;
  try {
    data = await api("GET", "/api/reviews");
  } catch (error) { box.replaceChildren(); return; }
  const rows = data.reviews.map((r) => el("tr", { className: r.overdue ? "overdue" : "", dataset: { review: r.review_id } },
    el("td", {}, r.overdue ? `已超时 ${duration(data.now - r.due_at)}` : `${duration(r.due_at - data.now)}后到期`),
    el("td", {}, REVIEW_KINDS[r.kind] || r.kind),
    el("td", {}, r.agent || "—"),
    el("td", {}, r.detail || ""),
    el("td", {}, reviewCloseBox(r.review_id))));
  box.replaceChildren(
    el("h2", {}, "主管复盘 ", el("small", {}, "已告知顾客主管在到期前联系；联系并处理后填写结论关闭")),
    rows.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ["到期", "原因", "客服", "详情", "处理"].map((h) => el("th", {}, h)))),
        el("tbody", { id: "review-rows" }, rows))
      : el("p", { className: "hint" }, "暂无待复盘事项。"));
}

loadCallbacks = async function loadCallbacksWithReviews() {  // eslint-disable-line no-global-assign
  await loadCallbacksBeforeReviews();
  showReviews();
};
