"""Same-named command groups from different plugins merge their sub-commands."""

from __future__ import annotations

from xent_core.cli import main
from xent_core.testing import isolated_registry


def test_same_named_groups_merge_their_sub_commands(capsys) -> None:
    with isolated_registry(("g1", "group_one_plugin"), ("g2", "group_two_plugin")):
        assert main(["tools", "one"]) == 0
        assert capsys.readouterr().out.strip() == "tools one"
        assert main(["tools", "two"]) == 0
        out = capsys.readouterr()
        assert out.out.strip() == "tools two"
        assert "'tools shared' skipped" in out.err  # the duplicate sub-command is reported
        assert main(["tools", "shared"]) == 0
        assert capsys.readouterr().out.strip() == "shared from one"
        assert main(["tools", "--help"]) == 0
        help_text = capsys.readouterr().out
        assert "one" in help_text and "two" in help_text


def test_merging_leaves_the_plugins_own_groups_untouched() -> None:
    import group_one_plugin

    before = [c.name for c in group_one_plugin.tools.registered_commands]
    with isolated_registry(("g1", "group_one_plugin"), ("g2", "group_two_plugin")):
        main(["tools", "one"])
        main(["tools", "one"])
    assert [c.name for c in group_one_plugin.tools.registered_commands] == before
