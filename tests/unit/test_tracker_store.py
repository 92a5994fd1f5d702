"""Trackers encrypted at rest in a real redis-server; the embedded server's password and memory limit."""

from __future__ import annotations

import asyncio
import logging
import re
import stat
from pathlib import Path
from typing import Any, Iterator, List

import pytest
import redis
from rasa.core.tracker_store import RedisTrackerStore, create_tracker_store
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config

from bot import rasa_patches
from bot.launcher import base_env
from bot.rasa_patches import tracker_merge
from bot.redis_server import RedisServer, embedded_password, free_port
from bot.settings import PROJECT_ROOT, Settings, load_settings
from bot.tracker_store import EncryptedRedisTrackerStore, TrackerCipher

SECRET = "test-tracker-secret"
PHONE = "13812345678"
ADDRESS = "上海市浦东新区世纪大道100号8栋1201室"
NAME = "张小明"
TAIL = "5678"
USER_TEXT = f"我是{NAME}，手机{PHONE}，尾号{TAIL}，地址改成{ADDRESS}"
SEALED = re.compile(r"^enc1:[0-9a-f]{8}:[A-Za-z0-9+/]+=*$")


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture()
def store(redis_server: RedisServer, redis_url: str, domain: Domain) -> EncryptedRedisTrackerStore:
    return EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port, key_prefix="tracker", identity_secret=SECRET)


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def shopper_tracker(sender: str, domain: Domain) -> DialogueStateTracker:
    """A conversation with a phone number, a phone tail, an address and a name in events and slots."""
    return DialogueStateTracker.from_events(sender, [
        SlotSet("session_started_metadata", {"channel": "app", "customer_id": "C000001"}, timestamp=1.0),
        ActionExecuted("action_session_start", timestamp=1.1),
        SessionStarted(timestamp=1.2),
        ActionExecuted("action_listen", timestamp=1.3),
        UserUttered(USER_TEXT, {"name": "change_address", "confidence": 0.9},
                    [{"entity": "phone", "value": PHONE, "start": 9, "end": 20}], timestamp=1.4),
        SlotSet("new_receiver_name", NAME, timestamp=1.5),
        SlotSet("new_receiver_phone", PHONE, timestamp=1.6),
        SlotSet("new_address", ADDRESS, timestamp=1.7),
        BotUttered(f"好的，收货人{NAME}，手机尾号{TAIL}，新地址{ADDRESS}", timestamp=1.8),
        ActionExecuted("action_listen", timestamp=1.9),
    ], slots=domain.slots)


def as_dicts(tracker: Any) -> List[dict]:
    return [event.as_dict() for event in tracker.events]


def assert_no_pii(raw: str) -> None:
    assert SEALED.fullmatch(raw), raw[:80]
    for clear in (PHONE, ADDRESS, NAME, f'"{TAIL}"', "手机", USER_TEXT, "new_receiver_phone", "user"):
        assert clear not in raw


def test_stored_tracker_has_no_pii_in_clear_and_reads_back_identical(store: EncryptedRedisTrackerStore, redis_url: str,
                                                                      domain: Domain) -> None:
    tracker = shopper_tracker("enc-1", domain)
    asyncio.run(store.save(tracker))
    raw = raw_client(redis_url).get("tracker:tracker:enc-1")
    assert_no_pii(raw)
    back = asyncio.run(store.retrieve_full_tracker("enc-1"))
    assert back is not None and as_dicts(back) == as_dicts(tracker)
    assert back.get_slot("new_receiver_phone") == PHONE and back.get_slot("new_address") == ADDRESS
    assert asyncio.run(store.keys()) == ["tracker:tracker:enc-1"]
    # two saves of one tracker: fresh nonces, never the same ciphertext
    asyncio.run(store.save(tracker))
    assert raw_client(redis_url).get("tracker:tracker:enc-1") != raw


def test_plaintext_tracker_is_read_and_encrypted_on_next_save(store: EncryptedRedisTrackerStore, redis_url: str, domain: Domain) -> None:
    tracker = shopper_tracker("legacy-1", domain)
    client = raw_client(redis_url)
    client.set("tracker:tracker:legacy-1", RedisTrackerStore.serialise_tracker(tracker))
    back = asyncio.run(store.retrieve_full_tracker("legacy-1"))
    assert back is not None and as_dicts(back) == as_dicts(tracker)
    back.update(UserUttered("谢谢", {"name": "thank", "confidence": 0.9}, timestamp=3.0))
    asyncio.run(store.save(back))
    assert_no_pii(client.get("tracker:tracker:legacy-1"))
    assert as_dicts(asyncio.run(store.retrieve_full_tracker("legacy-1")))[-1]["text"] == "谢谢"


