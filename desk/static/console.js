// The agent console: login → queue → claim → summary + transcript → live replies → resolve.
// Plain JavaScript, no external resources; shopper text is always inserted as text, never as HTML.
"use strict";

const state = {
  token: sessionStorage.getItem("desk.token") || "",
  me: null,
  socket: null,
  socketReady: false,
  selected: "",
  conversation: null,
  seen: new Set(),
  pending: new Map(),
  timers: [],
  requestSeq: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}秒`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}分${String(s % 60).padStart(2, "0")}秒`;
  return `${Math.floor(m / 60)}小时${m % 60}分`;
}

function timeParts(epoch) {
  const timeZone = (state.me && state.me.timezone) || undefined;
  const format = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return Object.fromEntries(format.formatToParts(new Date(epoch * 1000)).map((part) => [part.type, part.value]));
}

// Times are shown in the shop's timezone, whatever the agent's computer is set to.
function clock(epoch) {
  if (!epoch) return "";
  const at = timeParts(epoch);
  const today = timeParts(Date.now() / 1000);
  const hm = `${at.hour}:${at.minute}`;
  if (at.year === today.year && at.month === today.month && at.day === today.day) return hm;
  return `${Number(at.month)}月${Number(at.day)}日 ${hm}`;
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw { status: 0, code: "network", message: "网络连接中断，请检查网络后重试。" };
  }
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (response.status === 401 && path !== "/api/login") {
    logout(true);
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw { status: response.status, code: err.code || "error", message: err.message || "操作失败，请重试。", data: err };
  }
  return data;
}

// Login -------------------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const data = await api("POST", "/api/login", { username: $("login-username").value.trim(), password: $("login-password").value });
    state.token = data.token;
    sessionStorage.setItem("desk.token", data.token);
    $("login-password").value = "";
    await enterDesk();
  } catch (error) {
    $("login-error").textContent = error.message;
  } finally {
    $("login-submit").disabled = false;
  }
}

async function enterDesk() {
  state.me = await api("GET", "/api/me");
  $("login-view").hidden = true;
  $("nav").hidden = false;
  $("me").hidden = false;
  $("me-name").textContent = `客服${state.me.agent.display_name}（${state.me.agent.username}）`;
  $("tab-metrics").hidden = state.me.agent.role !== "supervisor";  // the metrics are for supervisors
  $("tab-inbox").hidden = state.me.agent.role !== "supervisor";  // so is the NLU inbox (nlu_inbox.js)
  const canned = $("canned");
  canned.replaceChildren(el("option", { value: "" }, "快捷回复…"));
  state.me.canned_replies.forEach((c, i) => canned.append(el("option", { value: String(i) }, c.title)));
  const codes = $("resolve-code");
  codes.replaceChildren(...state.me.resolution_codes.map((c) => el("option", { value: c.code }, c.label)));
  showView("desk");
  connect();
  await refreshQueue();
  state.timers.push(setInterval(refreshQueue, 5000));
  state.timers.push(setInterval(heartbeat, (state.me.heartbeat_s || 10) * 1000));
  state.timers.push(setInterval(tickWaits, 1000));
}

async function logout(expired) {
  if (!expired && state.token) {
    try { await api("POST", "/api/logout"); } catch (error) { /* already logged out */ }
  }
  state.token = "";
  sessionStorage.removeItem("desk.token");
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.socket) state.socket.close();
  state.socket = null;
  location.reload();
}

function heartbeat() {
  if (state.socketReady) state.socket.send(JSON.stringify({ type: "heartbeat" }));
  else api("POST", "/api/presence").catch(() => {});
}

// Live updates ------------------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
  state.socket = socket;
  socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", token: state.token })));
  socket.addEventListener("message", (event) => onEvent(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    state.socketReady = false;
    $("live-dot").classList.remove("on");
    if (event.code === 4401 && state.token && state.socket === socket) { logout(true); return; }  // the session ended
    if (state.token && state.socket === socket) setTimeout(connect, 2000);
  });
}

function onEvent(event) {
  switch (event.type) {
    case "hello":
      state.socketReady = true;
      $("live-dot").classList.add("on");
      break;
    case "message":
      if (event.sender === state.selected) addEntry(event.entry);
      refreshQueue();
      break;
    case "note":
      if (event.sender === state.selected) addNote(event.note);
      break;
    case "reply_result": {
      const resolve = state.pending.get(event.request_id);
      if (resolve) { state.pending.delete(event.request_id); resolve(event); }
      break;
    }
    case "claimed": case "resolved": case "transferred": case "cancelled": case "refined":
      refreshQueue();
      if (event.sender === state.selected) openConversation(state.selected);
      break;
    default:
      refreshQueue();
  }
}

