"""Frozen dataclasses built at the cost of mutable ones.

A frozen dataclass's generated ``__init__`` sets every field through ``object.__setattr__``
(its own ``__setattr__`` refuses): for :class:`~faena.core.job.Job`'s 24 fields that costs
three times a mutable dataclass's ``__init__``, and a worker pays it for every job it
claims. :func:`quick_init` gives a frozen, slotted dataclass an ``__init__`` with the same
parameters that sets the fields with plain assignments while the new instance wears the
class of a mutable twin with the same slots (the same memory layout), then gives it its own
class back. Nothing else changes: the class, its fields and defaults, equality, hashing,
``repr``, ``dataclasses.replace``, pickling, the errors of a wrong call, and the refusal of
every assignment once the instance is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound=type)


class _Factory:
    """The default of a field whose default comes from a factory (shown as dataclasses do)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: C) -> C:
    """Give the frozen, slotted dataclass ``cls`` a cheaper ``__init__`` building the same
    instances (``cls`` may have no ``__post_init__``, no ``init=False`` or keyword-only
    field)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init needs a frozen dataclass with slots, got {cls!r}")
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(not f.init or f.kw_only for f in fields):
        raise TypeError(f"quick_init cannot build {cls.__name__}: keep its generated __init__")
    slots = vars(cls)["__slots__"]
    # a plain class with the same slots: the layout that __class__ assignment needs (a
    # dataclass twin cost a second class's generated methods at import, for none of them)
    twin = type(f"_Mutable{cls.__name__}", (), {"__slots__": slots, "__module__": cls.__module__})
    namespace: dict[str, Any] = {"set_class": object.__setattr__, "twin": twin, "cls": cls}
    params_text, body = [], ["    set_class(self, '__class__', twin)"]
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params_text.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params_text.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        else:
            params_text.append(f.name)
        body.append(f"    self.{f.name} = {f.name}")
    body.append("    self.__class__ = cls")
    namespace["_FACTORY"] = _FACTORY
    source = f"def __init__(self, {', '.join(params_text)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # as dataclasses builds __init__ itself
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # "Job.__init__() missing ..."
    init.__module__ = cls.__module__
    generated = vars(cls)["__init__"]  # the dataclass's own
    init.__annotations__ = dict(generated.__annotations__)
    init.__doc__ = generated.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses the plain assignment)
    return cls
