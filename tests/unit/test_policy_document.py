"""Policy documents without a database: canonical checksum, strict parsing, the --from-env rules."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symphony_schema import policy
from symphony_schema.policy import PolicyError

SAMPLE = {"policyVersion": "v1", "b": [True, None], "a": 1, "c": {"y": "é", "x": 1.5}}
# RFC 8785 by hand: keys sorted by UTF-16 code units, no whitespace, UTF-8, shortest numbers.
SAMPLE_CANONICAL = '{"a":1,"b":[true,null],"c":{"x":1.5,"y":"é"},"policyVersion":"v1"}'


def test_checksum_is_sha256_of_the_rfc8785_canonical_form() -> None:
    expected = hashlib.sha256(SAMPLE_CANONICAL.encode("utf-8")).hexdigest()
    assert policy.canonical_checksum(SAMPLE) == expected


def test_checksum_ignores_key_order_and_whitespace() -> None:
    pretty = json.dumps(SAMPLE, indent=4, ensure_ascii=True)
    reordered = (
        '{ "c" : {"x":1.50,"y":"\\u00e9"},\n\t"a":1, "b":[true , null],"policyVersion":"v1"}'
    )
    checksums = {
        policy.canonical_checksum(policy.parse_policy_text(text, "t"))
        for text in (SAMPLE_CANONICAL, pretty, reordered)
    }
    assert checksums == {policy.canonical_checksum(SAMPLE)}


def test_checksum_changes_with_any_value() -> None:
    changed = dict(SAMPLE, a=2)
    assert policy.canonical_checksum(changed) != policy.canonical_checksum(SAMPLE)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


@settings(max_examples=60, deadline=None)
@given(body=st.dictionaries(st.text(max_size=6), json_values, max_size=5), seed=st.integers())
def test_checksum_is_invariant_under_key_order_and_formatting(
    body: dict[str, Any], seed: int
) -> None:
    document = {"policyVersion": "v", **body}
    rng = random.Random(seed)
    text = json.dumps(_shuffled(document, rng), indent=rng.choice([None, 1, 3]))
    assert policy.canonical_checksum(policy.parse_policy_text(text, "t")) == (
        policy.canonical_checksum(document)
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"policyVersion": "v1",}', "not valid JSON"),
        ('{"policyVersion": "v1", "x": NaN}', "NaN is not JSON"),
        ('{"policyVersion": "v1", "x": Infinity}', "Infinity is not JSON"),
        ('{"policyVersion": "v1", "policyVersion": "v2"}', "duplicate key 'policyVersion'"),
        ('["policyVersion", "v1"]', "not a JSON array"),
        ('"v1"', "not a JSON string"),
        ("42", "not a JSON number"),
        ("null", "not a JSON null"),
    ],
)
def test_malformed_documents_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint) as caught:
        policy.parse_policy_text(text, "the test document")
    assert "nothing was written" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"policyVersion": "v1", "x": "\\ud800"}',  # lone surrogate: not UTF-8
    ],
)
def test_documents_without_a_canonical_form_are_refused(text: str) -> None:
    document = policy.parse_policy_text(text, "t")
    with pytest.raises(PolicyError, match="cannot compute the policy checksum"):
        policy.canonical_checksum(document)


def test_nan_in_a_python_document_is_refused() -> None:
    with pytest.raises(PolicyError, match="cannot compute the policy checksum"):
        policy.canonical_checksum({"policyVersion": "v1", "x": float("nan")})


@pytest.mark.parametrize(
    ("version", "complaint"),
    [
        (None, "it is missing"),
        ("", "is empty"),
        ("   ", "is empty"),
        (" v1", "surrounded by whitespace"),
        ("v1\n", "surrounded by whitespace"),
        ("v\x001", "control characters"),
        ("v" * 201, "longer than 200"),
        (1, "a JSON number"),
        (["v1"], "a JSON array"),
        (True, "a JSON boolean"),
    ],
)
def test_unusable_versions_are_refused(version: object, complaint: str) -> None:
    document: dict[str, object] = {"x": 1}
    if version is not None:
        document["policyVersion"] = version
    with pytest.raises(PolicyError, match=complaint):
        policy.pinned_policy_of(document)


def test_pinned_policy_of_a_good_document() -> None:
    pinned = policy.pinned_policy_of(SAMPLE, "sample")
    assert (pinned.version, pinned.checksum) == ("v1", policy.canonical_checksum(SAMPLE))


def test_the_development_policy_is_seedable() -> None:
    assert policy.DEFAULT_POLICY_FILE.relative_to(Path(__file__).resolve().parents[2]) == Path(
        "policy/dev-policy.json"
    )
    document = policy.load_policy_file(policy.DEFAULT_POLICY_FILE)
    pinned = policy.pinned_policy_of(document)
    assert pinned.version == document["policyVersion"]
    assert len(pinned.checksum) == 64


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_missing_file_is_refused_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(PolicyError, match=f"cannot read policy file {missing}"):
        policy.load_policy_file(missing)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        policy.load_policy_file(tmp_path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"policyVersion": "v\xe9"}'.encode("latin-1"))
    with pytest.raises(PolicyError, match="is not UTF-8"):
        policy.load_policy_file(path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('{"policyVersion": "v1", "x": "' + "a" * policy.MAX_POLICY_BYTES + '"}')
    with pytest.raises(PolicyError, match="more than the 1048576 bytes a policy document may have"):
        policy.load_policy_file(path)


def test_a_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_CANONICAL.encode("utf-8"))
    assert policy.load_policy_file(path) == SAMPLE


# --------------------------------------------------------------------------------------------
# The --from-env contract
# --------------------------------------------------------------------------------------------

DOC_TEXT = json.dumps(SAMPLE)
DOC_SUM = policy.canonical_checksum(SAMPLE)


def test_env_version_and_document() -> None:
    pinned = policy.pinned_policy_from_env({"POLICY_VERSION": "v1", "POLICY_DOCUMENT": DOC_TEXT})
    assert (pinned.version, pinned.checksum) == ("v1", DOC_SUM)


def test_env_version_and_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(DOC_TEXT)
    pinned = policy.pinned_policy_from_env({"POLICY_VERSION": "v1", "POLICY_FILE": str(path)})
    assert (pinned.version, pinned.checksum) == ("v1", DOC_SUM)


def test_env_version_and_checksum_only() -> None:
    pinned = policy.pinned_policy_from_env({"POLICY_VERSION": "v9", "POLICY_CHECKSUM": DOC_SUM})
    assert (pinned.version, pinned.checksum) == ("v9", DOC_SUM)


def test_env_checksum_pins_the_document() -> None:
    env = {"POLICY_VERSION": "v1", "POLICY_DOCUMENT": DOC_TEXT, "POLICY_CHECKSUM": DOC_SUM}
    assert policy.pinned_policy_from_env(env).checksum == DOC_SUM
    with pytest.raises(PolicyError, match="is not the pinned one"):
        policy.pinned_policy_from_env(dict(env, POLICY_CHECKSUM="0" * 64))


def test_empty_variables_count_as_unset() -> None:
    env = {"POLICY_VERSION": "v1", "POLICY_DOCUMENT": DOC_TEXT, "POLICY_FILE": ""}
    assert policy.pinned_policy_from_env(env).checksum == DOC_SUM


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "POLICY_VERSION is not set"),
        ({"POLICY_VERSION": "", "POLICY_DOCUMENT": DOC_TEXT}, "POLICY_VERSION is not set"),
        ({"POLICY_DOCUMENT": DOC_TEXT}, "POLICY_VERSION is not set"),
        ({"POLICY_VERSION": "v1"}, "neither POLICY_DOCUMENT, POLICY_FILE nor POLICY_CHECKSUM"),
        ({"POLICY_VERSION": " v1", "POLICY_DOCUMENT": DOC_TEXT}, "surrounded by whitespace"),
        (
            {"POLICY_VERSION": "v2", "POLICY_DOCUMENT": DOC_TEXT},
            "POLICY_VERSION is 'v2' but the document in POLICY_DOCUMENT has policyVersion 'v1'",
        ),
        (
            {"POLICY_VERSION": "v1", "POLICY_DOCUMENT": DOC_TEXT, "POLICY_FILE": "x.json"},
            "both POLICY_DOCUMENT and POLICY_FILE are set",
        ),
        ({"POLICY_VERSION": "v1", "POLICY_CHECKSUM": DOC_SUM.upper()}, "64 lowercase hex"),
        ({"POLICY_VERSION": "v1", "POLICY_CHECKSUM": DOC_SUM[:-1]}, "64 lowercase hex"),
        ({"POLICY_VERSION": "v1", "POLICY_CHECKSUM": f"sha256:{DOC_SUM}"}, "64 lowercase hex"),
        ({"POLICY_VERSION": "v1", "POLICY_DOCUMENT": "{nope"}, "not valid JSON"),
        ({"POLICY_VERSION": "v1", "POLICY_DOCUMENT": "[1]"}, "not a JSON array"),
        ({"POLICY_VERSION": "v1", "POLICY_FILE": "/nonexistent/p.json"}, "cannot read"),
    ],
)
def test_env_contract_refusals(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint):
        policy.pinned_policy_from_env(env)