// Queue -------------------------------------------------------------------------------------------

let lastQueue = null;

async function refreshQueue() {
  if (!state.token) return;
  try {
    lastQueue = await api("GET", "/api/queue");
  } catch (error) {
    return;
  }
  lastQueue.receivedAt = Date.now() / 1000;
  renderQueue();
}

function renderQueue() {
  const q = lastQueue;
  const list = $("queue-list");
  list.replaceChildren(...q.waiting.map(queueCard));
  $("queue-count").textContent = q.waiting.length;
  $("queue-empty").hidden = q.waiting.length > 0;
  $("mine-list").replaceChildren(...q.mine.map(mineCard));
  $("mine-count").textContent = q.mine.length;
  $("mine-empty").hidden = q.mine.length > 0;
  $("agent-list").replaceChildren(...q.agents.map((a) => el("li", {},
    el("span", { className: a.online ? "dot on" : "dot" }), `${a.display_name}（${a.username}）`,
    el("span", { className: "count" }, a.online ? `${a.load}/${a.capacity}` : "离线"))));
  const badge = $("overdue-badge");
  badge.hidden = !q.callbacks_overdue;
  badge.textContent = q.callbacks_overdue || "";
}

function elapsed() {
  return lastQueue ? Date.now() / 1000 - lastQueue.receivedAt : 0;
}

function tickWaits() {
  document.querySelectorAll("[data-wait]").forEach((node) => {
    const wait = Number(node.dataset.wait) + elapsed();
    const due = Number(node.dataset.due) - elapsed();
    node.textContent = `已等 ${duration(wait)}` + (due < 0 ? `（超出首响目标 ${duration(-due)}）` : "");
    node.classList.toggle("late", due < 0);
  });
}

function queueCard(item) {
  const offer = item.offered_to
    ? el("div", { className: "offer" }, item.offered_to_me ? `老顾客，优先分配给您（剩 ${Math.ceil(item.offer_left_s)} 秒）`
      : `优先分配给 ${item.offered_to_name}（剩 ${Math.ceil(item.offer_left_s)} 秒）`)
    : null;
  const due = item.first_response_due_in_s;
  return el("li", { className: "card queue-item" + (item.sender === state.selected ? " selected" : ""), dataset: { sender: item.sender },
    onclick: () => openConversation(item.sender) },
    el("div", { className: "row" },
      el("strong", {}, `${item.position}. ${item.who.name || "匿名顾客"}`),
      el("span", { className: `lane ${item.lane}` }, item.lane_label)),
    el("div", { className: "meta" }, [item.team_name && `${item.team_name}组`, item.tier_name, item.who.verified ? "已验证" : "未验证",
      item.reason_label].filter(Boolean).join(" · ")),
    item.headline ? el("div", { className: "meta" }, `诉求：${item.headline}`) : null,
    item.my_team === false ? el("div", { className: "meta" }, `仅${item.team_name}组客服和主管可接入`) : null,
    el("div", { className: "row" },
      el("span", { className: due < 0 ? "meta late" : "meta", dataset: { wait: item.waiting_s, due: due } },
        `已等 ${duration(item.waiting_s)}`),
      el("button", { type: "button", className: "primary claim-button", disabled: !item.claimable,
        onclick: (e) => { e.stopPropagation(); claim(item.sender); } }, "接入")),
    offer);
}

function mineCard(item) {
  return el("li", { className: "card mine-item" + (item.sender === state.selected ? " selected" : ""), dataset: { sender: item.sender },
    onclick: () => openConversation(item.sender) },
    el("div", { className: "row" }, el("strong", {}, item.who.name || "匿名顾客"), el("span", { className: "meta" }, item.tier_name)),
    el("div", { className: "meta" }, item.reason_label + (item.awaiting_first_response ? " · 待首次回复" : "")),
    item.resolution_due_in_s !== null && item.resolution_due_in_s !== undefined
      ? el("div", { className: item.resolution_due_in_s < 0 ? "meta late" : "meta" },
        item.resolution_due_in_s < 0 ? `售后100分已超时 ${duration(-item.resolution_due_in_s)}` : `售后100分剩余 ${duration(item.resolution_due_in_s)}`)
      : null);
}

// Conversation ------------------------------------------------------------------------------------

