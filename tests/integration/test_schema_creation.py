"""Processes started at once make the tables they need without tripping over each other
(PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent one)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from adapters.http.app import create_app
from adapters.settings import Settings
from adapters.wiring import open_services
from keys.master import MasterKey


def test_services_and_apps_opened_at_once_on_a_new_schema_all_start(
    postgres_url: str, tmp_path: Any
) -> None:
    settings = Settings(
        data_dir=tmp_path, master_key=MasterKey.generate().to_base64(),
        database_url=f"{postgres_url}?schema=p_{uuid.uuid4().hex[:12]}",
    )
    start = threading.Barrier(4)
    failures: list[BaseException] = []
    opened: list[Any] = []

    def open_one() -> None:
        try:
            start.wait(30)
            services = open_services(settings)
            opened.append(services)
            create_app(services)  # the pages' sessions and sign-in flows make their tables
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for services in opened:
        services.close()
    assert failures == [], [repr(f) for f in failures]
    assert len(opened) == 4
