"""The data a handoff carries: the request the bot sends and the callback ticket it may create.

Neither ever holds a shopper's personal data in clear: each masks its summary, its summary text and
its phone when it is made (:mod:`bot.pii`), also when it is read back from Redis, so the requests
stream, the handoff record and the callback ticket keep only masked text whoever wrote them (an
explicit 「转人工」 queued by a channel, the bot's action, a request written before masking).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from bot import logs, pii


@dataclass(frozen=True)
class HandoffRequest:
    """A shopper's conversation handed to the human queue, as the bot enqueues it.

    Attributes:
        handoff_id: unique id (:func:`handoff.keys.new_handoff_id`).
        sender: the conversation id.
        customer_id: the verified customer id, None for an anonymous shopper.
        tier: membership tier code (L1–L5), None when unknown.
        tier_name: the tier's Chinese name.
        reason: why the bot handed off (a code of the policy's ``reasons``).
        intents: what the shopper asked about, in order, without repeats.
        summary: the structured handoff summary.
        summary_text: the summary as the agent reads it, in Chinese.
        enqueued_at: epoch seconds when the shopper asked for a human.
        channel: the input channel (``app``, ``web``, ``wechat``).
        position_told: the queue position the shopper was told.
        refines: the request completes a handoff already queued under the same id (the channel
            queued an explicit request for a human first, :mod:`handoff.express`): the desk
            updates that entry's summary, tier, reason and priority instead of creating one.
        correlation_id: the turn that asked for the handoff (:mod:`bot.logs`; by default the one
            bound where the request is made, '' for none), under which the desk logs taking it in.
    """

    handoff_id: str
    sender: str
    customer_id: Optional[str]
    tier: Optional[str]
    tier_name: str
    reason: str
    intents: List[str]
    summary: Dict[str, Any]
    summary_text: str
    enqueued_at: float
    channel: str = "app"
    position_told: int = 0
    refines: bool = False
    correlation_id: str = field(default_factory=lambda: logs.correlation_id() or "")

    def __post_init__(self) -> None:
        """Mask the personal data of the summary and its text (idempotent: masked text stays as it is)."""
        object.__setattr__(self, "summary", pii.mask_value(self.summary))
        object.__setattr__(self, "summary_text", pii.mask_text(self.summary_text))
        object.__setattr__(self, "correlation_id", logs.valid_correlation_id(self.correlation_id) or "")

    def to_json(self) -> str:
        """The request as the JSON payload of the requests stream."""
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> HandoffRequest:
        """Parse a payload of the requests stream.

        Raises:
            ValueError: the payload is not a request.
        """
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("a handoff request is a JSON object")
        try:
            return cls(
                handoff_id=str(data["handoff_id"]),
                sender=str(data["sender"]),
                customer_id=data.get("customer_id") or None,
                tier=data.get("tier") or None,
                tier_name=str(data.get("tier_name") or ""),
                reason=str(data.get("reason") or "requested"),
                intents=[str(i) for i in data.get("intents") or []],
                summary=dict(data.get("summary") or {}),
                summary_text=str(data.get("summary_text") or ""),
                enqueued_at=float(data["enqueued_at"]),
                channel=str(data.get("channel") or "app"),
                position_told=int(data.get("position_told") or 0),
                refines=bool(data.get("refines")),
                correlation_id=str(data.get("correlation_id") or ""),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"incomplete handoff request: {error}") from error


@dataclass(frozen=True)
class CallbackTicket:
    """A promised callback: an agent contacts the shopper within the window.

    Attributes:
        callback_id: unique id (:func:`handoff.keys.new_callback_id`).
        sender: the conversation id (the agent may also answer there).
        customer_id: the verified customer id, None for an anonymous shopper.
        phone_masked: the phone to call, masked. The full number is deliberately not kept here, not
            even encrypted: the agent booked to call back reads it in the CRM under
            ``customer_id`` (or under the order the shopper proved with its phone tail), where it
            is kept and access-controlled anyway. A ticket in Redis then holds nothing an agent
            could not already see, and a number an anonymous shopper merely typed is not called
            (it proves nothing: anyone could make the shop ring a stranger); that shopper is
            answered in the conversation (``sender``).
        tier: membership tier code.
        reason: why the shopper wanted a human.
        summary: the structured handoff summary.
        summary_text: the summary as the agent reads it.
        window_start: epoch seconds, start of the promised window.
        window_end: epoch seconds, end of the promised window (the due time).
        created_at: epoch seconds.
        after_sales: whether the 100-minute after-sales target applies from the window's start.
    """

    callback_id: str
    sender: str
    customer_id: Optional[str]
    phone_masked: str
    tier: Optional[str]
    reason: str
    summary: Dict[str, Any]
    summary_text: str
    window_start: float
    window_end: float
    created_at: float
    after_sales: bool = False
    source_handoff: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Mask the phone, the summary and its text (idempotent)."""
        object.__setattr__(self, "phone_masked", pii.mask_phone(self.phone_masked))
        object.__setattr__(self, "summary", pii.mask_value(self.summary))
        object.__setattr__(self, "summary_text", pii.mask_text(self.summary_text))

    def fields(self) -> List[str]:
        """The ticket as a flat field/value list for HSET."""
        values: Dict[str, Any] = {
            "callback_id": self.callback_id,
            "sender": self.sender,
            "customer_id": self.customer_id or "",
            "phone_masked": self.phone_masked,
            "tier": self.tier or "",
            "reason": self.reason,
            "summary": json.dumps(self.summary, ensure_ascii=False),
            "summary_text": self.summary_text,
            "window_start": repr(self.window_start),
            "window_end": repr(self.window_end),
            "created_at": repr(self.created_at),
            "after_sales": "1" if self.after_sales else "0",
            "source_handoff": self.source_handoff,
            "status": "open",
        }
        return flat(values)


def flat(values: Mapping[str, Any]) -> List[str]:
    """A mapping as a flat ``[field, value, ...]`` list of strings (for HSET in scripts)."""
    out: List[str] = []
    for key, value in values.items():
        out.append(str(key))
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict | list):
            out.append(json.dumps(value, ensure_ascii=False))
        else:
            out.append(str(value))
    return out
