"""Registry: loading, isolation of broken plugins, lookup rules, env controls, parameters."""

from __future__ import annotations

import subprocess
import sys

import pytest

import xent_core
from xent_core import (
    AmbiguousComponentError,
    BadParameterError,
    UnknownComponentError,
    XentError,
)
from xent_core.registry import PluginSource, Registry
from xent_core.testing import isolated_registry


def make(*names: str, env: dict[str, str] | None = None, dist: str | None = None) -> Registry:
    return Registry(
        [PluginSource(n.replace("_plugin", ""), n, distribution=dist) for n in names], env=env or {}
    )


def test_loads_lazy_components_without_importing_them():
    sys.modules.pop("toy_losses", None)
    reg = make("toy_plugin")
    assert [p.status for p in reg.plugins()] == ["loaded"]
    names = [s.name for s in reg.specs()]
    assert names == ["toy-ce", "toy-distance", "toy-square", "toy-count", "toy-kernel"]
    assert "toy_losses" not in sys.modules  # metadata was read statically
    assert reg.plugins()[0].counts == {"loss": 3, "estimator": 1, "kernel": 1}


def test_spec_metadata_from_source():
    spec = make("toy_plugin").get("toy-ce")
    assert spec.qualified_id == "toy:toy-ce"
    assert spec.summary == "Toy cross-entropy."
    assert [(p.name, p.default, p.annotation) for p in spec.params] == [
        ("reduction", "'mean'", "str"),
        ("scale", "1.0", "float"),
    ]
    assert spec.inputs == ("logits", "targets")
    assert spec.optional_inputs == ("weight",)
    assert spec.citations[0].arxiv == "arXiv:0000.00001"
    assert spec.capabilities["devices"] == ("cpu",)
    assert make("toy_plugin").get("toy-distance").inputs == ("logits", "teacher_logits")


def test_factory_params_from_function_signature():
    spec = make("toy_plugin").get("toy-count")
    assert [p.name for p in spec.params] == ["min_count"]
    assert spec.kind == "estimator"


def test_lookup_accepts_case_underscores_and_qualified_ids():
    reg = make("toy_plugin")
    assert reg.get("TOY_CE").name == "toy-ce"
    assert reg.get("toy:toy_ce").name == "toy-ce"
    assert reg.get("toy-ce", kind="losses").kind == "loss"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownComponentError, match=r"did you mean 'toy-ce'"):
        make("toy_plugin").get("toy-cee")
    with pytest.raises(UnknownComponentError, match="unknown estimator"):
        make("toy_plugin").get("toy-ce", kind="estimator")


def test_same_short_name_in_two_plugins_is_ambiguous_and_never_overwritten():
    reg = make("toy_plugin", "other_plugin")
    with pytest.raises(AmbiguousComponentError, match="other:toy-ce, toy:toy-ce"):
        reg.get("toy-ce")
    assert reg.get("other:toy-ce").target_path.endswith("OtherCE")
    assert reg.get("toy:toy-ce").target_path == "toy_losses:ToyCE"


@pytest.mark.parametrize(
    ("module", "needle"),
    [
        ("broken_import_plugin", "import failed: RuntimeError: boom at import"),
        ("broken_hook_plugin", "register_losses raised ValueError: boom in hook"),
        ("misspelled_plugin", "register_loss"),
        ("bad_name_plugin", "invalid component name"),
        ("dup_plugin", "registered twice"),
        ("no_such_module_xyz", "import failed: ModuleNotFoundError"),
    ],
)
def test_broken_plugins_are_isolated_and_reported(module, needle):
    reg = make("toy_plugin", module)
    status = {p.name: p for p in reg.plugins()}
    broken = status[module.replace("_plugin", "")]
    assert broken.status == "failed"
    assert needle in broken.error
    assert status["toy"].status == "loaded"
    assert {s.plugin for s in reg.specs()} == {"toy"}  # nothing partial from the broken one


def test_env_allow_list_blocks_third_party_but_not_first_party():
    reg = Registry(
        [
            PluginSource("toy", "toy_plugin", distribution="xent"),
            PluginSource("other", "other_plugin", distribution="xent-plugin-other"),
        ],
        env={"XENT_LOAD_PLUGINS": ""},
    )
    status = {p.name: p.status for p in reg.plugins()}
    assert status == {"toy": "loaded", "other": "blocked"}
    reg = Registry(
        [PluginSource("other", "other_plugin", distribution="xent-plugin-other")],
        env={"XENT_LOAD_PLUGINS": "xent-plugin-other"},
    )
    assert reg.plugins()[0].status == "loaded"


def test_env_deny_list():
    reg = make("toy_plugin", "other_plugin", env={"XENT_DISABLE_PLUGINS": "other"})
    status = {p.name: p for p in reg.plugins()}
    assert status["other"].status == "blocked"
    assert "XENT_DISABLE_PLUGINS" in status["other"].error
    assert reg.get("toy-ce").plugin == "toy"  # no longer ambiguous


def test_trace_writes_to_stderr(capfd):
    make("toy_plugin", env={"XENT_TRACE_PLUGINS": "1"})
    err = capfd.readouterr().err
    assert "registered loss toy:toy-ce" in err
    assert "register_losses" in err  # pluggy's own hook-call trace


