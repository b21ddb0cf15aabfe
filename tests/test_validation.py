"""The small shared helpers, against hand-made answers.

harness.common.validation's checks and harness.common.run_id's hashing.
"""

import dataclasses
import hashlib
import json

import pytest

from harness.common import validation
from harness.common.run_id import differences, digest, result_defining


def test_check_choice_quotes_value_and_choices():
    validation.check_choice("scope", "layer", ("layer", "global"))
    with pytest.raises(ValueError, match=r"^Unknown scope 'lyer'; available: \['layer', 'global'\]$"):
        validation.check_choice("scope", "lyer", ("layer", "global"))


@pytest.mark.parametrize("values, message", [
    ([], "must be a non-empty list of strings. Received: x=[]"),
    ("ab", "must be a non-empty list of strings. Received: x='ab'"),
    (["a", True], "must be a list of strings. Received: x=['a', True]"),
    (["a", "a"], "has duplicates. Received: x=['a', 'a']"),
])
def test_check_list_refuses(values, message):
    with pytest.raises(ValueError, match="^x " + message.replace("[", r"\[").replace("]", r"\]") + "$"):
        validation.check_list("x", values)


def test_check_list_returns_a_list():
    assert validation.check_list("x", (1, 2), int, "ints") == [1, 2]


@pytest.mark.parametrize("value", [0, -1, True, 1.0, 11])
def test_check_positive_int_refuses(value):
    with pytest.raises(ValueError, match=f"Received: n={value!r}$"):
        validation.check_positive_int("n", value, 10)


def test_check_number_refuses_nan_and_booleans():
    for value in (float("nan"), True, "1", -1.0):
        with pytest.raises(ValueError, match="^lr must be > 0. Received: lr="):
            validation.check_number("lr", value, "> 0", lambda x: x > 0)
    validation.check_number("lr", 0.5, "> 0", lambda x: x > 0)


def test_unknown_classes():
    assert validation.unknown_classes([0, 3, 4, -1, True, 1.0, "2"], 4) == [4, -1, True, 1.0, "2"]
    assert validation.unknown_classes([0, 1], None) == [0, 1]


def test_read_toml_and_known_settings(tmp_path):
    good, bad = tmp_path / "a.toml", tmp_path / "b.toml"
    good.write_text("epochs = 2\n")
    bad.write_text("epochs = \n")
    assert validation.known_settings(validation.read_toml(good), ["epochs"], str(good)) == {"epochs": 2}
    with pytest.raises(ValueError, match=rf"^{bad} is not valid TOML: "):
        validation.read_toml(bad)
    with pytest.raises(ValueError, match=r"^Cannot read the config file .*missing.toml: "):
        validation.read_toml(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match=r"^Unknown setting\(s\) \['epochs'\] in f; available: \['seed'\]$"):
        validation.known_settings({"epochs": 2}, ["seed"], "f")


@dataclasses.dataclass
class Settings:
    a: int = 1
    b: str = "x"
    output: str = "o"
    later: int = 0


def test_digest_is_sha256_of_canonical_json():
    value = {"b": [1, 2.5], "a": "x"}
    expected = hashlib.sha256(b'{"a": "x", "b": [1, 2.5]}').hexdigest()[:12]
    assert digest(value) == expected == digest({"a": "x", "b": [1, 2.5]})
    assert digest(["r2", "r1"]) == hashlib.sha256(json.dumps(["r2", "r1"]).encode()).hexdigest()[:12]


def test_result_defining_leaves_out_excluded_fields_and_later_defaults():
    assert result_defining(Settings(), ("output",), {"later": 0}) == {"a": 1, "b": "x"}
    assert result_defining(Settings(later=3), ("output",), {"later": 0}) == {"a": 1, "b": "x", "later": 3}
    assert result_defining(Settings(), ("output",)) == {"a": 1, "b": "x", "later": 0}


def test_differences():
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
    assert differences({"a": 1}, {"a": 1}) == {}