const STATUS = { queued: "排队中", assigned: "服务中", resolved: "已结束", cancelled: "顾客已取消", callback: "已转回访" };

async function openConversation(sender) {
  state.selected = sender;
  $("conv-error").textContent = "";
  let data;
  try {
    data = await api("GET", `/api/conversations/${encodeURIComponent(sender)}`);
  } catch (error) {
    $("conv-error").textContent = error.message;
    return;
  }
  if (state.selected !== sender) return;
  state.conversation = data;
  const h = data.handoff;
  $("conversation-placeholder").hidden = true;
  $("conversation-body").hidden = false;
  $("side").hidden = false;
  const who = (data.summary && data.summary.who) || {};
  $("conv-title").textContent = `${who.name || "匿名顾客"} ${who.phone || ""}`;
  $("conv-status").textContent = STATUS[h.status] + (h.agent ? ` · 客服${data.agent_name || h.agent}` : "");
  $("summary").textContent = data.summary_text || "（没有摘要）";
  state.seen = new Set();
  $("transcript").replaceChildren();
  data.transcript.forEach(addEntry);
  $("notes").replaceChildren();
  data.notes.forEach(addNote);
  $("history").replaceChildren(...(data.history.length ? data.history.map((x) => el("li", {},
    el("span", { className: "who" }, `${clock(x.enqueued_at)} · ${x.agent_name || "未接入"}`),
    `${x.reason_label || ""} → ${labelOf(x.resolution_code) || STATUS[x.status] || x.status}` + (x.rating ? ` · 评分 ${x.rating}` : ""))) : [el("li", {}, "无")]));
  const mine = data.can_reply;
  $("claim-button").hidden = h.status !== "queued";
  $("resolve-box").hidden = !mine;
  $("transfer-box").hidden = !mine;
  $("reply-form").hidden = !mine;
  if (mine) fillTransferTargets();
  if (lastQueue) renderQueue();
}

function labelOf(code) {
  const found = state.me && state.me.resolution_codes.find((c) => c.code === code);
  return found ? found.label : code;
}

function fillTransferTargets() {
  const others = ((lastQueue && lastQueue.agents) || state.me.agents).filter((a) => a.username !== state.me.agent.username);
  $("transfer-to").replaceChildren(el("option", { value: "" }, "转给…"), ...others.map((a) => el("option", { value: a.username, disabled: !a.online },
    `${a.display_name}${a.online ? "" : "（离线）"}`)));
}

function addEntry(entry) {
  if (!entry || state.seen.has(entry.id)) return;
  state.seen.add(entry.id);
  const who = entry.from === "shopper" ? "顾客" : entry.from === "agent" ? `客服${entry.name || entry.agent || ""}` : "系统";
  const node = el("li", { className: `entry ${entry.from}`, dataset: { id: entry.id } },
    el("span", { className: "who" }, `${who} ${clock(entry.at)}`), entry.text);
  const list = $("transcript");
  const items = Array.from(list.children);
  const after = items.find((x) => idLess(entry.id, x.dataset.id));
  if (after) list.insertBefore(node, after); else list.append(node);
  list.scrollTop = list.scrollHeight;
}

function idLess(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am < bm || (am === bm && as < bs);
}

function addNote(note) {
  $("notes").append(el("li", {}, el("span", { className: "who" }, `${note.name} ${clock(note.at)}`), note.text));
}

async function claim(sender) {
  $("conv-error").textContent = "";
  try {
    await api("POST", `/api/conversations/${encodeURIComponent(sender)}/claim`);
  } catch (error) {
    await openConversation(sender);
    $("conv-error").textContent = error.data && error.data.agent_name ? `${error.message}（${error.data.agent_name}）` : error.message;
    refreshQueue();
    return;
  }
  await refreshQueue();
  await openConversation(sender);
  $("reply-text").focus();
}

function sendOverSocket(sender, text, clientId) {
  return new Promise((resolve, reject) => {
    const requestId = `r${++state.requestSeq}`;
    const timer = setTimeout(() => { state.pending.delete(requestId); reject(new Error("timeout")); }, 5000);
    state.pending.set(requestId, (result) => { clearTimeout(timer); resolve(result); });
    state.socket.send(JSON.stringify({ type: "reply", request_id: requestId, sender, text, client_id: clientId }));
  });
}

