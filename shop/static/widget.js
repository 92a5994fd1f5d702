/* The shop's chat widget: Rasa's socket.io protocol (connectors/web.py), no framework.
 *
 * - session_request carries the session id kept in localStorage and customData with the customer id
 *   and signature the shop's backend put in the page, plus the id of the last pushed message seen,
 *   so a reload resumes the conversation and replays what arrived while the page was closed.
 * - bot_uttered messages are rendered as bot, human agent ("人工客服 小王") or system notices; pushed
 *   messages carry an id and are shown once even when they arrive twice.
 * - Buttons send their payload and show their title; a typing indicator runs until turn_done.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("shop-config").textContent);
  var storageKey = "shop-chat:" + (config.customer_id || "anonymous");
  var HISTORY_LIMIT = 200;
  var TYPING_GUARD_MS = 30000;
  var RESET_CODES = { conversation_forbidden: true, invalid_sender: true, no_session: true };

  var el = {
    launcher: document.getElementById("chat-launcher"),
    panel: document.getElementById("chat-panel"),
    close: document.getElementById("chat-close"),
    log: document.getElementById("chat-log"),
    typing: document.getElementById("chat-typing"),
    status: document.getElementById("chat-status"),
    form: document.getElementById("chat-form"),
    input: document.getElementById("chat-input"),
  };

  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(storageKey) || "{}");
      return { session_id: saved.session_id || null, last_id: saved.last_id || null, history: saved.history || [], open: !!saved.open,
               conversation_token: saved.conversation_token || null };
    } catch (error) {
      return { session_id: null, last_id: null, history: [], open: false, conversation_token: null };
    }
  }

  var state = load();
  var seen = {};
  state.history.forEach(function (item) { if (item.id) { seen[item.id] = true; } });

  function save() {
    state.history = state.history.slice(-HISTORY_LIMIT);
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(state));
    } catch (error) { /* private mode: the session lasts as long as the page */ }
  }

  // Outbox ids are Redis stream ids "<ms>-<seq>": compare them as numbers.
  function later(a, b) {
    if (!b) { return true; }
    var x = a.split("-").map(Number), y = b.split("-").map(Number);
    return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
  }

  function node(tag, className, text) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    if (text !== undefined && text !== null) { element.textContent = text; }
    return element;
  }

  function scrollDown() { el.log.scrollTop = el.log.scrollHeight; }

  function buttonsOf(message) {
    if (Array.isArray(message.buttons) && message.buttons.length) { return message.buttons; }
    if (Array.isArray(message.quick_replies) && message.quick_replies.length) { return message.quick_replies; }
    return [];
  }

  function render(item, live) {
    var kind = item.kind;
    var row = node("div", "msg " + kind);
    if (item.id) { row.setAttribute("data-id", item.id); }
    if (kind === "agent") {
      row.appendChild(node("div", "who", "人工客服 " + (item.agent || "")));
    } else if (kind === "bot") {
      row.appendChild(node("div", "who", "智能客服"));
    }
    if (item.text) { row.appendChild(node("div", "bubble", item.text)); }
    if (item.image) {
      var image = node("img", "image");
      image.src = item.image;
      image.alt = "图片";
      row.appendChild(image);
    }
    if (item.buttons && item.buttons.length) {
      var group = node("div", "buttons");
      item.buttons.forEach(function (button) {
        var choice = node("button", "choice", button.title);
        choice.type = "button";
        choice.disabled = !!item.used;
        choice.addEventListener("click", function () {
          if (item.used) { return; }
          item.used = true;
          Array.prototype.forEach.call(group.querySelectorAll("button"), function (b) { b.disabled = true; });
          save();
          send(button.payload || button.title, button.title);
        });
        group.appendChild(choice);
      });
      row.appendChild(group);
    }
    el.log.appendChild(row);
    if (live) { scrollDown(); }
  }

  function remember(item) {
    state.history.push(item);
    save();
    render(item, true);
  }

  function kindOf(message) {
    if (message.error) { return "system error"; }
    if (message.from === "agent") { return "agent"; }
    if (message.from === "system") {
      var queued = (message.handoff && message.handoff.status === "queued") || message.queue_position !== undefined;
      return queued ? "system queue" : "system";
    }
    return "bot";
  }

  function receive(message) {
    if (!message || typeof message !== "object") { return; }
    if (message.id) {
      if (seen[message.id]) { return; }
      seen[message.id] = true;
      if (later(message.id, state.last_id)) { state.last_id = message.id; }
    }
    var image = message.image || (message.attachment && message.attachment.payload && message.attachment.payload.src) || null;
    var item = { kind: kindOf(message), text: message.text || "", agent: message.agent || "", id: message.id || null,
                 buttons: buttonsOf(message).map(function (b) { return { title: b.title, payload: b.payload }; }), image: image };
    if (!item.text && !item.image && !item.buttons.length) { return; }
    remember(item);
  }

  // --- typing indicator --------------------------------------------------------------------------
  var typingTimer = null;
  function typing(on) {
    el.typing.hidden = !on;
    window.clearTimeout(typingTimer);
    if (on) {
      typingTimer = window.setTimeout(function () { el.typing.hidden = true; }, TYPING_GUARD_MS);
      scrollDown();
    }
  }

  // --- socket --------------------------------------------------------------------------------------
  // format=shop: the channel's richer messages (sender, outbox id, agent name); standard clients get Rasa's format.
  var socket = window.io(config.socket_url, { path: config.socket_path || "/socket.io", transports: ["websocket"], query: { format: "shop" } });
  var confirmed = false;
  var outbox = [];

  function customData() {
    var data = { last_message_id: state.last_id };
    if (config.identity_token) {
      data.identity_token = config.identity_token;
    } else if (state.conversation_token) {
      data.conversation_token = state.conversation_token;  // proves this browser started the anonymous chat
    }
    return data;
  }

  function requestSession() {
    confirmed = false;
    socket.emit("session_request", { session_id: state.session_id, customData: customData() });
  }

  function setStatus(text, online) {
    el.status.textContent = text;
    el.status.classList.toggle("online", !!online);
  }

  socket.on("connect", function () {
    setStatus("连接中…", false);
    requestSession();
  });
  socket.on("disconnect", function () { setStatus("连接已断开，正在重连…", false); typing(false); });
  socket.on("connect_error", function () { setStatus("暂时连不上客服，正在重试…", false); });

  socket.on("session_confirm", function (data) {
    var id = data && typeof data === "object" ? data.session_id : data;
    if (state.session_id && state.session_id !== id) {
      state.history = [];
      state.last_id = null;
      seen = {};
      el.log.textContent = "";
    }
    state.session_id = id;
    if (data && typeof data === "object" && data.conversation_token) {
      state.conversation_token = data.conversation_token;
    } else if (config.identity_token) {
      state.conversation_token = null;
    }
    save();
    confirmed = true;
    setStatus("在线", true);
    while (outbox.length) { emitMessage(outbox.shift()); }
  });

  socket.on("error", function (data) {
    var code = data && data.code;
    remember({ kind: "system error", text: (data && data.message) || "抱歉，出了点问题，请稍后再试。" });
    typing(false);
    if (RESET_CODES[code]) {  // this session cannot be used: start a new one
      state.session_id = null;
      state.last_id = null;
      save();
      requestSession();
    }
  });

  socket.on("bot_uttered", function (message) {
    receive(message);
    if (message && message.error && RESET_CODES[message.error]) {
      state.session_id = null;
      save();
      requestSession();
    }
  });

  socket.on("turn_done", function () { typing(false); });

  function send(payload, shown) {
    var text = (payload || "").trim();
    if (!text) { return; }
    remember({ kind: "user", text: shown || text });
    typing(true);
    if (confirmed && socket.connected) {
      emitMessage(text);
    } else {
      outbox.push(text);
    }
  }

  function emitMessage(text) {
    socket.emit("user_uttered", { message: text, session_id: state.session_id, customData: customData() });
  }

  // --- page ----------------------------------------------------------------------------------------
  function setOpen(open) {
    el.panel.hidden = !open;
    el.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    el.launcher.hidden = open;
    state.open = open;
    save();
    if (open) {
      scrollDown();
      el.input.focus();
    }
  }

  el.launcher.addEventListener("click", function () { setOpen(true); });
  el.close.addEventListener("click", function () { setOpen(false); });
  el.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = el.input.value;
    el.input.value = "";
    send(text);
  });

  state.history.forEach(function (item) { render(item, false); });
  setOpen(state.open);
})();
