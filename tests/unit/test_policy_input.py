"""Policy input hardening: only regular files, capped by bytes read (issue 11 item 10), and
numbers that round-trip exactly through an IEEE 754 double (issue 18 item 7, ADR 0076)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785

from symphony_schema import policy
from symphony_schema.policy import PolicyError

# --------------------------------------------------------------------------------------------
# Non-regular and over-limit files
# --------------------------------------------------------------------------------------------


def _load_in_capped_child(path: Path) -> subprocess.CompletedProcess[str]:
    # A child with a 2 GiB address-space cap and a timeout: before the fix, /dev/zero was read
    # until memory ran out and a FIFO without a writer blocked open() forever.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from pathlib import Path\n"
        "from symphony_schema import policy\n"
        "try:\n"
        "    policy.load_policy_file(Path(sys.argv[1]))\n"
        "except policy.PolicyError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(2)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_dev_zero_is_refused_without_reading_it() -> None:
    done = _load_in_capped_child(Path("/dev/zero"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a regular file (a character device)" in done.stdout
    assert "nothing was read or written" in done.stdout.lower()


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.fifo"
    os.mkfifo(fifo)
    done = _load_in_capped_child(fifo)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a regular file (a FIFO)" in done.stdout


def test_the_env_file_must_be_a_regular_file(tmp_path: Path) -> None:
    env = {"POLICY_VERSION": "v1", "POLICY_FILE": "/dev/zero"}
    with pytest.raises(PolicyError, match="is not a regular file"):
        policy.pinned_policy_from_env(env)


def test_a_file_growing_past_the_limit_is_capped_by_bytes_read(tmp_path: Path) -> None:
    # The size is judged by what is read, not by stat() alone: a file exactly at the limit is
    # fine, one byte more is refused.
    path = tmp_path / "edge.json"
    head = '{"policyVersion": "v1", "x": "'
    path.write_text(head + "a" * (policy.MAX_POLICY_BYTES - len(head) - 2) + '"}')
    assert path.stat().st_size == policy.MAX_POLICY_BYTES
    assert policy.load_policy_file(path)["policyVersion"] == "v1"
    path.write_text(head + "a" * (policy.MAX_POLICY_BYTES - len(head) - 1) + '"}')
    with pytest.raises(PolicyError, match="more than the 1048576 bytes"):
        policy.load_policy_file(path)


def test_an_oversized_policy_document_variable_is_refused() -> None:
    text = json.dumps({"policyVersion": "v1", "x": "a" * policy.MAX_POLICY_BYTES})
    env = {"POLICY_VERSION": "v1", "POLICY_DOCUMENT": text}
    with pytest.raises(
        PolicyError, match=r"POLICY_DOCUMENT is \d+ bytes, more than the 1048576 bytes"
    ):
        policy.pinned_policy_from_env(env)


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def _doc(number: str) -> str:
    return '{"policyVersion": "v1", "x": ' + number + "}"


@pytest.mark.parametrize(
    ("number", "reads_as"),
    [
        ("9007199254740993", "9007199254740992"),
        ("9007199254740993.0", "9007199254740992"),
        ("9.007199254740993e15", "9007199254740992"),
        ("1000000000000000.01", "1000000000000000"),
        ("123456789012345678901", "1.2345678901234568e+20"),
        ("0.1000000000000000055511151231257827", "0.1"),
        ("1e-400", "0"),
    ],
)
def test_numbers_that_do_not_round_trip_are_refused_with_their_path(
    number: str, reads_as: str
) -> None:
    text = '{"policyVersion": "v1", "limits": {"rails": [1, {"max amount": ' + number + "}]}}"
    with pytest.raises(PolicyError) as caught:
        policy.parse_policy_text(text, "the test document")
    message = str(caught.value)
    assert f'the number {number} at $.limits.rails[1]["max amount"]' in message
    assert "does not round-trip exactly through an IEEE 754 double" in message
    assert f"read it as {reads_as})" in message
    assert "nothing was written" in message


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_numbers_beyond_the_double_range_are_refused(number: str) -> None:
    with pytest.raises(PolicyError, match=r"at \$\.x .*cannot read it as a finite number"):
        policy.parse_policy_text(_doc(number), "t")


def test_colliding_spellings_no_longer_share_a_checksum() -> None:
    good = policy.parse_policy_text(_doc("9007199254740992"), "t")
    policy.canonical_checksum(good)
    for bad in ("9007199254740993.0", "9.007199254740993e15"):
        with pytest.raises(PolicyError):
            policy.parse_policy_text(_doc(bad), "t")


@pytest.mark.parametrize(
    ("number", "canonical"),
    [
        ("0.1", "0.1"),
        ("1e-7", "1e-7"),
        ("9007199254740992", "9007199254740992"),  # 2**53: exact as a double
        ("-9007199254740992", "-9007199254740992"),
        ("9007199254740991", "9007199254740991"),
        ("1E2", "100"),
        ("1e21", "1e+21"),
        ("5e-324", "5e-324"),
        ("-0", "0"),
        ("2.5", "2.5"),
        ("1.5e300", "1.5e+300"),
    ],
)
def test_numbers_that_round_trip_are_accepted(number: str, canonical: str) -> None:
    document = policy.parse_policy_text(_doc(number), "t")
    policy.canonical_checksum(document)  # has a canonical form
    assert rfc8785.dumps(document["x"]).decode() == canonical


def test_integers_in_the_safe_range_stay_integers() -> None:
    document = policy.parse_policy_text('{"policyVersion": "v1", "x": [0, 7, -3]}', "t")
    assert document["x"] == [0, 7, -3]
    assert all(type(value) is int for value in document["x"])