async function sendReply(event) {
  event.preventDefault();
  const text = $("reply-text").value.trim();
  if (!text) return;
  const sender = state.selected;
  // one id per reply: a retry after a lost answer (socket, then HTTP) is written once
  const clientId = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  $("reply-send").disabled = true;
  $("conv-error").textContent = "";
  try {
    let result;
    if (state.socketReady) {
      try {
        result = await sendOverSocket(sender, text, clientId);
      } catch (error) {
        result = null;
      }
    }
    if (!result) {
      result = { ok: true, ...(await api("POST", `/api/conversations/${encodeURIComponent(sender)}/messages`, { text, client_id: clientId })) };
    }
    if (!result.ok) throw result.error;
    $("reply-text").value = "";
    if (sender === state.selected) addEntry(result.entry);
  } catch (error) {
    $("conv-error").textContent = (error && error.message) || "发送失败，请重试。";
  } finally {
    $("reply-send").disabled = false;
  }
}

async function resolveConversation() {
  const code = $("resolve-code").value;
  const sender = state.selected;
  try {
    await api("POST", `/api/conversations/${encodeURIComponent(sender)}/resolve`, { code });
    await refreshQueue();
    await openConversation(sender);
  } catch (error) {
    $("conv-error").textContent = error.message;
  }
}

async function transferConversation() {
  const to = $("transfer-to").value;
  if (!to) return;
  try {
    await api("POST", `/api/conversations/${encodeURIComponent(state.selected)}/transfer`, { to });
    await refreshQueue();
    await openConversation(state.selected);
  } catch (error) {
    $("conv-error").textContent = error.message;
  }
}

async function addNoteFromForm(event) {
  event.preventDefault();
  const text = $("note-text").value.trim();
  if (!text) return;
  try {
    await api("POST", `/api/conversations/${encodeURIComponent(state.selected)}/notes`, { text });
    $("note-text").value = "";
  } catch (error) {
    $("conv-error").textContent = error.message;
  }
}

// Callbacks ---------------------------------------------------------------------------------------

async function loadCallbacks() {
  let data;
  try { data = await api("GET", "/api/callbacks"); } catch (error) { return; }
  const rows = data.callbacks.map((c) => {
    const select = el("select", { "aria-label": "处理结果" }, ...state.me.resolution_codes.map((r) => el("option", { value: r.code }, r.label)));
    const button = el("button", { type: "button", onclick: async () => {
      try {
        await api("POST", `/api/callbacks/${c.callback_id}/complete`, { code: select.value, note: "" });
        loadCallbacks();
        refreshQueue();
      } catch (error) { alert(error.message); }
    } }, "已回访");
    const due = c.overdue ? `已超时 ${duration(-c.due_in_s)}` : `${duration(c.due_in_s)}后到期`;
    return el("tr", { className: c.overdue ? "overdue" : "", dataset: { callback: c.callback_id } },
      el("td", {}, due),
      el("td", {}, `${clock(c.window_start)}–${clock(c.window_end).slice(-5)}`),
      el("td", {}, [c.phone_masked, c.tier].filter(Boolean).join(" · ") || "匿名顾客"),
      el("td", {}, c.reason_label + (c.after_sales ? " · 售后" : "")),
      el("td", {}, el("div", { className: "summary-text" }, c.summary_text)),
      el("td", {}, select, " ", button));
  });
  $("callback-rows").replaceChildren(...rows);
  $("callbacks-empty").hidden = rows.length > 0;
}

function showView(view) {
  $("desk-view").hidden = view !== "desk";
  $("callbacks-view").hidden = view !== "callbacks";
  $("inbox-view").hidden = view !== "inbox";
  document.querySelectorAll(".tab[data-view]").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  if (view === "callbacks") loadCallbacks();
  if (view === "inbox") loadInbox();
}

// Wiring ------------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", () => logout(false));
$("reply-form").addEventListener("submit", sendReply);
$("reply-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("reply-form").requestSubmit(); }
});
$("canned").addEventListener("change", (e) => {
  const reply = state.me.canned_replies[Number(e.target.value)];
  if (reply) { $("reply-text").value = reply.text; $("reply-text").focus(); }
  e.target.value = "";
});
$("claim-button").addEventListener("click", () => claim(state.selected));
$("resolve-button").addEventListener("click", resolveConversation);
$("transfer-button").addEventListener("click", transferConversation);
$("note-form").addEventListener("submit", addNoteFromForm);
document.querySelectorAll(".tab[data-view]").forEach((t) => t.addEventListener("click", () => showView(t.dataset.view)));

if (state.token) {
  enterDesk().catch(() => { state.token = ""; sessionStorage.removeItem("desk.token"); });
}
