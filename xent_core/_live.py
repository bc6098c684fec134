"""The live reader: describe an imported class or factory with :mod:`inspect`.

It reads what the static reader (:mod:`xent_core._static`) reads from source, by the same rules:
``__init__`` (``**kwargs`` followed up the MRO) gives the parameters, ``forward`` the inputs, the
``Args:`` sections of the docstrings the parameter descriptions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ._docstrings import describe
from ._records import MISSING_REPR, Meta, Param

_SELF = frozenset({"self", "cls"})
_META_ATTRS = ("citation", "inputs", "optional_inputs", "capabilities")


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _param(p: inspect.Parameter) -> Param:
    ann = p.annotation
    return Param(
        name=p.name,
        annotation="" if ann is p.empty else (ann if isinstance(ann, str) else repr(ann)),
        default=MISSING_REPR if p.default is p.empty else repr(p.default),
        required=p.default is p.empty,
    )


def _params(sig: inspect.Signature, skip_self: bool) -> tuple[list[Param], bool]:
    params: list[Param] = []
    extra = False
    for i, p in enumerate(sig.parameters.values()):
        if skip_self and i == 0 and p.name in _SELF:
            continue
        if p.kind is p.VAR_KEYWORD:
            extra = True
        elif p.kind is not p.VAR_POSITIONAL:
            params.append(_param(p))
    return params, extra


def _init_params(cls: type) -> tuple[list[Param], bool, list[str]]:
    """``__init__`` parameters along the MRO, following ``**kwargs`` (as the static reader)."""
    inits = [k.__dict__["__init__"] for k in cls.__mro__[:-1] if "__init__" in k.__dict__]
    params: list[Param] = []
    extra = False
    docs: list[str] = []
    for i, init in enumerate(inits):
        sig = _signature(init)
        if sig is None:
            break
        own, extra = _params(sig, skip_self=True)
        names = {p.name for p in params}
        params += [p for p in own if p.name not in names]
        docs.append(init.__doc__ or "")
        if not extra or i + 1 == len(inits):
            break
    return params, extra, docs


def _described(params: list[Param], docs: list[str]) -> list[Param]:
    found = describe([p.name for p in params], docs)
    return [replace(p, description=found.get(p.name, "")) for p in params]


def live_meta(obj: Callable[..., Any]) -> Meta:
    """What an imported class or factory says about itself."""
    meta = Meta(doc=inspect.getdoc(obj) or "")
    if inspect.isclass(obj):
        params, meta.accepts_extra_params, init_docs = _init_params(obj)
        class_docs = [k.__doc__ or "" for k in obj.__mro__[:-1]]
        meta.params = _described(params, [class_docs[0], *init_docs, *class_docs[1:]])
    else:
        sig = _signature(obj)
        if sig is not None:
            params, meta.accepts_extra_params = _params(sig, skip_self=False)
            meta.params = _described(params, [meta.doc])
    forward = getattr(obj, "forward", None)
    fsig = _signature(forward) if forward is not None else None
    if fsig is not None:
        for i, p in enumerate(fsig.parameters.values()):
            if (i == 0 and p.name in _SELF) or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            (meta.inputs if p.default is p.empty else meta.optional_inputs).append(p.name)
    for key in _META_ATTRS:
        if key in vars(obj) or (inspect.isclass(obj) and hasattr(obj, key)):
            meta.attrs[key] = getattr(obj, key)
    return meta