def test_encrypt_command_seals_every_plaintext_tracker_and_keeps_expiry(store: EncryptedRedisTrackerStore, redis_url: str,
                                                                        domain: Domain) -> None:
    client = raw_client(redis_url)
    for number in range(3):
        client.set(f"tracker:tracker:old-{number}", RedisTrackerStore.serialise_tracker(shopper_tracker(f"old-{number}", domain)), ex=500)
    asyncio.run(store.save(shopper_tracker("new-1", domain)))
    client.set("tracker:tracker:junk", "not a tracker")
    assert store.encrypt_plaintext() == {"encrypted": 3, "sealed": 1, "skipped": 1}
    for number in range(3):
        assert_no_pii(client.get(f"tracker:tracker:old-{number}"))
        assert 0 < client.ttl(f"tracker:tracker:old-{number}") <= 500
        assert as_dicts(asyncio.run(store.retrieve_full_tracker(f"old-{number}"))) == as_dicts(shopper_tracker(f"old-{number}", domain))


def flip_one_character(sealed: str) -> str:
    head, body = sealed.rsplit(":", 1)
    position = len(body) // 2
    return f"{head}:{body[:position]}{'A' if body[position] != 'A' else 'B'}{body[position + 1:]}"


def test_tampered_tracker_is_logged_and_the_conversation_starts_afresh(store: EncryptedRedisTrackerStore, redis_url: str,
                                                                        domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tracker_store")
    client = raw_client(redis_url)
    asyncio.run(store.save(shopper_tracker("tamper-1", domain)))
    client.set("tracker:tracker:tamper-1", flip_one_character(client.get("tracker:tracker:tamper-1")))
    assert asyncio.run(store.retrieve("tamper-1")) is None
    assert "tracker.unreadable sender=tamper-1 reason=tampered" in caplog.text
    fresh = asyncio.run(store.get_or_create_tracker("tamper-1"))  # what Rasa does at the start of a turn
    assert as_dicts(fresh) == [ActionExecuted("action_listen", timestamp=fresh.events[0].timestamp).as_dict()]
    stored = client.get("tracker:tracker:tamper-1")
    assert SEALED.fullmatch(stored)  # the unreadable value was replaced
    assert as_dicts(asyncio.run(store.retrieve("tamper-1"))) == as_dicts(fresh)
    assert PHONE not in caplog.text


@pytest.mark.parametrize("value, reason", [
    ("enc1:", "malformed"),
    ("enc1:00000000", "malformed"),
    ("enc1:{key}:%%%", "malformed"),
    ("enc1:{key}:AAAA", "malformed"),
    ("{{not json", "not a tracker (JSONDecodeError)"),
])
def test_malformed_values_are_unreadable_never_an_error(store: EncryptedRedisTrackerStore, redis_url: str, value: str, reason: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tracker_store")
    raw_client(redis_url).set("tracker:tracker:bad-1", value.format(key=store.cipher.key_id))
    assert asyncio.run(store.retrieve("bad-1")) is None
    assert f"reason={reason}" in caplog.text


def test_another_conversations_value_and_another_secret_do_not_open(store: EncryptedRedisTrackerStore, redis_server: RedisServer,
                                                                    redis_url: str, domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tracker_store")
    client = raw_client(redis_url)
    asyncio.run(store.save(shopper_tracker("victim", domain)))
    client.set("tracker:tracker:attacker", client.get("tracker:tracker:victim"))
    assert asyncio.run(store.retrieve("attacker")) is None
    assert "sender=attacker reason=tampered" in caplog.text
    rotated = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port, key_prefix="tracker", identity_secret="rotated")
    assert asyncio.run(rotated.retrieve("victim")) is None
    assert "sender=victim reason=key=other" in caplog.text


def test_plaintext_can_be_refused(redis_server: RedisServer, redis_url: str, domain: Domain) -> None:
    strict = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port, key_prefix="tracker",
                                        identity_secret=SECRET, accept_plaintext="false")
    raw_client(redis_url).set("tracker:tracker:legacy-2", RedisTrackerStore.serialise_tracker(shopper_tracker("legacy-2", domain)))
    assert asyncio.run(strict.retrieve("legacy-2")) is None


def test_secret_defaults_to_shop_identity_secret(redis_server: RedisServer, domain: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_IDENTITY_SECRET", SECRET)
    default = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port)
    assert default.cipher.key_id == TrackerCipher.from_secret(SECRET).key_id


@pytest.fixture()
def fast_merge() -> Iterator[None]:
    was_applied = tracker_merge.PATCH.applied
    assert tracker_merge.PATCH.install() is None
    yield
    if not was_applied:
        tracker_merge.PATCH.revert()


def test_the_fast_merge_of_the_speed_fixes_merges_encrypted_trackers(fast_merge: None, store: EncryptedRedisTrackerStore,
                                                                      redis_url: str, domain: Domain) -> None:
    assert EncryptedRedisTrackerStore._merge_trackers is tracker_merge.merge_trackers
    stored = shopper_tracker("merge-1", domain)
    asyncio.run(store.save(stored))
    fetched = asyncio.run(store.retrieve("merge-1"))  # the last session only: the metadata slot is left out
    assert fetched is not None and len(fetched.events) == len(stored.events) - 1
    fetched.update(UserUttered("我的快递到哪了", {"name": "track_order", "confidence": 0.8}, timestamp=2.0))
    fetched.update(BotUttered("您的订单运输中", timestamp=2.1))
    asyncio.run(store.save(fetched))
    merged = asyncio.run(store.retrieve_full_tracker("merge-1"))
    assert merged is not None
    assert as_dicts(merged) == as_dicts(stored) + as_dicts(fetched)[-2:]
    assert_no_pii(raw_client(redis_url).get("tracker:tracker:merge-1"))
    with rasa_patches.stock():  # Rasa's own merge gives the same
        assert EncryptedRedisTrackerStore._merge_trackers is not tracker_merge.merge_trackers
        again = asyncio.run(store.retrieve("merge-1"))
        assert again is not None
        again.update(BotUttered("还有什么可以帮您？", timestamp=2.2))
        asyncio.run(store.save(again))
    assert as_dicts(asyncio.run(store.retrieve_full_tracker("merge-1"))) == as_dicts(merged) + [as_dicts(again)[-1]]


# ------------------------------------------------------------------ password-protected Redis
@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis-auth"), password="pa:ss/w@rd%1")
    server.start()
    yield server
    server.stop()


def endpoint_env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """The environment the launcher gives Rasa, which endpoints.yml reads."""
    for name, value in base_env(load_settings({"SHOP_IDENTITY_SECRET": SECRET}), redis_url).items():
        monkeypatch.setenv(name, value)


def test_endpoints_yml_tracker_store_on_a_password_protected_redis(password_redis: RedisServer, domain: Domain,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert password_redis.url == f"redis://:pa%3Ass%2Fw%40rd%251@127.0.0.1:{password_redis.port}/0"
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=password_redis.port).set("x", "1")
    endpoint_env(monkeypatch, password_redis.url.replace("/0", "/2"))
    store = create_tracker_store(read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "tracker_store"), domain)
    assert isinstance(store, EncryptedRedisTrackerStore)
    tracker = shopper_tracker("auth-1", domain)
    asyncio.run(store.save(tracker))
    client = redis.Redis.from_url(password_redis.url.replace("/0", "/2"), decode_responses=True)
    assert_no_pii(client.get("tracker:tracker:auth-1"))
    assert 0 < client.ttl("tracker:tracker:auth-1") <= load_settings({}).tracker_ttl_s
    assert as_dicts(asyncio.run(store.retrieve_full_tracker("auth-1"))) == as_dicts(tracker)
    admin = redis.Redis.from_url(password_redis.url)
    admin.acl_setuser("shop", enabled=True, passwords=["+shop-pw"], keys=["*"], commands=["+@all"])
    endpoint_env(monkeypatch, f"redis://shop:shop-pw@127.0.0.1:{password_redis.port}/2")  # a Redis 6 ACL user
    as_user = create_tracker_store(read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "tracker_store"), domain)
    assert as_dicts(asyncio.run(as_user.retrieve_full_tracker("auth-1"))) == as_dicts(tracker)
    monkeypatch.setenv("REDIS_PASSWORD", "wrong")
    wrong = create_tracker_store(read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "tracker_store"), domain)
    with pytest.raises(redis.exceptions.AuthenticationError):
        asyncio.run(wrong.retrieve("auth-1"))


