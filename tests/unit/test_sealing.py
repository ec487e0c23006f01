"""Sealing secret values, and finding and masking them: the key handling, the format,
rotation of one row at a time, and what is shown of URLs and rule payloads."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from execd.data_dir import made_once
from execd.domain.secret_values import (
    map_plan,
    mask_payload,
    mask_url,
    payload_paths,
    scrub,
)
from execd.engine.sealing import (
    KEY_FILE,
    PREFIX,
    Rotation,
    Sealer,
    SealError,
    _Resealer,
    is_sealed,
    key_of,
    new_key,
    read_keys,
)

A, B = new_key(), new_key()


def test_a_sealed_value_names_its_key_and_opens_to_the_same_json_value() -> None:
    sealer = Sealer([A])
    for value in ("s3cret", 42, {"nested": ["x", None]}, ""):
        sealed = sealer.seal(value)
        assert sealed.startswith(PREFIX) and is_sealed(sealed)
        assert key_of(sealed) == sealer.key_ids[0]
        assert "s3cret" not in sealed
        assert sealer.open(sealed) == value
    # The same value sealed twice gives two texts: equal secrets cannot be spotted.
    assert sealer.seal("s3cret") != sealer.seal("s3cret")


def test_plain_values_from_older_versions_open_as_they_are() -> None:
    assert Sealer([A]).open("plain text") == "plain text"
    assert Sealer([A]).open(7) == 7


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, both = Sealer([A]), Sealer([B, A])
    sealed_with_a = old.seal("v")
    assert both.open(sealed_with_a) == "v"
    assert key_of(both.seal("v")) == Sealer([B]).key_ids[0]
    assert not both.is_current(sealed_with_a) and both.is_current(both.seal("v"))


def test_a_node_without_the_key_says_which_key_it_lacks_never_the_value() -> None:
    sealed = Sealer([A]).seal("hunter2-value")
    with pytest.raises(SealError) as caught:
        Sealer([B]).open_values({"token": sealed, "n": 1}, ["token"])
    message = caught.value.message
    assert "'token'" in message and Sealer([A]).key_ids[0] in message
    assert Sealer([B]).key_ids[0] in message and "EXECD_SECRET_KEY" in message
    assert "hunter2" not in message
    assert caught.value.status_code == 503


def test_a_changed_sealed_value_does_not_open() -> None:
    sealer = Sealer([A])
    sealed = sealer.seal("value")
    body = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SealError, match="changed or damaged"):
        sealer.open(body)


def test_keys_are_checked_and_come_from_the_variable_or_a_private_file(tmp_path: Path) -> None:
    keys, source = read_keys(f"{B}, {A}", tmp_path, create=True)
    assert keys == [B, A] and source == "EXECD_SECRET_KEY"
    assert not (tmp_path / KEY_FILE).exists()
    for bad in ("not-a-key", "short", A[:-4]):
        with pytest.raises(SealError, match="32 random bytes"):
            read_keys(bad, tmp_path, create=True)
    with pytest.raises(SealError, match="No secret key"):
        read_keys(None, tmp_path / "data", create=False)
    keys, source = read_keys(None, tmp_path / "data", create=True)
    path = tmp_path / "data" / KEY_FILE
    assert source == str(path) and len(keys) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert read_keys(None, tmp_path / "data", create=True)[0] == keys  # kept, not made again


def test_a_file_made_once_is_the_same_for_processes_starting_together(tmp_path: Path) -> None:
    made: list[str] = []
    path = tmp_path / "token"

    def start(n: int) -> None:
        made.append(made_once(path, lambda: f"made by {n}"))

    threads = [threading.Thread(target=start, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 1 and made[0] == path.read_text().strip()
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary left behind
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _plan(sealer: Sealer) -> dict[str, Any]:
    step = {"parameters": {"token": sealer.seal("t"), "n": 1}, "secrets": ["token"]}
    sub = {"parameters": {"pw": "plain-pw"}, "secrets": ["pw"], "steps": [{"run": step}]}
    return {
        "parameters": {"token": sealer.seal("t"), "other": "x"},
        "secrets": ["token"],
        "steps": [{"sequence": 1, "run": step}, {"sequence": 2, "flow": sub}],
    }


def test_rotation_seals_every_value_of_a_row_with_the_first_key() -> None:
    old, new = Sealer([A]), Sealer([B, A])
    report = Rotation()
    row = {
        "parameters": {"token": old.seal("t"), "legacy": "in-clear", "n": 1},
        "secrets": ["token", "legacy"],
        "plan": _plan(old),
        "job": {"notifications": {"webhookUrl": "https://u:pw-123@hooks.test/x"}},
    }
    changed = _Resealer(new, report).execution(row)
    assert report.resealed == 4 and report.plain == 3 and report.failed == 0
    parameters = changed["parameters"]
    assert new.is_current(parameters["token"]) and new.is_current(parameters["legacy"])
    assert new.open(parameters["legacy"]) == "in-clear" and parameters["n"] == 1
    opened = map_plan(changed["plan"], new.open)
    assert opened == map_plan(_plan(old), old.open)
    assert changed["job"]["notifications"]["webhookUrl"] == "https://u:********@hooks.test/x"
    assert new.open(changed["job"]["sealed"]["webhookUrl"]) == "https://u:pw-123@hooks.test/x"
    # Run again: nothing left to do.
    again = Rotation()
    row.update(changed)
    assert _Resealer(new, again).execution(row) == {}
    assert again.current == 7 and again.changed == 0


def test_rotation_leaves_what_it_cannot_open_and_says_why() -> None:
    report = Rotation()
    sealed = Sealer([A]).seal("t")
    resealer = _Resealer(Sealer([B]), report)
    assert resealer.trigger({"secret": sealed}) == {}
    assert report.failed == 1 and "does not have" in report.problems[0]


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        ("https://hooks.test/jobs", "https://hooks.test/jobs", []),
        ("https://alice:pa55@hooks.test/x", "https://alice:********@hooks.test/x", ["pa55"]),
        ("https://tok3n@hooks.test/x", "https://********@hooks.test/x", ["tok3n"]),
        (
            "https://hooks.test/x?token=abc&channel=ops&flag",
            "https://hooks.test/x?token=********&channel=********&flag",
            ["abc", "ops"],
        ),
        (
            "https://chat.test/services/T0001/B0002/aB3dE5gH7jK9mN1pQ3",
            "https://chat.test/services/T0001/B0002/********",
            ["aB3dE5gH7jK9mN1pQ3"],
        ),
        ("https://hooks.test/x#frag", "https://hooks.test/x#********", ["frag"]),
    ],
)
def test_urls_are_shown_without_their_credentials(url: str, shown: str, hidden: list[str]) -> None:
    assert mask_url(url) == (shown, hidden)
    assert mask_url(shown)[0] == shown  # masking again changes nothing


def test_error_texts_are_scrubbed_of_hidden_pieces() -> None:
    _, hidden = mask_url("https://alice:p@ss w0rd@hooks.test/x")
    text = "ConnectError for https://alice:p%40ss%20w0rd@hooks.test/x and p@ss w0rd"
    assert "w0rd" not in scrub(text, hidden)


def test_rule_payload_fields_mapped_into_secret_parameters_are_masked() -> None:
    template = {
        "token": "{{ payload.auth.token }}",
        "header": "Bearer {{ payload.items.1 }}",
        "who": "{{ payload.user }} via {{ trigger.ref }}",
    }
    paths = payload_paths(template, {"token", "header"})
    assert paths == {"payload.auth.token", "payload.items.1"}
    payload = {"auth": {"token": "T", "kind": "k"}, "items": ["a", "b"], "user": "u"}
    shown = mask_payload(payload, paths)
    assert shown == {
        "auth": {"token": "********", "kind": "k"},
        "items": ["a", "********"],
        "user": "u",
    }
    assert payload["auth"] == {"token": "T", "kind": "k"}  # the original is left alone
    # An action that is not known: everything the rule maps is masked.
    assert payload_paths(template, None) == paths | {"payload.user"}
    assert mask_payload(payload, {"payload"}) == "********"
    assert mask_payload(payload, {"payload.missing.x", "payload.items.9"}) == payload
