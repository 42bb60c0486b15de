"""The label policy: one (model, version) per exchange, capped, never chosen freely by clients."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.config import ModelConfig
from exporter.labels import OTHER, UNKNOWN, LabelPolicy, default_labels


def test_configured_name_and_version_win_over_the_path() -> None:
    policy = LabelPolicy("fraud", "3")
    assert policy.decide("iris", "7") == ("fraud", "3")
    assert policy.decide() == ("fraud", "3")
    assert policy.decide("x" * 500, None, admit=False) == ("fraud", "3")
    assert policy.default == ("fraud", "3")
    assert policy.overflow == {"model": 0, "version": 0}


def test_configured_name_alone_keeps_path_versions() -> None:
    policy = LabelPolicy("fraud", None)
    assert policy.decide("iris", "7") == ("fraud", "7")
    assert policy.decide("iris", None) == ("fraud", UNKNOWN)
    assert policy.default == ("fraud", UNKNOWN)


def test_configured_version_alone_keeps_path_names() -> None:
    policy = LabelPolicy(None, "3")
    assert policy.decide("iris", "7") == ("iris", "3")
    assert policy.decide(None, "7") == (UNKNOWN, "3")
    assert policy.default == (UNKNOWN, "3")


def test_path_name_kept_else_unknown() -> None:
    policy = LabelPolicy()
    assert policy.decide("iris", None) == ("iris", UNKNOWN)
    assert policy.decide("iris", "2") == ("iris", "2")
    assert policy.decide(None, None) == (UNKNOWN, UNKNOWN)  # e.g. MLflow /invocations
    assert policy.decide() == policy.default == (UNKNOWN, UNKNOWN)


def test_name_after_the_cap_is_other_and_counted() -> None:
    policy = LabelPolicy(max_names=3)
    for name in ("a", "b", "c"):
        assert policy.decide(name, "1") == (name, "1")
    assert policy.decide("d", "1") == (OTHER, OTHER)
    assert policy.decide("d", None) == (OTHER, OTHER)
    assert policy.overflow == {"model": 2, "version": 0}  # counted per exchange
    assert policy.decide("a", "1") == ("a", "1")  # kept names stay kept
    assert policy.decide(None, None) == (UNKNOWN, UNKNOWN)


def test_versions_capped_per_kept_name() -> None:
    policy = LabelPolicy(max_names=2)
    assert policy.decide("a", "1") == ("a", "1")
    assert policy.decide("a", "2") == ("a", "2")
    assert policy.decide("a", "3") == ("a", OTHER)
    assert policy.decide("b", "3") == ("b", "3")  # another name has its own versions
    assert policy.overflow == {"model": 0, "version": 1}


def test_known_names_always_kept_beyond_the_cap() -> None:
    policy = LabelPolicy(known=("prod", "canary"), max_names=1)
    assert policy.decide("first", None) == ("first", UNKNOWN)
    assert policy.decide("second", None) == (OTHER, OTHER)
    assert policy.decide("canary", "2") == ("canary", "2")
    assert policy.decide("prod", None) == ("prod", UNKNOWN)
    assert policy.overflow["model"] == 1


def test_only_a_successful_exchange_admits_a_name() -> None:
    policy = LabelPolicy(max_names=1)
    assert policy.decide("typo", None, admit=False) == (OTHER, OTHER)  # e.g. the server said 404
    assert policy.overflow == {"model": 0, "version": 0}  # not a cap hit
    assert policy.decide("iris", "1") == ("iris", "1")  # the slot is still free
    assert policy.decide("iris", "9", admit=False) == ("iris", OTHER)
    assert policy.decide("iris", "1", admit=False) == ("iris", "1")  # admitted before: kept


def test_decisions_are_the_same_object_on_the_hot_path() -> None:
    policy = LabelPolicy()
    first = policy.decide("iris", "1")
    assert policy.decide("iris", "1") is first
    assert policy.decide(None, None) is policy.decide(None, None)


@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=5)),
                          st.booleans()), max_size=200),
       st.integers(1, 5), st.lists(st.text(min_size=1, max_size=5), max_size=3, unique=True))
def test_clients_never_create_more_than_the_cap(calls: list[tuple[str | None, str | None, bool]], n: int,
                                                known: list[str]) -> None:
    policy = LabelPolicy(known=tuple(known), max_names=n)
    seen: dict[str, set[str]] = {}
    for name, version, admit in calls:
        model, ver = policy.decide(name, version, admit)
        seen.setdefault(model, set()).add(ver)
    assert len(seen) <= n + len(known) + 2
    assert all(len(versions) <= n + 2 for versions in seen.values())
    assert set(seen) <= policy.values()


def test_from_config_and_reload() -> None:
    policy = LabelPolicy.from_config(ModelConfig(max_names=2))
    policy.decide("a", "1")
    policy.decide("b", None)
    policy.decide("c", None)
    assert LabelPolicy.from_config(ModelConfig(max_names=2), previous=policy) is policy  # unchanged: kept as is
    bigger = LabelPolicy.from_config(ModelConfig(max_names=3), previous=policy)
    assert bigger.decide("a", "1", admit=False) == ("a", "1")  # kept names and versions stay kept
    assert bigger.decide("c", None) == ("c", UNKNOWN)
    assert bigger.overflow is policy.overflow and bigger.overflow["model"] == 1  # never goes backwards
    named = LabelPolicy.from_config(ModelConfig(name="fraud"), previous=bigger)
    assert named.decide("a", "1") == ("fraud", "1")


def test_default_labels() -> None:
    assert default_labels(ModelConfig()) == (UNKNOWN, UNKNOWN)
    assert default_labels(ModelConfig(name="fraud", version="3")) == ("fraud", "3")
