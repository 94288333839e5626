"""A config warning shown with App.notify (Textual markup) keeps its "[keys]" (issue 11: "unknown binding
id 'chat.lik' in  (see ...)")."""

from textual.markup import to_content

from tui.config import load_ui_config


def test_unknown_binding_warning_keeps_the_table_name(home):
    home.root.mkdir(parents=True)
    home.config_path.write_text('[keys]\n"chat.lik" = "plus"\n')
    cfg = load_ui_config(home, known_ids={"chat.like"})
    (warning,) = cfg.warnings
    assert "unknown binding id 'chat.lik' in [keys] (see the help screen, F1)." in to_content(warning).plain
