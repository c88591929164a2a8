"""The SRP user store: passwords, the file, reloads, the tlslite mapping and imports."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from tlslite import mathtls
from tlslite.utils.cryptomath import powMod
from tlslite.verifierdb import VerifierDB

from python_est.errors import UserStoreError
from python_est.users import GROUPS, UserStore, normalize_username

# Made with OpenSSL 3.0.19: `touch f; openssl srp -srpvfile f -add -gn 2048 -passout
# pass:secret1 alice`, the same with `-gn 1024` for bob and carol (pass:carol-pw), then
# `openssl srp -srpvfile f -delete bob`.
OPENSSL_SRPVFILE = (
    "V\t0pYF9drfBEBvtmMvHShp5288eR/yt/GfGPw/ba8ABCT9gHacknSl9oBiAfl8R1cduLK6MMZayWdi.Q3xInSHxh"
    "OfI3HfVwoqRaazYXXi2nUF/wrZMweDySSl0RCpJox.O7rhpz7H7EvNcm1QeBsCaCBm8U5lvKQeRym/JwHixLNP8Oha"
    "eRjSAG2Q/oJDlTrg9WlboEvl7k6Qx2gwPTXL9cJFj6jVDidrpckbcqzuZZYgTnzvczHJ2Z3jNoowEkS4dbcefuiyeB"
    "o32KEphSico4n9.yNJcHt5bbeaChXFmrqgMRDtC4QpEWU598sUEVnswYUQShy.58WW/l26q92ggB"
    "\t7DnnPvYysdu0j3LNjoSp6FG75wo\talice\t2048\t\n"
    "R\tCM8yNHKa5J4qDsmbGWQPd9V2WuVQCcAGpPtyQC2kWuQingNg3QjOLGyj0exXxc9j/wEOMPE7e4k5ayC4PLDUFd"
    "eoADygkwT7dZeFcVdbOacvl1yUFx7mj6yaMuFhKplOMbSezxGshmuuVIs/Y9NB3G4x37H3jud8BH6fEsShh1e"
    "\tCGJr1P4ALB2imlNIjaqmOxMu30p\tbob\t1024\t\n"
    "V\t80JidT/0nAdVzo5rsW.TNoVebYh8Afn.ptDrlCRPnJXzTV/zKI8RW2iJl8CyYdebjCSvwLZQ5mVRCi.yMcRPov0"
    "94xmEu7G1tbAR5jyQsaJ9VYdm80D4bg2.nceGoZUXR8lVlYhM6EHnoA0uMFtqddarlj3W6COMMXwh4ZCJw.L"
    "\t1iAA5U.rRucxJce8Tl3ncZyD.ni\tcarol\t1024\t\n"
)
SRP_B64 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz./"


def srp_b64(value: int) -> str:
    digits = ""
    while value:
        value, digit = divmod(value, 64)
        digits = SRP_B64[digit] + digits
    return digits or "0"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "users.srp"


@pytest.fixture
def store(path: Path) -> UserStore:
    return UserStore.create(path, reload_interval=None)


def test_add_then_check_password(store: UserStore) -> None:
    store.add("alice", "correct horse")
    assert store.check_password("alice", "correct horse")
    assert not store.check_password("alice", "correct horsE")
    assert not store.check_password("alice", "")
    assert not store.check_password("mallory", "correct horse")
    assert not store.check_password("ali:ce", "correct horse")
    assert not store.check_password("", "correct horse")
    assert store.exists("alice") and not store.exists("mallory")
    assert store.list_users() == ["alice"]


def test_add_refuses_a_second_user_of_the_same_name(store: UserStore) -> None:
    store.add("alice", "one")
    with pytest.raises(UserStoreError, match="already exists"):
        store.add("alice", "two")
    assert store.check_password("alice", "one")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "non-empty"),
        ("a:b", "':'"),
        ("tab\tname", "control"),
        ("nul\x00", "control"),
        (" alice", "whitespace"),
        ("x" * 129, "128 characters"),
        ("\u20ac" * 100, "255 bytes"),
    ],
)
def test_bad_user_names_are_refused(store: UserStore, name: str, problem: str) -> None:
    with pytest.raises(UserStoreError, match=problem):
        store.add(name, "pw")
    assert store.list_users() == []


def test_user_names_are_stored_in_nfc(store: UserStore) -> None:
    store.add("Jose\u0301", "pw")
    assert store.list_users() == ["Jos\u00e9"]
    assert normalize_username("Jose\u0301") == "Jos\u00e9"
    assert store.check_password("Jos\u00e9", "pw")
    assert store.check_password("Jose\u0301", "pw")
    assert "Jos\u00e9".encode() in store.srp_verifiers()


def test_passwords_are_not_normalized(store: UserStore) -> None:
    store.add("bob", "caf\u00e9")
    assert store.check_password("bob", "caf\u00e9")
    assert not store.check_password("bob", "cafe\u0301")


@pytest.mark.parametrize("password", ["", "\ud800"])
def test_bad_passwords_are_refused(store: UserStore, password: str) -> None:
    with pytest.raises(UserStoreError, match="password"):
        store.add("alice", password)


def test_group_choice(store: UserStore) -> None:
    store.add("big", "pw", group_bits=3072)
    n, g, _, _ = store.srp_verifiers()[b"big"]
    assert (n, g) == GROUPS[3072] and g == 5
    assert store.check_password("big", "pw")
    with pytest.raises(UserStoreError, match="2048, 3072, 4096"):
        store.add("small", "pw", group_bits=1024)
    assert not store.exists("small")


def test_passwd_replaces_password_and_salt(store: UserStore) -> None:
    store.add("alice", "old", allowed_names=["alice", "dev1.example"])
    salt_before = store.srp_verifiers()[b"alice"][2]
    store.passwd("alice", "new")
    assert store.check_password("alice", "new")
    assert not store.check_password("alice", "old")
    assert store.srp_verifiers()[b"alice"][2] != salt_before
    assert store.allowed_names("alice") == ("alice", "dev1.example")
    with pytest.raises(UserStoreError, match="no such user"):
        store.passwd("nobody", "pw")


def test_remove(store: UserStore) -> None:
    store.add("alice", "pw")
    store.add("bob", "pw")
    store.remove("alice")
    assert store.list_users() == ["bob"]
    assert not store.check_password("alice", "pw")
    with pytest.raises(UserStoreError, match="no such user"):
        store.remove("alice")


def test_allowed_names(store: UserStore) -> None:
    store.add("alice", "pw")
    assert store.allowed_names("alice") == ("alice",)
    store.set_allowed_names("alice", ["dev1.example", "dev2.example"])
    assert store.allowed_names("alice") == ("dev1.example", "dev2.example")
    store.set_allowed_names("alice", None)
    assert store.allowed_names("alice") == ("alice",)
    assert store.allowed_names("mallory") == ()
    with pytest.raises(UserStoreError, match="empty"):
        store.set_allowed_names("alice", [])
    with pytest.raises(UserStoreError, match="not one string"):
        store.set_allowed_names("alice", "dev1.example")
    with pytest.raises(UserStoreError, match="no such user"):
        store.set_allowed_names("mallory", ["x"])
    info = store.describe("alice")
    assert info is not None and info.group_bits == 2048 and not info.weak
    assert store.describe("mallory") is None


def test_file_is_private_json_without_plaintext(store: UserStore, path: Path) -> None:
    password = "a-very-distinctive-password"
    store.add("alice", password)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert password.encode() not in raw
    assert base64.b64encode(password.encode()) not in raw
    document = json.loads(raw)
    assert document["format"] == "python-est-users" and document["version"] == 1
    entry = document["users"]["alice"]
    assert entry["group"] == 2048
    assert len(base64.b64decode(entry["verifier"])) == 256  # padded to the length of N
    assert sorted(entry) == ["created", "group", "salt", "verifier"]
    assert len(base64.b64decode(document["secret"])) == 32


def test_create_refuses_an_existing_file_and_open_needs_one(path: Path) -> None:
    UserStore.create(path)
    with pytest.raises(UserStoreError, match="already exists"):
        UserStore.create(path)
    with pytest.raises(UserStoreError, match="does not exist"):
        UserStore(path.with_name("missing.srp"))


def test_reload_sees_changes_from_another_process(store: UserStore, path: Path) -> None:
    other = UserStore(path, reload_interval=None)
    other.add("bob", "pw")
    assert not store.exists("bob")
    assert store.reload() is True
    assert store.check_password("bob", "pw")
    assert store.reload() is False


def test_lookups_reload_by_themselves(path: Path) -> None:
    store = UserStore.create(path, reload_interval=0)
    UserStore(path, reload_interval=None).add("bob", "pw")
    assert store.check_password("bob", "pw")


def test_mutations_merge_with_changes_made_elsewhere(store: UserStore, path: Path) -> None:
    store.add("alice", "pw")
    UserStore(path, reload_interval=None).add("bob", "pw")
    store.add("carol", "pw")
    assert UserStore(path).list_users() == ["alice", "bob", "carol"]


def test_corrupt_file_keeps_the_old_users(store: UserStore, path: Path) -> None:
    store.add("alice", "pw")
    path.write_text("{ not json")
    with pytest.raises(UserStoreError, match="not valid JSON"):
        store.reload()
    assert store.check_password("alice", "pw")
    with pytest.raises(UserStoreError):
        store.load()
    assert store.list_users() == ["alice"]


def test_corrupt_file_during_automatic_reload_is_survived(path: Path) -> None:
    store = UserStore.create(path, reload_interval=0)
    store.add("alice", "pw")
    path.write_text('{"format": "python-est-users", "version": 1}')
    assert store.check_password("alice", "pw")
    path.unlink()
    assert store.check_password("alice", "pw")


def _rewrite(path: Path, change: dict[str, object]) -> None:
    document = json.loads(path.read_text())
    document["users"]["alice"].update(change)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"group": 2000}, "unknown|RFC 5054"),
        ({"group": "2048"}, "number of bits"),
        ({"salt": "***"}, "base64"),
        ({"verifier": base64.b64encode(b"\x00").decode()}, "out of range"),
        ({"verifier": base64.b64encode(b"\xff" * 300).decode()}, "out of range"),
        ({"allowed_names": "alice"}, "must be a list"),
    ],
)
def test_malformed_entries_are_refused(
    store: UserStore, path: Path, change: dict[str, object], problem: str
) -> None:
    store.add("alice", "pw")
    _rewrite(path, change)
    with pytest.raises(UserStoreError, match=problem):
        UserStore(path)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"format": "other", "version": 1}, "not a python-est user store"),
        ({"format": "python-est-users", "version": 2}, "version 2"),
        ({"format": "python-est-users", "version": 1, "users": {}}, "secret is missing"),
        ({"format": "python-est-users", "version": 1, "users": {}, "secret": "AAAA"}, "short"),
        (
            {"format": "python-est-users", "version": 1, "users": {"a:b": {}}, "secret": "A" * 44},
            "':'",
        ),
    ],
)
def test_malformed_files_are_refused(path: Path, document: object, problem: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    with pytest.raises(UserStoreError, match=problem):
        UserStore(path)


def test_srp_entry_is_what_tlslite_derives(store: UserStore) -> None:
    store.add("alice", "s3cret")
    n, g, salt, verifier = store.srp_verifiers()[b"alice"]
    assert (g, n) == tuple(mathtls.goodGroupParameters[2])
    assert isinstance(salt, bytes) and len(salt) == 16 and salt[0] != 0
    x = mathtls.makeX(bytearray(salt), bytearray(b"alice"), bytearray(b"s3cret"))
    assert verifier == powMod(g, x, n)
    reference = VerifierDB()
    reference[b"alice"] = (n, g, salt, verifier)
    assert reference.check(b"alice", bytearray(b"s3cret"))
    assert not reference.check(b"alice", bytearray(b"wrong"))


def test_unknown_users_get_a_stable_simulated_entry(store: UserStore, path: Path) -> None:
    store.add("alice", "pw")
    verifiers = store.srp_verifiers()
    first = verifiers[b"mallory"]
    assert first == verifiers[b"mallory"]
    assert first == UserStore(path).srp_verifiers()[b"mallory"]  # the secret is in the file
    other = verifiers[b"trudy"]
    assert first[2] != other[2] and first[3] != other[3]
    assert (first[0], first[1]) == GROUPS[2048] and len(first[2]) == 16
    assert 1 < first[3] < first[0]
    assert verifiers[b"\xff\xfe"][0] == GROUPS[2048][0]  # not UTF-8: still simulated
    assert b"mallory" not in verifiers and b"alice" in verifiers
    assert list(verifiers) == [b"alice"] and len(verifiers) == 1


def test_simulated_entries_follow_the_secret_not_the_name_alone(tmp_path: Path) -> None:
    one = UserStore.create(tmp_path / "one.srp")
    two = UserStore.create(tmp_path / "two.srp")
    assert one.srp_verifiers()[b"mallory"][2] != two.srp_verifiers()[b"mallory"][2]


def test_simulated_group_is_the_one_most_users_have(store: UserStore) -> None:
    store.add("a", "pw", group_bits=3072)
    store.add("b", "pw", group_bits=3072)
    store.add("c", "pw")
    assert store.srp_verifiers()[b"mallory"][0] == GROUPS[3072][0]
    assert not store.check_password("mallory", "pw")


def test_empty_store_is_still_a_true_verifier_db(store: UserStore) -> None:
    # tlslite offers SRP suites only when `verifierDB` is truthy.
    verifiers = store.srp_verifiers()
    assert len(verifiers) == 0 and bool(verifiers)


def test_readers_see_whole_states_while_a_writer_works(store: UserStore) -> None:
    store.add("alice", "pw0")
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            entry = store.srp_verifiers()[b"alice"]
            if entry[0] != GROUPS[2048][0]:
                errors.append("group changed")
            if store.list_users() != ["alice"]:
                errors.append("users changed")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(1, 6):
        store.passwd("alice", f"pw{i}")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.check_password("alice", "pw5")


def test_import_openssl_srpvfile(store: UserStore, tmp_path: Path) -> None:
    source = tmp_path / "srpvfile.txt"
    source.write_text(OPENSSL_SRPVFILE)
    assert store.import_openssl_srpvfile(source) == ["alice", "carol"]
    assert store.check_password("alice", "secret1")
    assert not store.check_password("alice", "secret2")
    assert store.check_password("carol", "carol-pw")
    assert not store.exists("bob")  # revoked
    assert store.weak_users() == ["carol"]
    info = store.describe("carol")
    assert info is not None and info.weak and info.group_bits == 1024
    store.passwd("carol", "new-pw")
    assert store.weak_users() == [] and store.srp_verifiers()[b"carol"][0] == GROUPS[2048][0]
    assert store.check_password("carol", "new-pw")


def test_import_refuses_existing_users_unless_overwriting(store: UserStore, tmp_path: Path) -> None:
    source = tmp_path / "srpvfile.txt"
    source.write_text(OPENSSL_SRPVFILE)
    store.add("alice", "local", allowed_names=["dev.example"])
    with pytest.raises(UserStoreError, match="already exist: alice"):
        store.import_openssl_srpvfile(source)
    assert store.list_users() == ["alice"]  # all or nothing: carol was not added
    assert store.import_openssl_srpvfile(source, overwrite=True) == ["alice", "carol"]
    assert store.check_password("alice", "secret1")
    assert store.allowed_names("alice") == ("dev.example",)


def _custom_group_file(n: int, g: int, salt: bytes, password: bytes) -> str:
    x = mathtls.makeX(bytearray(salt), bytearray(b"dave"), bytearray(password))
    verifier = powMod(g, x, n)
    salt_field = srp_b64(int.from_bytes(salt, "big"))
    return (
        f"I\t{srp_b64(n)}\t{srp_b64(g)}\tmygroup\t\t\n"
        f"V\t{srp_b64(verifier)}\t{salt_field}\tdave\tmygroup\t\n"
    )


def test_import_accepts_a_custom_group_equal_to_rfc5054(store: UserStore, tmp_path: Path) -> None:
    n, g = GROUPS[3072]
    source = tmp_path / "custom.txt"
    source.write_text(_custom_group_file(n, g, b"\x01" * 20, b"pw"))
    assert store.import_openssl_srpvfile(source) == ["dave"]
    assert store.check_password("dave", "pw")
    assert store.srp_verifiers()[b"dave"][:2] == (n, g)


def test_import_refuses_unknown_custom_groups(store: UserStore, tmp_path: Path) -> None:
    g, n = mathtls.FFDHE2048  # a safe prime, but not an RFC 5054 SRP group
    source = tmp_path / "custom.txt"
    source.write_text(_custom_group_file(n, g, b"\x01" * 20, b"pw"))
    with pytest.raises(UserStoreError, match="not one of the RFC 5054 groups"):
        store.import_openssl_srpvfile(source)
    assert store.list_users() == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("V\tAAAA\tBBBB\tdave\t999\t\n", "unknown SRP group id '999'"),
        ("V\tAA*A\tBBBB\tdave\t2048\t\n", "malformed verifier or salt"),
        ("X\tAAAA\tBBBB\tdave\t2048\t\n", "not an openssl srp verifier line"),
        ("V\tAAAA\tBBBB\n", "not an openssl srp verifier line"),
        ("V\tAAAA\tBBBB\td:ave\t2048\t\n", "line 1: user name must not contain"),
        ("V\tAAAA\tBBBB\tdave\t2048\t\nV\tAAAB\tBBBB\tdave\t2048\t\n", "listed twice"),
    ],
)
def test_import_refuses_malformed_srpvfiles(
    store: UserStore, tmp_path: Path, text: str, problem: str
) -> None:
    source = tmp_path / "bad.txt"
    source.write_text(text)
    with pytest.raises(UserStoreError, match=problem):
        store.import_openssl_srpvfile(source)
    assert store.list_users() == []


def test_import_tlslite_verifierdb(store: UserStore, tmp_path: Path) -> None:
    db_path = tmp_path / "verifiers"
    db = VerifierDB(str(db_path))
    db.create()
    db["dave"] = VerifierDB.makeVerifier("dave", "pw-d", 2048)
    db[b"erin"] = VerifierDB.makeVerifier("erin", "pw-e", 4096)
    db.db.close()
    assert store.import_tlslite_verifierdb(db_path) == ["dave", "erin"]
    assert store.check_password("dave", "pw-d") and store.check_password("erin", "pw-e")
    assert not store.check_password("erin", "pw-d")
    assert store.srp_verifiers()[b"erin"][0] == GROUPS[4096][0]


def test_import_tlslite_verifierdb_refuses_foreign_groups(store: UserStore, tmp_path: Path) -> None:
    db_path = tmp_path / "verifiers"
    db = VerifierDB(str(db_path))
    db.create()
    g, n = mathtls.FFDHE2048
    db[b"dave"] = (n, g, b"\x01" * 16, 12345)
    db.db.close()
    with pytest.raises(UserStoreError, match="RFC 5054"):
        store.import_tlslite_verifierdb(db_path)
    with pytest.raises(UserStoreError, match="cannot open"):
        store.import_tlslite_verifierdb(tmp_path / "missing")
    assert store.list_users() == []


def test_store_file_written_by_umask_friendly_tools_is_tightened(path: Path) -> None:
    store = UserStore.create(path, reload_interval=None)
    os.chmod(path, 0o644)
    store.add("alice", "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- look-alike names (NFKC case folding) ---


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        ("kiosk", "\u212aiosk"),  # KELVIN SIGN
        ("\u212aiosk", "KIOSK"),
        ("straße", "STRASSE"),
        ("device1", "Device1"),
        ("device1", "\uff44evice1"),  # FULLWIDTH d
        ("ﬁle", "file"),  # LATIN SMALL LIGATURE FI
        ("ix", "\u2168"),  # ROMAN NUMERAL NINE
        ("\u00e5ngstr\u00f6m", "\u212bNGSTR\u00d6M"),  # ANGSTROM SIGN, upper case
        ("\u03c3", "\u03c2"),  # sigma, final sigma
    ],
)
def test_add_refuses_a_look_alike_of_an_existing_user(
    store: UserStore, existing: str, new: str
) -> None:
    store.add(existing, "pw")
    with pytest.raises(UserStoreError) as info:
        store.add(new, "pw")
    stored = normalize_username(existing)
    assert str(info.value).startswith(f"user {normalize_username(new)!r} collides")
    assert f"existing user {stored!r}" in str(info.value)
    assert store.list_users() == [stored]


@pytest.mark.parametrize(("one", "two"), [("alice", "alicia"), ("i", "\u0131"), ("a b", "ab")])
def test_distinct_names_do_not_collide(store: UserStore, one: str, two: str) -> None:
    store.add(one, "pw")
    store.add(two, "pw")
    assert len(store.list_users()) == 2


def test_login_needs_the_exact_stored_name(store: UserStore) -> None:
    store.add("kiosk", "pw")
    assert store.check_password("kiosk", "pw")
    assert not store.check_password("\u212aiosk", "pw")
    assert not store.check_password("KIOSK", "pw")
    assert b"KIOSK" not in store.srp_verifiers()


def test_import_refuses_look_alikes_of_existing_users_and_of_each_other(
    store: UserStore, tmp_path: Path
) -> None:
    store.add("kiosk", "pw")
    source = UserStore.create(tmp_path / "other.srp")
    source.add("\u212aiosk", "pw")
    file = tmp_path / "srpvfile"
    file.write_text(OPENSSL_SRPVFILE.replace("\tcarol\t", "\tAlice\t"))
    with pytest.raises(UserStoreError, match="'Alice' collides with the existing user 'alice'"):
        store.import_openssl_srpvfile(file)
    assert store.list_users() == ["kiosk"]
