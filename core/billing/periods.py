"""Access as a function of the payments ledger: no I/O, so the refund rule is tested directly.

Each completed payment buys `days` of access. Payments are laid end to end in the order they
were made (the provider's DateTime): a payment starts at the later of its own time and the end
of what was bought before it, so paying early extends rather than overlaps.

The refund rule: a fully refunded payment keeps the days of its period that had already passed
when it was refunded and loses the rest; later payments move up to fill the gap. So a refund of
the only payment ends access at the refund; a refund of a renewal paid ahead of time removes
just that renewal's period (access still ends where the earlier payment's period ends); and a
refund of a period already used up changes nothing. Partial refunds are recorded but do not
change access. Because the result depends only on the ledger, notifications that arrive out of
order (a Refund before its Pay, a late renewal) end in the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class PaidPeriod:
    payment_id: str
    transaction_id: str
    paid_at: datetime
    days: int
    plan: str
    refunded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Access:
    plan: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    payment_id: str | None = None

    def active(self, now: datetime) -> bool:
        return self.end is not None and self.end > now


def compute_access(payments: Iterable[PaidPeriod]) -> Access:
    """Where the paid-for time ends, when the current unbroken run began, and its last plan."""
    access = Access()
    for p in sorted(payments, key=lambda p: (p.paid_at, p.transaction_id)):
        start = p.paid_at if access.end is None else max(p.paid_at, access.end)
        stop = start + timedelta(days=p.days)
        if p.refunded_at is not None:
            stop = min(stop, max(p.refunded_at, start))
        if stop <= start and access.end is not None:
            continue  # refunded before its period began: it bought nothing
        run_start = start if access.end is None or start > access.end else access.start
        access = Access(plan=p.plan, start=run_start, end=stop, payment_id=p.payment_id)
    return access


def full_refund_times(
    amounts: dict[str, int], refunds: Iterable[tuple[str, datetime, int]]
) -> dict[str, datetime]:
    """When each payment's refunds (transaction id, time, minor units) reached its amount."""
    totals: dict[str, int] = {}
    done: dict[str, datetime] = {}
    for txn, when, minor in sorted(refunds, key=lambda r: r[1]):
        if txn in done or txn not in amounts:
            continue
        totals[txn] = totals.get(txn, 0) + minor
        if totals[txn] >= amounts[txn]:
            done[txn] = when
    return done
