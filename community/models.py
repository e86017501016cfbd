"""Communities, the dispatch hubs that serve them, and hub membership."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from clinic.models import City, Practitioner


class Community(models.Model):
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    district = models.CharField(_("district"), max_length=50)

    class Meta:
        ordering = ["city", "district", "name"]
        verbose_name = _("community")
        verbose_name_plural = _("communities")

    def __str__(self) -> str:
        return self.name


class DispatchHub(models.Model):
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    city = models.CharField(_("city"), max_length=20, choices=City.choices)
    communities = models.ManyToManyField(Community, related_name="hubs", blank=True)
    members = models.ManyToManyField(
        Practitioner, through="HubMembership", related_name="hubs", blank=True
    )

    class Meta:
        ordering = ["city", "name"]
        verbose_name = _("dispatch hub")
        verbose_name_plural = _("dispatch hubs")

    def __str__(self) -> str:
        return self.name


class HubMembership(models.Model):
    hub = models.ForeignKey(DispatchHub, on_delete=models.CASCADE, related_name="memberships")
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="hub_memberships"
    )
    is_duty_lead = models.BooleanField(_("duty lead"), default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hub", "practitioner"], name="unique_hub_membership")
        ]
        verbose_name = _("hub membership")
        verbose_name_plural = _("hub memberships")

    def __str__(self) -> str:
        return f"{self.practitioner} @ {self.hub}"
