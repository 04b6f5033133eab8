"""Election terms: monotonic, atomic counters."""

from __future__ import annotations

import threading

from revenge.db import advance_term, create_database_engine, read_term, write_transaction


def test_terms_start_at_zero_and_only_grow(database_url: str):
    engine = create_database_engine(database_url)
    try:
        with write_transaction(engine) as connection:
            assert read_term(connection, "leader") == 0
            assert advance_term(connection, "leader", "node-a") == 1
            assert advance_term(connection, "leader", "node-b") == 2
            assert advance_term(connection, "other", "node-a") == 1
        with write_transaction(engine) as connection:
            assert read_term(connection, "leader") == 2
    finally:
        engine.dispose()


def test_concurrent_advances_never_hand_out_a_term_twice(database_url: str):
    engine = create_database_engine(database_url)
    taken: list[int] = []
    lock = threading.Lock()

    def take_terms(node: str) -> None:
        for _ in range(5):
            with write_transaction(engine) as connection:
                term = advance_term(connection, "leader", node)
            with lock:
                taken.append(term)

    threads = [threading.Thread(target=take_terms, args=(f"node-{i}",)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        engine.dispose()
    assert sorted(taken) == list(range(1, 21))
