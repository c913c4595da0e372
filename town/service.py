"""`accessgw town run`: one town platform instance (DESIGN §6.3).

Wiring only: the store (town.store.db), the platform's signing key (town.keys), the broker consumer on the
group's shared subscriptions (town.ingest.make_consumer: manual acks after commit), the ingest (events,
state, answers) with the register's merge and the pusher's hooks, the roster pusher, the town's API
(town.api.app.create_town_app) served by uvicorn on `api.host:api.port`, and the daily monthly-partition
job, and the receipts that let each gateway delete what the town stored (town.receipts). SIGTERM (or
SIGINT) stops it cleanly: the API, the pusher, the ingest (the batch in hand commits and is
acknowledged, its receipts go out), then the broker link.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from config.town import TownConfig
from town.ingest import Ingest, make_consumer
from town.keys import key_path, load_or_create_key, public_key_b64
from town.pusher import Pusher
from town.receipts import ReceiptSender
from town.register import merge_roster_event
from town.store.db import open_town_store
from town.store.partitions import ensure_partitions

log = logging.getLogger(__name__)

PARTITIONS_EVERY_S = 24 * 3600.0
STATS_EVERY_S = 10.0


class TownService:
    def __init__(self, cfg: TownConfig, *, serve_api: bool = True) -> None:
        self.cfg = cfg
        self.serve_api = serve_api
        self.engine, self.sessions = open_town_store(cfg)
        self.key = load_or_create_key(cfg.data_dir)
        self.public_key = public_key_b64(self.key)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_stats: dict[str, int] = {}
        # The ingest's hooks reach the pusher, the pusher publishes through the consumer: built in that order.
        self.pusher: Pusher | None = None
        self.receipts: ReceiptSender | None = None
        self.ingest = Ingest(self.sessions, base_topic=cfg.mqtt.base_topic, on_roster_event=self._merge,
                             on_roster_request=self._roster_request, on_response=self._response,
                             on_stored=self._stored)  # fmt: skip
        self.consumer = make_consumer(cfg, self.ingest.submit)
        self.receipts = ReceiptSender(self.key, lambda topic, payload: self.consumer.publish(topic, payload, qos=1),
                                      cfg.mqtt.base_topic)  # fmt: skip
        self.pusher = Pusher(self.sessions, self.key, self.consumer.publish, cfg.roster, cfg.mqtt.base_topic)
        self.api_server: Any = None  # uvicorn.Server once started
        self.initial_admin_token: str | None = None

    # --- the ingest's hooks -----------------------------------------------------------------------------
    def _merge(self, session: Any, gateway_id: str, payload: dict[str, Any]) -> None:
        result = merge_roster_event(session, gateway_id, payload)
        log.info("roster change %s of tenant %s from %s: %s", payload.get("change"), payload.get("tenant_id"),
                 gateway_id, result)  # fmt: skip

    def _stored(self, seqs: dict[str, list[int]]) -> None:
        if self.receipts is not None:
            self.receipts.add(seqs)

    def _roster_request(self, gateway_id: str) -> None:
        if self.pusher is not None:
            self.pusher.on_roster_request(gateway_id)

    def _response(self, session: Any, gateway_id: str, command: str, payload: dict[str, Any]) -> None:
        if self.pusher is not None:
            self.pusher.on_response(session, gateway_id, command, payload)

    # --- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Everything running in threads of this process; returns at once (see run())."""
        self._ensure_initial_admin()
        self.ingest.start(self.consumer.ack)
        self.consumer.start()
        assert self.receipts is not None
        self.receipts.start()
        assert self.pusher is not None
        self.pusher.start()
        self._thread(self._partitions_loop, "town-partitions")
        self._thread(self._stats_loop, "town-stats")
        if self.serve_api:
            self._start_api()
        log.info("running: town instance %s, broker %s:%d, API %s, platform key %s (%s)",
                 self.cfg.instance or "(host name)", self.cfg.mqtt.host, self.cfg.mqtt.port,
                 f"{self.cfg.api.scheme}://{self.cfg.api.host}:{self.cfg.api.port}" if self.serve_api else "off",
                 self.public_key, key_path(self.cfg.data_dir))  # fmt: skip

    def run(self) -> None:
        """start(), then wait for SIGTERM / SIGINT, then stop()."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self.api_server is not None:
            self.api_server.should_exit = True
        if self.pusher is not None:
            self.pusher.stop()
        self.ingest.stop()  # the batch in hand commits and is acknowledged while the link is still up
        if self.receipts is not None:
            self.receipts.stop()  # and its receipts go out
        self.consumer.stop()
        for t in self._threads:
            t.join(10)
        self._threads.clear()
        self.engine.dispose()
        self._log_stats()
        log.info("stopped")

    def _thread(self, target: Any, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def _stats_loop(self) -> None:
        """What this instance ingested, every STATS_EVERY_S while it changes (operators see an instance's
        share of a shared subscription; tests and the load bench read it)."""
        while not self._stop.wait(STATS_EVERY_S):
            self._log_stats()

    def _log_stats(self) -> None:
        stats = self.ingest.stats()
        if stats != self._last_stats:
            self._last_stats = stats
            log.info("ingest: %s", " ".join(f"{k}={v}" for k, v in stats.items()))

    def _partitions_loop(self) -> None:
        """The entries' monthly partitions, made ahead every day (they are also made at every open)."""
        while not self._stop.wait(PARTITIONS_EVERY_S):
            try:
                ensure_partitions(self.engine)
            except Exception:
                log.exception("monthly partitions not made; tried again tomorrow (two months are made ahead)")

    def _ensure_initial_admin(self) -> None:
        """The first start, when the town has no admin, makes one: its token printed once and written to
        {data_dir}/initial-admin-token (0600), as the gateway does (DESIGN §8)."""
        from gateway.api.users import ensure_initial_admin

        with self.sessions.begin() as s:
            token = ensure_initial_admin(s, self.cfg.data_dir)
        if token is not None:
            self.initial_admin_token = token
            print(f"initial town admin token (also in {self.cfg.data_dir}/initial-admin-token):\n{token}", flush=True)

    def _start_api(self) -> None:
        from gateway.api.server import make_server  # the gateway API's uvicorn, with its limits
        from town.api.app import create_town_app
        from town.api.context import TownContext

        # Templates made at the town must be made as the buildings make theirs (town.yaml `recognition`).
        ctx = TownContext(self.cfg, self.engine, self.sessions, pusher=self.pusher,
                          recognition=self.cfg.recognition)  # type: ignore[arg-type]  # fmt: skip
        server = make_server(create_town_app(ctx), self.cfg.api)  # in a thread: uvicorn leaves the signals alone
        self.api_server = server
        self._thread(server.run, "town-api")
