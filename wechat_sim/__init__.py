"""A simulated WeChat server for trying and testing the ``wechat`` channel without a real account.

It plays both sides WeChat plays for an official account (公众号), following Tencent's
documentation for plaintext mode and, with an EncodingAESKey, safe mode (安全模式: messages, passive
replies and the URL verification encrypted):

- the **API** the account's server calls: ``GET /cgi-bin/token`` (access tokens with
  ``expires_in``; each new token retires the previous ones after a grace period) and
  ``POST /cgi-bin/message/custom/send`` (customer-service messages, with WeChat's error codes);
- the **phone**: ``POST /sim/send`` turns a shopper's text or event into the signed XML POST WeChat
  sends to the account's server URL (timestamp, nonce, signature, MsgId; 5 s timeout and retries),
  and ``GET /sim/inbox/{openid}`` lists everything that shopper received, passive replies and
  customer-service messages in order. ``/`` is a small chat page to play the shopper in a browser.

Run it with ``python -m wechat_sim serve`` (see :mod:`wechat_sim.__main__`).
"""
