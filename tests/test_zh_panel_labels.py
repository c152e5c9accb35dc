"""Every label of the Chinese panel's controls is Chinese: read from the widgets themselves.

The browser test (``tests/test_zh_browser.py``) reads what a reader sees; this reads every
control's label, including the ones a screen shows only on hover (tooltips) or when empty
(the placeholder), without a browser. What may stay as it is: format names (MP3, WAV).
"""

from __future__ import annotations

import re

import ipywidgets as widgets

from funmusic_jupyter import FunMusicPanel

HAN = re.compile(r"[\u4e00-\u9fff]")
VERBATIM = {"MP3", "WAV"}


def _labels(panel: FunMusicPanel) -> dict[str, str]:
    """Every control's visible text (toggle labels, descriptions, tooltips, placeholder)."""
    labels: dict[str, str] = {"placeholder": panel.text.placeholder}
    controls = {
        "mode": panel.mode,
        "gender": panel.gender,
        "format": panel.format,
        "stream": panel.stream,
        "instrumental": panel.instrumental,
        "generate": panel.generate_button,
        "cancel": panel.cancel_button,
        "show": panel.show_button,
    }
    for name, control in controls.items():
        if control.description:
            labels[f"{name}.description"] = control.description
        if isinstance(control, widgets.ToggleButtons):
            for i, label in enumerate(control._options_labels):
                labels[f"{name}.option[{i}]"] = label
            for i, tip in enumerate(control.tooltips or ()):
                labels[f"{name}.tooltip[{i}]"] = tip
    return labels


def test_every_control_of_the_chinese_panel_is_labelled_in_chinese() -> None:
    panel = FunMusicPanel(language="zh", backend="simulator")
    try:
        labels = _labels(panel)
        assert len(labels) >= 15, labels
        english = {
            where: text
            for where, text in labels.items()
            if text not in VERBATIM and not HAN.search(text)
        }
        assert not english, english
    finally:
        panel.close()


def test_the_english_panel_for_comparison() -> None:
    # The same reading of an English panel finds no Chinese: the check above reads real labels.
    panel = FunMusicPanel(language="en", backend="simulator")
    try:
        labels = _labels(panel)
        assert len(labels) >= 15
        assert not [text for text in labels.values() if HAN.search(text)]
        assert labels["generate.description"] == "Generate"
    finally:
        panel.close()
