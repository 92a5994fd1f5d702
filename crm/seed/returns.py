"""Returns: the reason, the lines, the refund and how far the return got by the cut-off."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional, Tuple

from bot.shop_calendar import add_working_days
from crm.seed.drafts import CustomerDraft, OrderDraft, ReturnDraft, Stamp
from crm.seed.orders import OrderMaker
from crm.seed_data import NOT_RETURNABLE_REASONS, RETURN_NOTES
from crm.vocab import SHOP_AT_FAULT_REASONS

REFUND_WORKING_DAYS = {"balance": 0, "points": 0, "wallet": 3, "bank_card": 7}


class ReturnMaker(OrderMaker):
    """Builds returns of signed orders."""

    def _random_return(self, customer: CustomerDraft, order: OrderDraft) -> Optional[ReturnDraft]:
        assert order.signed_at is not None
        reasons = ("quality_issue", "wrong_size", "not_as_described", "no_longer_wanted", "damaged_on_arrival", "other")
        reason = self.rng.choices(reasons, (20, 25, 12, 25, 8, 10))[0]
        eligible = [item for item in order.items if item.product[3] not in NOT_RETURNABLE_REASONS]
        if reason not in SHOP_AT_FAULT_REASONS and not eligible:
            reason = "quality_issue"
        candidates = order.items if reason in SHOP_AT_FAULT_REASONS else eligible
        chosen = self.rng.sample(candidates, self.rng.randint(1, len(candidates)))
        lines = sorted((item.line_id, self.rng.randint(1, item.quantity)) for item in chosen)
        window = 15 if reason in SHOP_AT_FAULT_REASONS else 7
        created = order.signed_at + dt.timedelta(minutes=self.rng.randint(60, window * 24 * 60 - 120))
        if created > self.cutoff:
            return None
        outcome = self.rng.random()
        stages: List[Tuple[str, Stamp]] = [("requested", created)]
        note = None
        method = order.payment_method
        received_plan = created + dt.timedelta(hours=self.rng.randint(40, 100))
        refund_day = add_working_days(
            received_plan.date(),
            self.rng.randint(1, 3) if method == "wallet" else self.rng.randint(3, 7) if method == "bank_card" else 0,
        )
        if outcome < 0.06:
            stages.append(("rejected", created + dt.timedelta(hours=self.rng.randint(3, 20))))
            note = RETURN_NOTES["rejected"]
        elif outcome < 0.12:
            stages.append(("cancelled", created + dt.timedelta(hours=self.rng.randint(1, 30))))
            note = RETURN_NOTES["cancelled"]
        else:
            approved = created + dt.timedelta(minutes=self.rng.randint(20, 12 * 60))
            picked = approved + dt.timedelta(hours=self.rng.randint(12, 30))
            received = max(received_plan, picked + dt.timedelta(hours=12))
            refunded = (
                received + dt.timedelta(minutes=self.rng.randint(5, 60))
                if refund_day <= received.date()
                else self._at(refund_day, self.rng.randint(9, 20), self.rng.randint(0, 59))
            )
            stages += [("approved", approved), ("picked_up", picked), ("received", received), ("refunded", refunded)]
        happened = [stage for stage in stages if stage[1] <= self.cutoff]
        status, updated = happened[-1]
        return self._return_draft(
            order,
            lines,
            reason,
            status,
            created,
            updated,
            refunded_at=updated if status == "refunded" else None,
            note=note,
            expected=add_working_days(received_plan.date(), REFUND_WORKING_DAYS[method]),
        )

    def _return_draft(
        self,
        order: OrderDraft,
        lines: List[Tuple[int, int]],
        reason: str,
        status: str,
        created: Stamp,
        updated: Stamp,
        *,
        refunded_at: Optional[Stamp] = None,
        note: Optional[str] = None,
        expected: Optional[dt.date] = None,
        return_id: Optional[str] = None,
    ) -> ReturnDraft:
        by_line = {item.line_id: item for item in order.items}
        refund = sum(round(by_line[line].paid_fen * quantity / by_line[line].quantity) for line, quantity in lines)
        at_fault = reason in SHOP_AT_FAULT_REASONS
        if at_fault:
            refund += order.shipping_fen
        draft = ReturnDraft(
            return_id=return_id or self._unique(lambda: "R" + self._digits(10)),
            order=order,
            lines=lines,
            reason=reason,
            status=status,
            refund_fen=refund,
            shipping_paid_by="shop" if at_fault or order.insurance else "shopper",
            refund_expected_by=expected
            or add_working_days(created.date() + dt.timedelta(days=3), REFUND_WORKING_DAYS[order.payment_method]),
            created_at=created,
            updated_at=updated,
            refunded_at=refunded_at,
            note=note,
        )
        return draft
