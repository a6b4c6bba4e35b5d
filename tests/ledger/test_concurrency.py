"""Parallel writers in separate processes produce one gap-free, verifiable chain."""

from __future__ import annotations

import multiprocessing

import pytest

from controlplane.kernel.forking import database_close_for_fork, database_unpooled
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain

WRITERS = 6
EVENTS_PER_WRITER = 40


def _writer(index: int, key_dir: str) -> int:
    from django.conf import settings

    from controlplane.ledger import crypto
    from controlplane.ledger.services import ledger_append

    settings.CONTROLPLANE_KEY_DIR = key_dir
    crypto.forget_loaded_keys()
    database_unpooled()
    try:
        for n in range(EVENTS_PER_WRITER):
            ledger_append(type="controlplane.test.written", subject=f"writer/{index}", data={"n": n})
        return EVENTS_PER_WRITER
    finally:
        database_close_for_fork()


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_make_one_gap_free_chain(settings):
    from controlplane.ledger.services import ledger_append

    ledger_append(type="controlplane.test.written", subject="writer/setup", data={})  # creates the key
    database_close_for_fork()
    context = multiprocessing.get_context("fork")
    with context.Pool(WRITERS) as pool:
        written = pool.starmap(_writer, [(i, str(settings.CONTROLPLANE_KEY_DIR)) for i in range(WRITERS)])
    assert sum(written) == WRITERS * EVENTS_PER_WRITER
    seqs = list(LedgerEvent.objects.values_list("seq", flat=True))
    total = 2 + WRITERS * EVENTS_PER_WRITER  # key activation + setup event
    assert seqs == list(range(1, total + 1))
    result = verify_chain()
    assert result.ok and result.count == total
    per_writer = {i: LedgerEvent.objects.filter(subject=f"writer/{i}").count() for i in range(WRITERS)}
    assert set(per_writer.values()) == {EVENTS_PER_WRITER}
