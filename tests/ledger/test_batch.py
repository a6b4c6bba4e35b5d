"""Deferred appends (`ledger_deferred`): prepared at once, chained together at the block's end."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from controlplane.identity.models import Tenant
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import DeferredEvent, LedgerEventPending, ledger_deferred
from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.ledger.verify import verify_chain

pytestmark = pytest.mark.django_db


def _append(subject: str, **kwargs):
    return ledger_append(type="controlplane.test.happened", subject=subject, data={"s": subject}, **kwargs)


def _waiting_for_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


@pytest.fixture
def head():
    """The chain has its key activation event before each test starts (the first append makes it)."""
    _append("setup")
    return LedgerEvent.objects.order_by("-seq").first().seq


def test_events_are_chained_together_at_the_end_of_the_block_in_call_order(head):
    with transaction.atomic():
        with ledger_deferred():
            first = _append("a")
            second = _append("b", causation_id=first.id)
            third = _append("c", causation_id=second.id)
            assert isinstance(first, DeferredEvent) and not first.appended
            assert LedgerEvent.objects.count() == head  # nothing on the chain yet
            assert first.type == "controlplane.test.happened" and first.subject == "a"
            assert second.causation_id == first.id and len(first.id) == 32
        assert [first.seq, second.seq, third.seq] == [head + 1, head + 2, head + 3]
    stored = list(LedgerEvent.objects.filter(seq__gt=head).order_by("seq"))
    assert [e.id for e in stored] == [first.id, second.id, third.id]
    assert [e.subject for e in stored] == ["a", "b", "c"]
    assert stored[1].causation_id == first.id and stored[2].causation_id == second.id
    assert third.event == stored[2] and third.hash == stored[2].hash and third.prev_hash == stored[1].hash
    assert verify_chain().ok


def test_the_flush_is_one_lock_one_head_read_and_one_insert(head):
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries, ledger_deferred():
            for name in "abcd":
                _append(name)
            assert len(queries) == 0  # deferring without idempotency keys touches no table
        statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 3, statements
    assert "pg_advisory_xact_lock" in statements[0]
    assert statements[2].startswith("INSERT INTO ledger_ledgerevent")
    assert LedgerEvent.objects.filter(seq__gt=head).count() == 4


def test_chain_fields_are_refused_until_the_block_ends():
    with transaction.atomic(), ledger_deferred():
        event = _append("a")
        for name in ("seq", "pk", "hash", "prev_hash", "signature", "key_id", "canonical"):
            with pytest.raises(LedgerEventPending, match=r"controlplane\.test\.happened"):
                getattr(event, name)
        with pytest.raises(LedgerEventPending):
            event.event  # noqa: B018
        with pytest.raises(AttributeError):
            event.no_such_field  # noqa: B018
        assert event.data == {"s": "a"} and event.actor == "system"


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_refuses_in_autocommit():
    assert not connection.in_atomic_block
    with pytest.raises(TransactionManagementError), ledger_deferred():
        _append("never")  # pragma: no cover
    assert LedgerEvent.objects.count() == 0


def test_an_exception_discards_the_batch_and_dooms_the_transaction(head):
    with transaction.atomic():
        try:
            with ledger_deferred():
                Tenant.objects.create(slug="doomed", name="Doomed")
                event = _append("doomed")
                raise RuntimeError("the service failed half way")
        except RuntimeError:
            pass
        with pytest.raises(LedgerEventPending, match="discarded"):
            event.seq  # noqa: B018
        # the state change may not commit without its event: Django refuses to go on in this block
        with pytest.raises(TransactionManagementError):
            Tenant.objects.count()
    assert not Tenant.objects.filter(slug="doomed").exists()
    assert LedgerEvent.objects.count() == head


def test_nested_blocks_join_the_outermost_and_are_appended_once(head):
    with transaction.atomic():
        with ledger_deferred():
            outer = _append("outer")
            with ledger_deferred():
                inner = _append("inner")
            assert not inner.appended and LedgerEvent.objects.count() == head
            last = _append("last")
        assert [outer.seq, inner.seq, last.seq] == [head + 1, head + 2, head + 3]


def test_a_nested_block_that_fails_discards_only_its_own_events(head):
    with transaction.atomic():
        with ledger_deferred():
            kept = _append("kept")
            try:
                with transaction.atomic(), ledger_deferred():
                    Tenant.objects.create(slug="inner", name="Inner")
                    dropped = _append("dropped")
                    raise ValueError("refused")
            except ValueError:
                pass
            after = _append("after")
        assert [kept.seq, after.seq] == [head + 1, head + 2]
        assert not dropped.appended
    assert list(LedgerEvent.objects.filter(seq__gt=head).values_list("subject", flat=True)) == [
        "kept",
        "after",
    ]
    assert not Tenant.objects.filter(slug="inner").exists()


def test_an_event_in_a_rolled_back_savepoint_is_discarded_with_it(head):
    """As an immediate append inside that savepoint would have been rolled back."""
    with transaction.atomic():
        with ledger_deferred():
            kept = _append("kept")
            try:
                with transaction.atomic():
                    gone = _append("gone")
                    raise ValueError("caught inside the block")
            except ValueError:
                pass
            with transaction.atomic():
                survived = _append("survived")  # a released savepoint keeps its event
        assert not gone.appended
        assert [kept.seq, survived.seq] == [head + 1, head + 2]
    assert LedgerEvent.objects.filter(seq__gt=head).count() == 2


def test_an_idempotency_key_on_the_chain_returns_that_event_and_defers_nothing(head):
    original = _append("original", idempotency_key="k-1")
    with transaction.atomic():
        with ledger_deferred():
            again = _append("again", idempotency_key="k-1")
            assert isinstance(again, LedgerEvent)
            assert again.seq == original.seq and again.id == original.id
            fresh = _append("fresh", idempotency_key="k-2")
        assert fresh.seq == original.seq + 1
    assert LedgerEvent.objects.filter(idempotency_key="k-1").count() == 1


def test_a_key_repeated_inside_the_batch_returns_the_first_deferred_event(head):
    with transaction.atomic():
        with ledger_deferred():
            first = _append("first", idempotency_key="k-1")
            second = _append("second", idempotency_key="k-1")
            assert second is first
        assert first.seq == head + 1
    assert list(LedgerEvent.objects.filter(seq__gt=head).values_list("subject", flat=True)) == ["first"]


def test_key_and_checkpoint_operations_refuse_to_run_inside_a_block(head):
    with transaction.atomic(), pytest.raises(TransactionManagementError), ledger_deferred():
        _append("a")
        checkpoint_create()
    assert LedgerEvent.objects.count() == head


@pytest.mark.django_db(transaction=True)
def test_other_writers_append_while_a_block_is_open_and_wait_once_it_has_flushed():
    """The point of it all: the chain's lock is held only from the flush to the commit."""
    _append("setup")
    done: list[int] = []

    def other_writer() -> None:
        try:
            with transaction.atomic():
                done.append(_append("other").seq)
        finally:
            connections.close_all()

    with transaction.atomic():
        with ledger_deferred():
            mine = _append("mine")
            writer = threading.Thread(target=other_writer)
            writer.start()
            writer.join(timeout=10)
            assert done, "another writer could not append while the block was open"
        late = threading.Thread(target=other_writer)
        late.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_an_advisory_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_for_an_advisory_lock(), "the chain lock must be held from the flush to the commit"
        assert len(done) == 1
    late.join(timeout=10)
    assert mine.seq == done[0] + 1 and done[1] == mine.seq + 1
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_a_key_committed_elsewhere_before_the_flush_fails_it_and_nothing_is_written():
    _append("setup")
    before = LedgerEvent.objects.count()

    def other_writer() -> None:
        try:
            with transaction.atomic():
                _append("theirs", idempotency_key="k-race")
        finally:
            connections.close_all()

    with pytest.raises(ControlPlaneError) as refused, transaction.atomic(), ledger_deferred():
        Tenant.objects.create(slug="raced", name="Raced")
        _append("mine", idempotency_key="k-race")
        writer = threading.Thread(target=other_writer)
        writer.start()
        writer.join(timeout=10)
    assert refused.value.code == "LEDGER_IDEMPOTENCY_RACE"
    assert refused.value.extra["idempotency_key"] == "k-race"
    assert LedgerEvent.objects.count() == before + 1
    assert LedgerEvent.objects.get(idempotency_key="k-race").subject == "theirs"
    assert not Tenant.objects.filter(slug="raced").exists()


def test_without_the_key_check_a_key_on_the_chain_is_found_by_the_flush(head):
    """check_keys=False: no read when the append is made; the flush still never writes a second event."""
    _append("original", idempotency_key="k-1")
    before = LedgerEvent.objects.count()
    with (
        pytest.raises(ControlPlaneError) as refused,
        transaction.atomic(),
        CaptureQueriesContext(connection) as queries,
        ledger_deferred(check_keys=False),
    ):
        Tenant.objects.create(slug="unchecked", name="Unchecked")
        again = _append("again", idempotency_key="k-1")
        assert isinstance(again, DeferredEvent)
        assert not any("idempotency_key" in q["sql"] for q in queries.captured_queries)
    assert refused.value.code == "LEDGER_IDEMPOTENCY_RACE"
    assert LedgerEvent.objects.count() == before
    assert not Tenant.objects.filter(slug="unchecked").exists()


def test_a_nested_block_checks_keys_as_it_says(head):
    _append("original", idempotency_key="k-1")
    with transaction.atomic(), ledger_deferred(check_keys=False):
        with ledger_deferred():
            again = _append("again", idempotency_key="k-1")
        assert isinstance(again, LedgerEvent) and again.subject == "original"
