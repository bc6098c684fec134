"""Every first-party kernel, estimator and scaling model conforms to its core Protocol."""

from __future__ import annotations

import pytest

import xent_core
from xent_core import Estimator, Kernel, ScalingModel
from xent_core.registry import FIRST_PARTY_DISTRIBUTION

PROTOCOLS = {"kernel": Kernel, "estimator": Estimator, "scaling_model": ScalingModel}
SPECS = [
    s
    for s in xent_core.list_components()
    if s.distribution == FIRST_PARTY_DISTRIBUTION and s.kind in PROTOCOLS
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.qualified_id for s in SPECS])
def test_first_party_components_conform(spec):
    cls = spec.load()
    for name in [m for m in dir(PROTOCOLS[spec.kind]) if not m.startswith("_")] + ["__call__"]:
        if name == "__call__" and spec.kind != "estimator":
            continue
        assert callable(getattr(cls, name, None)), f"{spec.qualified_id} lacks {name}()"


def test_factories_return_protocol_instances():
    assert isinstance(xent_core.kernel("cce-torch"), Kernel)
    assert isinstance(xent_core.estimator("rankme"), Estimator)
    assert isinstance(xent_core.scaling_model("chinchilla"), ScalingModel)
    assert not isinstance(object(), ScalingModel)
