"""Forms posted by the pages; each validates what a person typed before anything is stored."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from community.models import Alert, CareMessage


class CareMessageForm(forms.ModelForm):
    """A message from the care team to one patient, optionally about one of their alerts."""

    body = forms.CharField(
        label=_("Message to patient"),
        widget=forms.Textarea,
        error_messages={"required": _("Write a message before sending it.")},
    )

    # The model's limit, counted after clean_body makes each line break one character (the
    # field's own max_length would count a browser's CRLF as two); the page states it too.
    max_length = CareMessage.MAX_LENGTH

    class Meta:
        model = CareMessage
        fields = ["body", "alert"]

    def __init__(self, *args, patient, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.patient = patient
        self.fields["alert"].queryset = Alert.objects.filter(patient=patient)
        self.fields["alert"].required = False

    def clean_body(self) -> str:
        # Browsers send a textarea's line breaks as CRLF but count them as one character.
        body = self.cleaned_data["body"].replace("\r\n", "\n")
        if len(body) > CareMessage.MAX_LENGTH:
            raise forms.ValidationError(
                _("A message may be at most %(max)d characters long (this one has %(length)d)."),
                params={"max": CareMessage.MAX_LENGTH, "length": len(body)},
                code="max_length",
            )
        return body