def test_base_env_splits_redis_urls_with_users_passwords_and_tls() -> None:
    settings = load_settings({})
    env = base_env(settings, "rediss://shop:p%40ss%3Aword@redis.example.com:6380/3?ssl_ca_certs=/etc/ssl/shop-ca.pem")
    assert {name: env[name] for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_USE_SSL",
                                         "REDIS_SSL_CA_CERTS")} == {
        "REDIS_HOST": "redis.example.com", "REDIS_PORT": "6380", "REDIS_DB": "3", "REDIS_USERNAME": "shop",
        "REDIS_PASSWORD": "p@ss:word", "REDIS_USE_SSL": "true", "REDIS_SSL_CA_CERTS": "/etc/ssl/shop-ca.pem"}
    plain = base_env(settings, "redis://:secret@127.0.0.1:6390/0")
    assert (plain["REDIS_USERNAME"], plain["REDIS_PASSWORD"], plain["REDIS_USE_SSL"], plain["REDIS_SSL_CA_CERTS"]) == ("", "secret", "", "")
    none = base_env(settings, "redis://127.0.0.1:6390/0")
    assert (none["REDIS_PASSWORD"], none["REDIS_USE_SSL"]) == ("", "")


def test_tracker_store_options_from_yaml_strings(redis_server: RedisServer, domain: Domain) -> None:
    store = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=str(redis_server.port), db="4", username="", password="",
                                       use_ssl="", ssl_ca_certs="", ssl_keyfile="", ssl_certfile="", record_exp="2592000",
                                       identity_secret=SECRET)
    kwargs = store.red.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"], kwargs.get("username"), kwargs.get("password")) == (redis_server.port, 4, None, None)
    assert store.record_exp == 2592000 and "ssl_ca_certs" not in kwargs
    tls = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=str(redis_server.port), use_ssl="true", identity_secret=SECRET)
    assert tls.red.connection_pool.connection_class.__name__ == "SSLConnection"


