from django.contrib import admin

from community.models import Community, DispatchHub, HubMembership


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "district", "city", "code"]
    list_filter = ["city", "district"]
    search_fields = ["name", "name_en", "code"]


class HubMembershipInline(admin.TabularInline):
    model = HubMembership
    extra = 0
    autocomplete_fields = ["practitioner"]


@admin.register(DispatchHub)
class DispatchHubAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "code"]
    list_filter = ["city"]
    search_fields = ["name", "name_en", "code"]
    filter_horizontal = ["communities"]
    inlines = [HubMembershipInline]


@admin.register(HubMembership)
class HubMembershipAdmin(admin.ModelAdmin):
    list_display = ["practitioner", "hub", "is_duty_lead", "joined_at"]
    list_filter = ["hub", "is_duty_lead"]
    search_fields = ["practitioner__name", "hub__name"]
