"""The refund rule and the laying of paid periods end to end, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.billing.periods import PaidPeriod, compute_access, full_refund_times

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def paid(txn: str, at: float, days: int = 30, refunded: float | None = None) -> PaidPeriod:
    return PaidPeriod(
        payment_id=f"p{txn}",
        transaction_id=txn,
        paid_at=day(at),
        days=days,
        plan="month",
        refunded_at=day(refunded) if refunded is not None else None,
    )


def test_no_payments_no_access() -> None:
    access = compute_access([])
    assert access.end is None and not access.active(T0)


def test_one_payment_buys_its_days() -> None:
    access = compute_access([paid("1", 0)])
    assert (access.start, access.end, access.payment_id) == (day(0), day(30), "p1")
    assert access.active(day(29)) and not access.active(day(30))


def test_paying_early_extends_instead_of_overlapping() -> None:
    access = compute_access([paid("2", 25), paid("1", 0)])
    assert access.start == day(0) and access.end == day(60) and access.payment_id == "p2"


def test_a_gap_starts_a_new_run() -> None:
    access = compute_access([paid("1", 0), paid("2", 40)])
    assert access.start == day(40) and access.end == day(70)


def test_refunding_the_only_payment_ends_access_at_the_refund() -> None:
    access = compute_access([paid("1", 0, refunded=10)])
    assert access.end == day(10) and not access.active(day(10))


def test_refunding_at_once_leaves_nothing_paid() -> None:
    access = compute_access([paid("1", 0, refunded=0)])
    assert access.end == day(0) and not access.active(day(0))


def test_refunding_an_early_renewal_removes_only_its_period() -> None:
    access = compute_access([paid("1", 0), paid("2", 25, refunded=27)])
    assert access.end == day(30) and access.payment_id == "p1"


def test_refunding_a_renewal_in_its_own_period_ends_access_then() -> None:
    access = compute_access([paid("1", 0), paid("2", 30, refunded=35)])
    assert access.end == day(35)


def test_refunding_the_first_payment_moves_the_renewal_up() -> None:
    access = compute_access([paid("1", 0, refunded=27), paid("2", 25)])
    assert access.end == day(57)


def test_refunding_a_used_up_period_changes_nothing() -> None:
    access = compute_access([paid("1", 0, refunded=40), paid("2", 30)])
    assert access.end == day(60)


def test_only_full_refunds_count_and_the_time_is_when_they_add_up() -> None:
    amounts = {"a": 99000, "b": 99000}
    refunds = [("a", day(3), 50000), ("b", day(1), 1000), ("a", day(5), 49000), ("x", day(1), 1)]
    assert full_refund_times(amounts, refunds) == {"a": day(5)}