# ------------------------------------------------------------------ the embedded server
def test_embedded_password_is_generated_once_private_and_in_the_settings_url(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert settings.effective_redis_url == "redis://127.0.0.1:6390/0"  # nothing generated yet
    password = embedded_password(tmp_path / "redis")
    assert len(password) >= 40 and embedded_password(tmp_path / "redis") == password
    path = tmp_path / "redis" / "password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert settings.effective_redis_url == f"redis://:{password}@127.0.0.1:6390/0"
    assert Settings(var_dir=tmp_path, redis_url="redis://other:1/2").effective_redis_url == "redis://other:1/2"


def test_embedded_server_requires_its_password_and_keeps_it_out_of_the_process_list(tmp_path: Path) -> None:
    password = embedded_password(tmp_path)
    server = RedisServer(free_port(), tmp_path, password=password, maxmemory_mb=64)
    assert password not in " ".join(server.command())
    server.start()
    try:
        assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port).set("x", "1")
        assert redis.Redis.from_url(server.url).ping()
        used_mb, limit_mb = server.memory_mb()
        assert 0 < used_mb < 64 and limit_mb == 64
        assert redis.Redis.from_url(server.url).config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        server.stop()


def test_full_redis_refuses_the_save_with_a_clear_error(tmp_path: Path, domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tracker_store")
    server = RedisServer(free_port(), tmp_path, maxmemory_mb=2).start()
    try:
        client = redis.Redis.from_url(server.url)
        for size in (10_000, 100):  # down to small writes: Redis counts a request's own buffer too
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                for number in range(10_000):
                    client.set(f"filler:{size}:{number}", b"x" * size)
        store = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=server.port, identity_secret=SECRET)
        with pytest.raises(redis.exceptions.RedisError) as raised:
            asyncio.run(store.save(shopper_tracker("full-1", domain)))
        assert isinstance(raised.value, redis.exceptions.OutOfMemoryError)
        assert "tracker.save_failed sender=full-1 error=OutOfMemoryError: Redis reached its memory limit" in caplog.text
        assert client.dbsize() > 0 and client.exists("filler:10000:0")  # noeviction: nothing was dropped
    finally:
        server.stop()



# ------------------------------------------------------------- how a save reaches Redis
def count_merges(monkeypatch: pytest.MonkeyPatch, store: EncryptedRedisTrackerStore) -> List[str]:
    """Conversation ids of the saves that read the stored tracker back to merge it."""
    calls: List[str] = []
    original = store._merged

    def counting(tracker: DialogueStateTracker, stored: Any) -> DialogueStateTracker:
        calls.append(tracker.sender_id)
        return original(tracker, stored)

    monkeypatch.setattr(store, "_merged", counting)
    return calls


