// The NLU inbox (supervisors): the shoppers' messages the bot did not understand, masked, with a label picker.
// Uses the console's helpers ($, el, api, clock from console.js); shopper text is inserted as text, never as HTML.
"use strict";

const inbox = { intents: [], filter: "unlabelled" };

function percent(value) {
  return `${Math.round((Number(value) || 0) * 100)}%`;
}

function understood(item) {
  if (item.intent === "nlu_fallback") {
    const closest = item.ranking && item.ranking[0];
    return closest ? `没能理解（最接近：${closest.label || closest.name} ${percent(closest.confidence)}）` : "没能理解";
  }
  return `${item.intent_label}（把握 ${percent(item.confidence)}）`;
}

function labelledText(item) {
  return item.label ? `已标注为「${item.label_name}」（${item.labelled_by} · ${clock(item.labelled_at)}）` : "";
}

function inboxRow(item) {
  const picker = el("select", { className: "label-picker", "aria-label": "正确的意图" },
    el("option", { value: "" }, "请选择正确的意图…"),
    ...inbox.intents.map((i) => el("option", { value: i.name, selected: i.name === item.label }, `${i.label}（${i.name}）`)));
  const done = el("div", { className: "meta labelled-as" }, labelledText(item));
  const error = el("div", { className: "error" });
  const save = el("button", { type: "button", className: "primary label-save", onclick: async () => {
    error.textContent = "";
    if (!picker.value) { error.textContent = "请先选择这句话的正确意图。"; return; }
    save.disabled = true;
    try {
      const result = await api("POST", `/api/nlu/inbox/${encodeURIComponent(item.id)}/label`, { intent: picker.value });
      Object.assign(item, result.item);
      done.textContent = `${result.status === "unchanged" ? "未改动，" : "已保存，"}${labelledText(item)}`;
      row.classList.add("labelled");
      loadInboxCounts();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  } }, "保存");
  const row = el("tr", { className: "inbox-item" + (item.label ? " labelled" : ""), dataset: { id: item.id } },
    el("td", {}, clock(item.at)),
    el("td", { className: "inbox-text" }, item.text),
    el("td", {}, understood(item), item.entities.length ? el("div", { className: "meta" }, `识别到：${item.entities.join("、")}`) : null),
    el("td", {}, item.reason_labels.join("；")),
    el("td", {}, el("div", { className: "row" }, picker, " ", save), done, error));
  return row;
}

function showCounts(data) {
  $("inbox-counts").textContent = `共 ${data.total} 句，已标注 ${data.labelled} 句`;
  const waiting = data.total - data.labelled;
  $("inbox-badge").hidden = waiting <= 0;
  $("inbox-badge").textContent = waiting > 0 ? String(waiting) : "";
}

async function loadInboxCounts() {
  try { showCounts(await api("GET", "/api/nlu/inbox?limit=1")); } catch (error) { /* the list shows the error */ }
}

async function loadInbox() {
  $("inbox-error").textContent = "";
  let data;
  try {
    data = await api("GET", `/api/nlu/inbox?status=${inbox.filter}&limit=200`);
  } catch (error) {
    $("inbox-error").textContent = error.message;
    return;
  }
  inbox.intents = data.intents;
  $("inbox-retention").textContent = `顾客原话已脱敏，保留 ${data.retention_days} 天；识别把握低于 ${percent(data.confidence_threshold)} 的也会收进来。`;
  showCounts(data);
  $("inbox-rows").replaceChildren(...data.items.map(inboxRow));
  $("inbox-empty").hidden = data.items.length > 0;
  $("inbox-empty").textContent = inbox.filter === "labelled" ? "还没有标注过的语句。" : "太好了，暂时没有需要标注的语句。";
}

$("inbox-filter").addEventListener("change", (event) => { inbox.filter = event.target.value; loadInbox(); });
$("inbox-refresh").addEventListener("click", loadInbox);
// The badge counts what waits for a label as soon as the console shows the tab (to supervisors).
new MutationObserver(() => { if (!$("tab-inbox").hidden) loadInboxCounts(); })
  .observe($("tab-inbox"), { attributes: true, attributeFilter: ["hidden"] });
