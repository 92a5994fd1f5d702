"""Price-protection claims (价保): ``POST`` and ``GET /api/orders/{order_id}/price-protection``.

A claim refunds the difference of the order's lines whose price dropped, as the rule of
:mod:`bot.price_protection` decides it over the order's JSON form and the shop's policy
(``crm/policy/price_protection.yml``): to the order's payment method, within the working days the
policy gives that method. Each order line is protected once (a unique constraint). A refusal is
a 409 ``not_allowed`` whose ``reason`` says why (``not_paid``, ``window_passed``,
``already_claimed``, ``excluded_price_kind``, ``no_price_drop``, ``returned``) and whose
``details`` carry the facts (the window's end, each line's reason).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.price_protection import Assessment, assess, refund_timing
from crm.clock import iso_date, iso_datetime
from crm.errors import ApiError, conflict
from crm.models import PriceProtectionClaim, PriceProtectionLine
from crm.service import Context, _new_id, _order, _order_json, _require_order
from crm.texts import texts as crm_texts
from crm.vocab import PAYMENT_METHOD_LABELS


def texts() -> Dict[str, Any]:
    """The API's messages (the ``price_protection`` section of ``crm/texts.yml``)."""
    return crm_texts()["price_protection"]


def claim_json(record: PriceProtectionClaim, tz: dt.tzinfo, policy: Mapping[str, Any]) -> Dict[str, Any]:
    """A claim with its lines, where the difference goes and by when."""
    timing = refund_timing(policy, record.refund_method, record.refund_expected_from)
    return {
        "claim_id": record.claim_id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "status": record.status,
        "status_label": texts()["claim_status"].get(record.status, record.status),
        "refund_fen": record.refund_fen,
        "refund_method": record.refund_method,
        "refund_method_label": PAYMENT_METHOD_LABELS.get(record.refund_method, record.refund_method),
        "refund_timing": timing.timing,
        "refund_expected_from": iso_date(record.refund_expected_from),
        "refund_expected_by": iso_date(record.refund_expected_by),
        "created_at": iso_datetime(record.created_at, tz),
        "lines": [
            {
                "line_id": line.line_id,
                "sku": line.sku,
                "product_name": line.product_name,
                "quantity": line.quantity,
                "paid_unit_fen": line.paid_unit_fen,
                "current_price_fen": line.current_price_fen,
                "refund_fen": line.refund_fen,
            }
            for line in record.lines
        ],
    }


def _claimed_lines(session: Session, order_id: str) -> List[int]:
    return [int(line) for line in session.execute(select(PriceProtectionLine.line_id).where(PriceProtectionLine.order_id == order_id)).scalars()]


def refusal(assessment: Assessment, policy: Mapping[str, Any], tz: dt.tzinfo) -> ApiError:
    """The 409 of an assessment that protects nothing."""
    reason = assessment.reason or "no_price_drop"
    ends = assessment.window_ends_at.astimezone(tz) if assessment.window_ends_at is not None else None
    kinds = "、".join(sorted({line.price_kind or "" for line in assessment.refused("excluded_price_kind")}))
    message = texts()["refusals"][reason].format(
        order_id=assessment.order_id, days=policy["window_days"], kinds=kinds,
        ends=f"{ends.year}年{ends.month}月{ends.day}日 {ends:%H:%M}" if ends is not None else "",
    )
    details = {
        "window_ends_at": ends.isoformat(timespec="seconds") if ends is not None else None,
        "lines": [{"line_id": line.line_id, "reason": line.reason, "current_price_fen": line.current_price_fen,
                   "current_price_kind": line.price_kind, "paid_unit_fen": line.paid_unit_fen} for line in assessment.lines],
    }
    return ApiError("not_allowed", message, reason=reason, details=details)


def _by_key(session: Session, ctx: Context, order_id: str, line_ids: Optional[Sequence[int]], key: str,
            policy: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    record = session.execute(select(PriceProtectionClaim).where(PriceProtectionClaim.idempotency_key == key)).scalar_one_or_none()
    if record is None:
        return None
    same_lines = line_ids is None or sorted(line_ids) == [line.line_id for line in record.lines]
    if record.order_id != order_id or not same_lines:
        raise conflict(texts()["key_reused"])
    return claim_json(record, ctx.tz, policy)


def claim(session: Session, ctx: Context, order_id: str, line_ids: Optional[Sequence[int]], key: str,
          policy: Mapping[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """File a claim for the order's protected lines (``line_ids``, or every line).

    Returns:
        The claim and whether this call filed it (the same key again returns the first claim).

    Raises:
        ApiError: 422 for a line not in the order; 409 ``not_allowed`` with the reason when nothing
            is protected; 409 ``conflict`` when the key was used for another claim.
    """
    record = _order(session, order_id, lock=True)
    existing = _by_key(session, ctx, order_id, line_ids, key, policy)
    if existing is not None:
        return existing, False
    known = {item.line_id for item in record.items}
    unknown = sorted(set(line_ids or ()) - known)
    if unknown:
        raise ApiError("invalid_argument", texts()["unknown_line"].format(order_id=order_id, line_id=unknown[0]), 422, reason="unknown_line")
    now = ctx.clock.now_utc()
    order = _order_json(session, ctx, record)
    assessment = assess(order, policy, now.replace(tzinfo=dt.timezone.utc), _claimed_lines(session, order_id), line_ids)
    if not assessment.protected:
        raise refusal(assessment, policy, ctx.tz)
    timing = refund_timing(policy, record.payment_method, ctx.clock.today())
    created = PriceProtectionClaim(
        claim_id=_new_id(session, PriceProtectionClaim, "PP", 10),
        order_id=order_id,
        customer_id=record.customer_id,
        refund_fen=assessment.refund_fen,
        refund_method=record.payment_method,
        refund_expected_from=timing.earliest,
        refund_expected_by=timing.latest,
        status="refunding",
        created_at=now,
        idempotency_key=key,
    )
    session.add(created)
    for line in assessment.protected:
        session.add(PriceProtectionLine(
            claim_id=created.claim_id, order_id=order_id, line_id=line.line_id, sku=line.sku, product_name=line.product_name,
            quantity=line.quantity, paid_unit_fen=line.paid_unit_fen, current_price_fen=line.current_price_fen,
            refund_fen=line.refund_fen,
        ))
    session.flush()
    session.refresh(created)
    return claim_json(created, ctx.tz, policy), True


def list_claims(session: Session, ctx: Context, order_id: str, policy: Mapping[str, Any]) -> Dict[str, Any]:
    """The claims of one order, newest first."""
    _require_order(session, order_id)
    records = session.execute(
        select(PriceProtectionClaim).where(PriceProtectionClaim.order_id == order_id)
        .order_by(PriceProtectionClaim.created_at.desc(), PriceProtectionClaim.claim_id.desc())
    ).scalars()
    items = [claim_json(record, ctx.tz, policy) for record in records]
    return {"items": items, "total": len(items)}