def test_saving_the_tracker_read_this_turn_skips_reading_it_back_and_stores_what_rasa_would(
        store: EncryptedRedisTrackerStore, redis_url: str, domain: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = RedisTrackerStore(domain, host="127.0.0.1", port=int(redis_url.rsplit(":", 1)[1].split("/")[0]), db=5)
    asyncio.run(store.save(shopper_tracker("fast-1", domain)))
    asyncio.run(plain.save(shopper_tracker("fast-1", domain)))
    calls = count_merges(monkeypatch, store)

    async def turn(tracker_store: Any) -> None:
        tracker = await tracker_store.retrieve("fast-1")  # the latest session: the metadata slot is left out
        tracker.update(UserUttered("我的快递到哪了", {"name": "track_order", "confidence": 0.8}))
        tracker.update(BotUttered("您的订单运输中"))
        await tracker_store.save(tracker)
        tracker.update(ActionExecuted("action_listen"))
        await tracker_store.save(tracker)  # a second save of the same turn: the value it wrote is still there

    asyncio.run(turn(store))
    assert calls == []  # neither save read the stored tracker back
    asyncio.run(turn(plain))  # Rasa's own store, same turn
    ours = [{k: v for k, v in e.items() if k != "timestamp"} for e in as_dicts(asyncio.run(store.retrieve_full_tracker("fast-1")))]
    rasa = [{k: v for k, v in e.items() if k != "timestamp"} for e in as_dicts(asyncio.run(plain.retrieve_full_tracker("fast-1")))]
    assert ours == rasa and len(ours) == len(shopper_tracker("fast-1", domain).events) + 3
    assert_no_pii(raw_client(redis_url).get("tracker:tracker:fast-1"))


def test_a_write_in_between_is_merged_not_overwritten(store: EncryptedRedisTrackerStore, redis_server: RedisServer,
                                                      redis_url: str, domain: Domain) -> None:
    other = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port, key_prefix="tracker", identity_secret=SECRET)
    asyncio.run(store.save(shopper_tracker("race-1", domain)))

    async def scenario() -> None:
        mine = await store.retrieve_full_tracker("race-1")
        theirs = await other.retrieve_full_tracker("race-1")  # e.g. another server, without the lock
        theirs.update(BotUttered("客服小美已接入", timestamp=3.0))
        await other.save(theirs)
        mine.update(UserUttered("好的", {"name": "affirm", "confidence": 0.9}, timestamp=3.1))
        await store.save(mine)

    asyncio.run(scenario())
    texts = [e.get("text") for e in as_dicts(asyncio.run(store.retrieve_full_tracker("race-1")))]
    assert texts[-2:] == ["客服小美已接入", "好的"]


def test_a_tracker_with_events_older_than_the_stored_ones_takes_rasas_merge(store: EncryptedRedisTrackerStore, redis_url: str,
                                                                           domain: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(store.save(shopper_tracker("old-1", domain)))
    calls = count_merges(monkeypatch, store)

    async def scenario() -> None:
        tracker = await store.retrieve_full_tracker("old-1")
        tracker.update(BotUttered("补发的一条", timestamp=0.5))  # earlier than the stored events
        await store.save(tracker)

    asyncio.run(scenario())
    assert calls == ["old-1"]  # read back for Rasa's merge
    stored = as_dicts(asyncio.run(store.retrieve_full_tracker("old-1")))
    assert stored[:-1] == as_dicts(shopper_tracker("old-1", domain)) and stored[-1]["text"] == "补发的一条"


def test_the_latest_session_reads_as_rasas_store_reads_it(store: EncryptedRedisTrackerStore, domain: Domain) -> None:
    tracker = shopper_tracker("session-1", domain)
    tracker.update(ActionExecuted("action_session_start", timestamp=5.0))  # a second session begins
    tracker.update(SessionStarted(timestamp=5.1))
    tracker.update(SlotSet("order_id", "SO20240501001", timestamp=5.2))
    tracker.update(ActionExecuted("action_listen", timestamp=5.3))
    asyncio.run(store.save(tracker))
    ours = asyncio.run(store.retrieve("session-1"))
    with rasa_patches.stock():
        rasa = asyncio.run(RedisTrackerStore._retrieve(store, "session-1", fetch_all_sessions=False))
    assert ours is not None and rasa is not None
    assert as_dicts(ours) == as_dicts(rasa) and as_dicts(ours)[0]["name"] == "action_session_start"
    assert ours.current_state() == rasa.current_state()
    assert {name: slot.value for name, slot in ours.slots.items()} == {name: slot.value for name, slot in rasa.slots.items()}
