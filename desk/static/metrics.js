// The metrics page: tiles and horizontal bar charts drawn from GET /api/metrics (no chart library).
"use strict";

const token = sessionStorage.getItem("desk.token") || "";
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  const s = Math.round(value);
  return s < 60 ? `${s}秒` : `${Math.floor(s / 60)}分${String(s % 60).padStart(2, "0")}秒`;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

function bars(container, rows, alt) {
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  container.replaceChildren(...rows.map((r) => {
    const row = el("div", "bar-row");
    const track = el("div", "bar-track");
    const bar = el("div", alt ? "bar alt" : "bar");
    bar.style.width = `${((r.value || 0) / max) * 100}%`;
    track.append(bar);
    row.append(el("span", "", r.label), track, el("span", "bar-value", r.text));
    return row;
  }));
}

function tile(label, value, bad) {
  const node = el("div", bad ? "tile bad" : "tile");
  node.append(el("div", "value", value), el("div", "label", label));
  return node;
}

async function load() {
  $("metrics-error").textContent = "";
  if (!token) { $("metrics-error").textContent = "请先在工作台登录。"; return; }
  let response;
  try {
    response = await fetch(`/api/metrics?days=${$("days").value}`, { headers: { Authorization: `Bearer ${token}` } });
  } catch (error) {
    $("metrics-error").textContent = "网络连接中断，请稍后刷新。";
    return;
  }
  const data = await response.json();
  if (!response.ok) { $("metrics-error").textContent = data.error ? data.error.message : "加载失败"; return; }
  const fr = data.first_response;
  $("tiles").replaceChildren(
    tile("会话数", String(data.conversations)),
    tile("转人工率", percent(data.handoff_rate)),
    tile("人工接入 / 回访工单", `${data.handoffs} / ${data.callbacks}`),
    tile("当前排队", String(data.queue.waiting)),
    tile("在线客服（空闲名额）", `${data.queue.agents_online}（${data.queue.free_slots}）`),
    tile(`首次响应中位数（目标 ${seconds(fr.target_s)}）`, seconds(fr.p50_s), fr.p50_s !== null && fr.p50_s > fr.target_s),
    tile("首响超时次数", String(fr.breaches), fr.breaches > 0),
    tile("售后100分超时", `${data.after_sales.breaches} / ${data.after_sales.resolved}`, data.after_sales.breaches > 0),
    tile("满意度均分（评价数）", data.satisfaction.mean === null ? "—" : `${data.satisfaction.mean}（${data.satisfaction.count}）`),
    tile("待回访（已超时）", `${data.callbacks_open.open}（${data.callbacks_open.overdue}）`, data.callbacks_open.overdue > 0),
  );
  bars($("chart-reasons"), data.by_reason.map((r) => ({ label: r.label, value: r.count, text: `${r.count} · ${percent(r.rate)}` })));
  bars($("chart-times"), [
    { label: "等待 中位数", value: data.waiting.p50_s, text: seconds(data.waiting.p50_s) },
    { label: "等待 P95", value: data.waiting.p95_s, text: seconds(data.waiting.p95_s) },
    { label: "首次响应 中位数", value: fr.p50_s, text: seconds(fr.p50_s) },
    { label: "处理 中位数", value: data.handling.p50_s, text: seconds(data.handling.p50_s) },
    { label: "处理 P95", value: data.handling.p95_s, text: seconds(data.handling.p95_s) },
  ], true);
  bars($("chart-ratings"), ["5", "4", "3", "2", "1"].map((s) => ({ label: `${s} 分`, value: data.satisfaction.distribution[s], text: String(data.satisfaction.distribution[s]) })));
  bars($("chart-days"), data.days.map((d) => ({ label: d.date.slice(5), value: d.conversations, text: `${d.handoffs + d.callbacks}/${d.conversations}` })), true);
}

$("days").addEventListener("change", load);
load();
setInterval(load, 15000);
