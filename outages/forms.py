"""Admin forms: source configuration checked in plain words, and outage declare/resolve."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from outages.mapping import mapping_rules_validate
from outages.models import MonitorSource
from outages.networks import network_choices


class MonitorSourceForm(forms.ModelForm):
    new_secret = forms.CharField(
        required=False,
        strip=True,
        min_length=16,
        widget=forms.PasswordInput(render_value=False),
        label=_("New secret"),
        help_text=_(
            "Only when the sender generates the secret (PagerDuty): paste it here. Leave "
            "blank to have one generated on creation. Setting it later rotates: the previous "
            "secret keeps working for the overlap period."
        ),
    )

    class Meta:
        model = MonitorSource
        fields = [
            "name",
            "slug",
            "kind",
            "default_network",
            "mapping_rules",
            "options",
            "repeat_interval_s",
            "silence_auto_close",
            "active",
        ]

    def clean_mapping_rules(self) -> Any:
        rules = self.cleaned_data["mapping_rules"]
        problems = mapping_rules_validate(rules=rules)
        if problems:
            raise forms.ValidationError(problems)
        return rules

    def clean_options(self) -> Any:
        options = self.cleaned_data["options"]
        if not isinstance(options, dict):
            raise forms.ValidationError(_("options must be a JSON object"))
        return options


class DeclareOutageForm(forms.Form):
    network = forms.ChoiceField(label=_("network"), choices=network_choices)
    reason = forms.CharField(
        label=_("reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


class ResolveOutageForm(forms.Form):
    reason = forms.CharField(
        label=_("reason"), max_length=2000, initial=_("resolved by an operator")
    )
