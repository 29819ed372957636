"""Forms built from the core's configuration dataclasses, so the GUI's defaults are the core's."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from magicgui.widgets import Container, create_widget


def _field_type(cls: type, name: str) -> Any:
    """The type of a dataclass field, with ``X | None`` reduced to ``X``."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


class ConfigForm(Container):
    """Widgets for some fields of a configuration dataclass, initialised with its defaults.

    Parameters
    ----------
    config : dataclass instance
        Supplies the field types and initial values.
    fields : dict
        Field name -> widget options (``label``, ``min``, ``max``, ``step``, ``choices``, ``tooltip`` ...).
    """

    def __init__(self, config: Any, fields: dict[str, dict[str, Any]]) -> None:
        widgets = []
        for name, options in fields.items():
            value = getattr(config, name)
            options = dict(options)
            label = options.pop("label", name.replace("_", " "))
            tooltip = options.pop("tooltip", None)
            kind = _field_type(type(config), name)
            if "choices" in options:
                widget = create_widget(value=value, name=name, label=label, widget_type="ComboBox", options=options)
            else:
                widget = create_widget(
                    value=value if value is not None else 0, annotation=kind, name=name, label=label, options=options
                )
            if tooltip:
                widget.tooltip = tooltip
            widgets.append(widget)
        super().__init__(widgets=widgets)

    def values(self) -> dict[str, Any]:
        """Field name -> current value."""
        return {w.name: w.value for w in self}

    def set_values(self, values: dict[str, Any]) -> None:
        """Set the widgets of the given fields."""
        for w in self:
            if w.name in values:
                w.value = values[w.name]


def replace_fields(config: Any, values: dict[str, Any]) -> Any:
    """A copy of ``config`` with ``values`` for the fields it has."""
    names = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in values.items() if k in names})
