// The agent workspace beside the transcript: the customer's tier, points, orders, returns and earlier
// conversations (GET /api/customers/{id}/overview), and the actions the policy allows on each order.
// Uses the console's helpers ($, el, api, clock, state from console.js); CRM text is inserted as text, never as HTML.
"use strict";

const workspace = { customer: "", seq: 0 };

function workspaceRequestId() {
  workspace.seq += 1;
  return `ws-${Date.now().toString(36)}-${workspace.seq}`;
}

function workspacePanel() {
  let panel = $("workspace");
  if (!panel) {
    panel = el("section", { id: "workspace", className: "workspace" });
    $("side").prepend(panel);
  }
  return panel;
}

async function workspaceAct(action, body, status) {
  status.textContent = "";
  try {
    const data = await api("POST", `/api/conversations/${encodeURIComponent(state.selected)}/actions/${action}`, body);
    status.textContent = data.duplicate ? "已办理过，顾客已收到通知。" : "已办理，顾客已收到通知。";
    status.className = "ws-status ok";
    loadWorkspace(workspace.customer);
  } catch (error) {
    status.textContent = error.message;
    status.className = "ws-status error";
  }
}

function returnForm(order, item, status) {
  const reasons = item.reasons.filter((r) => r.eligible);
  const reason = el("select", { className: "ws-reason", "aria-label": "退货原因" }, ...reasons.map((r) => el("option", { value: r.reason }, r.label)));
  const left = item.quantity - (item.returned_quantity || 0);
  const quantity = el("input", { type: "number", min: "1", max: String(left), value: "1", className: "ws-qty", "aria-label": "数量" });
  const opened = el("input", { type: "checkbox", className: "ws-opened" });
  const requestId = workspaceRequestId();
  const go = el("button", { type: "button", className: "primary ws-return-go", onclick: () => workspaceAct("return", {
    order_id: order.order_id, lines: [{ line_id: item.line_id, quantity: Number(quantity.value) }], reason: reason.value,
    opened: opened.checked, request_id: requestId }, status) }, "提交退货");
  return el("div", { className: "ws-form" }, reason, quantity, el("label", {}, opened, "已拆封"), go);
}

function orderCard(order) {
  const status = el("div", { className: "ws-status" });
  const items = el("ul", { className: "ws-items" }, ...order.items.map((item) => {
    const li = el("li", {}, `${item.product_name} ×${item.quantity} ${item.paid}`);
    if (item.returnable) {
      li.append(el("button", { type: "button", className: "link ws-return", onclick: () => {
        li.querySelector(".ws-form") || li.append(returnForm(order, item, status));
      } }, "申请退货"));
    }
    return li;
  }));
  const buttons = el("div", { className: "ws-actions" });
  if (order.actions.late_compensation) {
    buttons.append(el("button", { type: "button", className: "ws-compensate", onclick: () => workspaceAct("late-compensation", { order_id: order.order_id }, status) },
      `延误补偿 ${order.actions.late_compensation_points} 积分`));
  } else if (order.actions.compensated_points) {
    buttons.append(el("span", { className: "meta" }, `已补偿 ${order.actions.compensated_points} 积分`));
  }
  if (order.actions.resend_tracking) {
    buttons.append(el("button", { type: "button", className: "ws-tracking", onclick: () => workspaceAct("resend-tracking", { order_id: order.order_id }, status) }, "重发最新物流"));
  }
  const ship = order.shipment;
  // Price-protection claims (价保): what the shopper was promised and by when; the texts come from desk/workspace.yml.
  const claims = (order.price_protection || []).map((c) => el("li", { className: c.overdue ? "ws-claim overdue" : "ws-claim", dataset: { claim: c.claim_id } },
    `${c.text} · ${c.window}`, c.overdue ? el("span", { className: "badge danger" }, c.overdue_text) : null));
  return el("li", { className: "ws-order", dataset: { order: order.order_id } },
    el("div", {}, el("strong", {}, order.order_id), ` ${order.status_label}`, order.late ? el("span", { className: "badge danger" }, `延误${order.days_late}天`) : null),
    el("div", { className: "meta" }, `${order.summary} · ${order.paid} · ${order.payment_method_label || ""}`),
    ship ? el("div", { className: "meta" }, `${ship.carrier_name} ${ship.tracking_number}${ship.latest ? " · " + ship.latest : ""}`) : null,
    items, claims.length ? el("ul", { className: "ws-claims" }, ...claims) : null, buttons, status);
}

function renderWorkspace(data) {
  const c = data.customer;
  const callbackStatus = el("div", { className: "ws-status" });
  const note = el("input", { className: "ws-callback-note", placeholder: "回访备注（可选）", maxlength: "2000" });
  const requestId = workspaceRequestId();
  workspacePanel().replaceChildren(
    el("h2", {}, "顾客信息"),
    el("div", { className: "ws-customer" }, el("strong", {}, `${c.name} `), `${c.tier_name}（${c.tier}）· 积分 ${data.points.balance}`),
    el("div", { className: "meta" }, `${c.customer_id} · ${c.phone}`),
    el("div", { className: "ws-actions" }, note, el("button", { type: "button", className: "ws-callback",
      onclick: () => workspaceAct("callback", { note: note.value, request_id: requestId }, callbackStatus) }, "预约回访")),
    callbackStatus,
    el("h3", {}, "订单"),
    el("ul", { className: "ws-orders" }, ...(data.orders.length ? data.orders.map(orderCard) : [el("li", {}, "无")])),
    el("h3", {}, "退货与退款"),
    el("ul", { className: "ws-returns" }, ...(data.returns.length ? data.returns.map((r) => el("li", {},
      `${r.return_id} ${r.status_label} · ${r.items} · ${r.refund}` + (r.refund_expected_by ? ` · 预计 ${r.refund_expected_by} 前到账` : ""))) : [el("li", {}, "无")])),
    el("h3", {}, "以往会话（全渠道）"),
    el("ul", { className: "ws-conversations" }, ...(data.conversations.length ? data.conversations.map((x) => el("li", {},
      el("div", { className: "who" }, `${clock(x.enqueued_at)} · ${x.channel_name} · ${x.agent_name || "未接入"} · ${x.reason_label || ""}`),
      ...x.turns.map((t) => el("div", { className: "meta" }, `${t.from === "shopper" ? "顾客" : t.from === "agent" ? "客服" : "系统"}：${t.text}`)))) : [el("li", {}, "无")])),
  );
}

async function loadWorkspace(customerId) {
  workspace.customer = customerId;
  const panel = workspacePanel();
  if (!customerId) {
    panel.replaceChildren(el("h2", {}, "顾客信息"), el("p", { className: "hint" }, "顾客未登录或未验证身份。"));
    return;
  }
  try {
    const data = await api("GET", `/api/customers/${encodeURIComponent(customerId)}/overview`);
    if (workspace.customer === customerId) renderWorkspace(data);
  } catch (error) {
    panel.replaceChildren(el("h2", {}, "顾客信息"), el("p", { className: "hint" }, error.message));
  }
}

// Show the workspace whenever the console opens a conversation.
const openConversationBeforeWorkspace = openConversation;
openConversation = async function (sender) {  // eslint-disable-line no-global-assign
  await openConversationBeforeWorkspace(sender);
  if (state.selected === sender && state.conversation) loadWorkspace(state.conversation.handoff.customer_id || "");
};
