"""Rendering Django form fields in NHS.UK frontend's markup (labels, hints, errors, radios and checkboxes)."""

from django import forms, template

register = template.Library()


@register.filter
def field_kind(bound_field) -> str:
    widget = bound_field.field.widget
    # CheckboxSelectMultiple is a kind of RadioSelect in Django: asked first.
    if isinstance(widget, forms.CheckboxSelectMultiple):
        return "checkboxes"
    if isinstance(widget, forms.RadioSelect):
        return "radios"
    if isinstance(widget, forms.CheckboxInput):
        return "checkbox"
    if isinstance(widget, forms.Select):
        return "select"
    if isinstance(widget, forms.Textarea):
        return "textarea"
    if isinstance(widget, forms.HiddenInput):
        return "hidden"
    return "input"


@register.filter
def input_type(bound_field) -> str:
    return getattr(bound_field.field.widget, "input_type", "text") or "text"


@register.filter
def is_checked(choice_value, bound_field) -> bool:
    """Whether a radio or checkbox option is selected in the bound field's current value."""
    value = bound_field.value()
    values = value if isinstance(value, list | tuple) else [value]
    return str(choice_value) in {str(v) for v in values if v is not None}


@register.filter
def is_group(label) -> bool:
    """Whether a choice's label is a group of choices (an optgroup)."""
    return isinstance(label, list | tuple)


@register.filter
def shown_value(bound_field) -> str:
    """The field's value as its widget writes it (a date as YYYY-MM-DD, a time as the input expects)."""
    value = bound_field.field.widget.format_value(bound_field.value())
    return "" if value is None else value