def test_create_checks_parameters():
    with isolated_registry("toy_plugin"):
        loss = xent_core.loss("toy-ce", scale=2.0)
        assert loss.scale == 2.0 and loss.xent_spec.name == "toy-ce"
        with pytest.raises(BadParameterError, match="valid parameters: reduction, scale"):
            xent_core.loss("toy-ce", gamma=1)
        with pytest.raises(UnknownComponentError):
            xent_core.estimator("toy-ce")
        assert xent_core.estimator("toy-count")([1, 1, 2]) == 2.0


def test_requirements_reported_without_import():
    spec = make("toy_plugin").get("toy-kernel")
    assert spec.requirements() == {"no_such_pkg_xyz": False}


def test_duplicate_plugin_name_is_reported():
    reg = Registry(
        [PluginSource("toy", "toy_plugin"), PluginSource("toy", "other_plugin", distribution="x")],
        env={},
    )
    failed = [p for p in reg.plugins() if p.status == "failed"]
    assert len(failed) == 1 and "already used" in failed[0].error


def test_errors_share_one_root():
    for exc in (AmbiguousComponentError, BadParameterError, UnknownComponentError):
        assert issubclass(exc, XentError)


def test_importing_core_and_listing_does_not_import_torch():
    code = (
        "import sys, xent_core; xent_core.list_components(); "
        "[xent_core.info(s.qualified_id) for s in xent_core.list_components()]; "
        "bad = [m for m in ('torch', 'triton', 'numpy', 'scipy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_strict_mode_raises_on_a_broken_plugin():
    from xent_core import PluginLoadError

    with pytest.raises(PluginLoadError, match="boom in hook"):
        make("toy_plugin", "broken_hook_plugin", env={"XENT_STRICT_PLUGINS": "1"})


def test_metadata_follows_base_classes_imported_from_other_modules():
    for mod in ("toy_pkg.scaled", "toy_pkg._base"):
        sys.modules.pop(mod, None)
    reg = Registry([PluginSource("pkg", "toy_pkg")], env={})
    spec = reg.get("scaled-square")
    assert spec.summary == "Scaled mean square of the logits."
    assert [(p.name, p.default) for p in spec.params] == [("scale", "2.0"), ("reduction", "'mean'")]
    assert spec.inputs == ("logits",) and spec.optional_inputs == ("mask",)
    assert spec.citations[0].arxiv == "arXiv:0000.00003"  # the subclass's own attribute wins
    assert spec.capabilities == {"devices": ("cpu",)}  # inherited
    assert "toy_pkg.scaled" not in sys.modules and "toy_pkg._base" not in sys.modules


def test_availability_accounts_for_gpu_only_components(monkeypatch):
    from xent_core import components

    spec = make("toy_plugin").get("toy-ce")
    gpu_only = type(spec)(**{**spec.__dict__, "capabilities": {"devices": ("cuda",)}})
    monkeypatch.setattr(components, "cuda_visible", lambda: False)
    assert gpu_only.availability() == (False, "needs cuda (no GPU visible)")
    assert spec.availability() == (True, "yes")  # declares cpu
    monkeypatch.setattr(components, "cuda_visible", lambda: True)
    assert gpu_only.availability() == (True, "yes")
    assert make("toy_plugin").get("toy-kernel").availability() == (False, "needs no_such_pkg_xyz")


def test_availability_names_an_emulator_and_what_it_refuses(monkeypatch):
    from xent_core import components

    spec = make("toy_plugin").get("toy-ce")
    emu = {"env": "TOY_EMULATE=1", "note": "bfloat16 refused"}
    gpu_only = type(spec)(
        **{**spec.__dict__, "capabilities": {"devices": ("cuda",), "emulation": emu}}
    )
    monkeypatch.setattr(components, "cuda_visible", lambda: False)
    monkeypatch.delenv("TOY_EMULATE", raising=False)
    assert gpu_only.availability() == (
        False,
        "needs cuda (no GPU visible); on the CPU with TOY_EMULATE=1 (bfloat16 refused)",
    )
    monkeypatch.setenv("TOY_EMULATE", "0")  # another value is not the emulator
    assert gpu_only.availability()[0] is False
    monkeypatch.setenv("TOY_EMULATE", "1")
    assert gpu_only.availability() == (True, "yes, emulated (TOY_EMULATE=1): bfloat16 refused")
    monkeypatch.setattr(components, "cuda_visible", lambda: True)  # set on a GPU machine too
    assert gpu_only.availability() == (True, "yes, emulated (TOY_EMULATE=1): bfloat16 refused")


@pytest.mark.parametrize(
    "emulation",
    ["TRITON_INTERPRET=1", {"env": 1}, {"env": "NOVALUE"}, {"env": "A=1", "note": 3}, {"x": "A=1"}],
)
def test_malformed_emulation_capability_is_refused(emulation):
    from xent_core._component_checks import check_capabilities

    with pytest.raises(xent_core.RegistrationError, match="emulation"):
        check_capabilities("toy:x", {"emulation": emulation})
    check_capabilities("toy:x", {"emulation": {"env": "A=1", "note": "fine"}})
