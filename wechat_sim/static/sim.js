// The chat page of the simulated WeChat: plays one WeChat user, shows what that user received.
(function () {
  "use strict";
  var chat = document.getElementById("chat");
  var openidLabel = document.getElementById("openid");
  var last = 0;
  var polling = null;

  function newOpenid() {
    var chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    var bytes = new Uint8Array(27);
    window.crypto.getRandomValues(bytes);
    var id = "o";
    for (var i = 0; i < bytes.length; i++) { id += chars[bytes[i] % chars.length]; }
    return id;
  }

  var openid = window.localStorage.getItem("wechat-sim-openid") || newOpenid();
  window.localStorage.setItem("wechat-sim-openid", openid);

  function post(path, body) {
    return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (answer) { return answer.json(); });
  }

  function show(entry) {
    var row = document.createElement("div");
    row.className = "row " + entry.kind;
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    if (entry.kind === "custom") {
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = "客服消息";
      bubble.appendChild(label);
    }
    bubble.appendChild(document.createTextNode(entry.text));
    row.appendChild(bubble);
    chat.appendChild(row);
    chat.scrollTop = chat.scrollHeight;
  }

  function refresh() {
    return fetch("/sim/inbox/" + encodeURIComponent(openid) + "?include_sent=1&after=" + last)
      .then(function (answer) { return answer.json(); })
      .then(function (body) {
        body.messages.forEach(function (entry) { last = Math.max(last, entry.seq); show(entry); });
      })
      .catch(function () { /* the simulator restarted: try again at the next tick */ });
  }

  function start() {
    openidLabel.textContent = openid;
    chat.textContent = "";
    last = 0;
    if (polling) { window.clearInterval(polling); }
    refresh();
    polling = window.setInterval(refresh, 1000);
  }

  function send(body) {
    body.openid = openid;
    post("/sim/send", body).then(refresh, refresh);
    window.setTimeout(refresh, 150);
  }

  document.getElementById("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("text");
    var text = input.value;
    if (!text.trim()) { return; }
    input.value = "";
    send({text: text});
  });
  document.getElementById("subscribe").addEventListener("click", function () { send({event: "subscribe"}); });
  document.getElementById("image").addEventListener("click", function () { send({msgtype: "image"}); });
  document.getElementById("new-user").addEventListener("click", function () {
    openid = newOpenid();
    window.localStorage.setItem("wechat-sim-openid", openid);
    start();
  });
  document.getElementById("bind").addEventListener("click", function () {
    var customer = document.getElementById("customer").value.trim();
    post("/sim/bind-demo", {openid: openid, customer_id: customer}).then(function (body) {
      show({kind: "notice", text: body.http_status === 200 ? "（演示）商城已把这个微信绑定到 " + customer : "（演示）绑定失败：" + JSON.stringify(body)});
    });
  });
  start();
}());
