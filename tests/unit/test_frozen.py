"""core/frozen.quick_init: the same frozen instances, built cheaper."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from faena.core.events import Event
from faena.core.frozen import quick_init
from faena.core.job import Job, Outcome
from faena.core.states import JobState


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "x"
    c: dict[str, int] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: str = "x"
    c: dict[str, int] = field(default_factory=dict)


def test_the_instances_are_those_of_the_generated_init() -> None:
    q = Quick(1)
    assert type(q) is Quick
    assert (q.a, q.b, q.c) == (1, "x", {})
    assert Quick(1, "y", {"k": 2}) == Quick(a=1, b="y", c={"k": 2})
    assert Quick(1).c is not Quick(1).c  # a new default from the factory each time
    assert repr(Quick(2, "z")) == "Quick(a=2, b='z', c={})"
    with pytest.raises(TypeError, match="unhashable"):  # hashing reaches the fields
        hash(Quick(3))


def test_an_instance_stays_frozen() -> None:
    q = Quick(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del q.b  # type: ignore[misc]


def test_a_wrong_call_fails_as_with_the_generated_init() -> None:
    messages = []
    for cls in (Plain, Quick):
        for args, kwargs in (((), {}), ((1, "a", {}, 4), {}), ((1,), {"a": 2}), ((), {"d": 1})):
            with pytest.raises(TypeError) as info:
                cls(*args, **kwargs)
            messages.append(str(info.value).replace(cls.__name__, "C"))
    assert messages[:4] == messages[4:]
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))


def test_copies_replace_and_pickles_are_the_same() -> None:
    q = Quick(1, "y", {"k": 1})
    for other in (copy.copy(q), copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
        assert other == q and type(other) is Quick
    assert dataclasses.replace(q, b="z") == Quick(1, "z", {"k": 1})


def test_faena_records_use_it() -> None:
    for cls in (Job, Outcome, Event):
        assert cls.__init__.__code__.co_filename == "<string>"
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    o = Outcome("j", 1, JobState.SUCCEEDED, result_json="null")
    assert o == dataclasses.replace(o) and o.lease.attempt == 1 and hash(o) == hash(o)


def test_it_refuses_what_it_cannot_build() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    for cls in (Mutable, Checked, NoSlots):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)
