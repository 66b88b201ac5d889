"""Admin for account assignments: books per sales user, bulk assignment by region, and customer actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import selectors, services
from accounts.models import AccountAssignment
from recommendations.models import Customer


class SalesUserField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        full = obj.get_full_name()
        return f"{obj.get_username()} ({full})" if full else obj.get_username()


class AssignToUserForm(forms.Form):
    user = SalesUserField(label=_("Sales user"), queryset=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = selectors.sales_users()


class AssignRegionForm(AssignToUserForm):
    region = forms.ChoiceField(label=_("Region"))

    field_order = ["region", "user"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [
            (region, _("%(region)s (%(count)d customers)") % {"region": region, "count": n})
            for region, n in selectors.region_sizes()
        ]


@admin.register(AccountAssignment)
class AccountAssignmentAdmin(admin.ModelAdmin):
    list_display = ["customer", "region", "user", "assigned_by", "assigned_at"]
    list_filter = [("user", admin.RelatedOnlyFieldListFilter), "customer__region"]
    search_fields = ["customer__pseudonym", "user__username"]
    autocomplete_fields = ["customer"]
    list_select_related = ["customer", "user", "assigned_by"]
    fields = ["customer", "user"]
    change_list_template = "admin/accounts/accountassignment/change_list.html"

    @admin.display(description=_("region"), ordering="customer__region")
    def region(self, obj: AccountAssignment) -> str:
        return obj.customer.region

    def has_change_permission(self, request, obj=None):
        return False  # an assignment is added or removed, never edited

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = selectors.sales_users()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        try:
            saved = services.assignment_create(customer=obj.customer, user=obj.user, assigned_by=request.user)
        except ValidationError as exc:
            raise PermissionDenied(exc.messages[0]) from exc
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.assignment_delete(assignments=AccountAssignment.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        services.assignment_delete(assignments=queryset, actor=request.user)

    def get_urls(self):
        urls = [
            path(
                "assign-region/",
                self.admin_site.admin_view(self.assign_region_view),
                name="accounts_accountassignment_assign_region",
            )
        ]
        return urls + super().get_urls()

    def assign_region_view(self, request: HttpRequest) -> HttpResponse:
        """Assign every customer of a region to one sales user."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AssignRegionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            user, region = form.cleaned_data["user"], form.cleaned_data["region"]
            n = services.assignment_bulk_by_region(region=region, user=user, assigned_by=request.user)
            self.message_user(
                request,
                ngettext(
                    "Assigned %(n)d customer of %(region)s to %(user)s.",
                    "Assigned %(n)d customers of %(region)s to %(user)s.",
                    n,
                )
                % {"n": n, "region": region, "user": user.get_username()},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:accounts_accountassignment_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Assign all customers of a region"),
            "form": form,
            "book_sizes": _book_rows(),
        }
        return TemplateResponse(request, "admin/accounts/assign_region.html", context)


def _book_rows() -> list[tuple[str, int]]:
    sizes = selectors.book_sizes()
    return [(u.get_username(), sizes.get(u.pk, 0)) for u in selectors.sales_users()]


# --------------------------------------------------------------------------- actions on Customer


@admin.action(description=_("Assign selected customers to a sales user…"), permissions=["change"])
def assign_to_sales_user(modeladmin, request: HttpRequest, queryset: QuerySet[Customer]):
    """Ask for a sales user, then put the selected customers into that user's book."""
    if not request.user.has_perm("accounts.add_accountassignment"):
        raise PermissionDenied
    form = AssignToUserForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        user = form.cleaned_data["user"]
        n = services.assignment_bulk(customers=queryset, user=user, assigned_by=request.user)
        modeladmin.message_user(
            request,
            ngettext("Assigned %(n)d customer to %(user)s.", "Assigned %(n)d customers to %(user)s.", n)
            % {"n": n, "user": user.get_username()},
            messages.SUCCESS,
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": _("Assign customers to a sales user"),
        "form": form,
        "queryset": queryset,
        "count": queryset.count(),
        "action_name": "assign_to_sales_user",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/accounts/assign_customers.html", context)


@admin.action(description=_("Erase selected customers (right to erasure)…"), permissions=["delete"])
def erase_customers(modeladmin, request: HttpRequest, queryset: QuerySet[Customer]):
    """Confirm, then erase the selected customers: their data is deleted, their purchases detached."""
    if not request.user.is_superuser:
        raise PermissionDenied
    if "confirm" in request.POST:
        erased = services.customers_erase(customers=queryset, actor=request.user)
        modeladmin.message_user(
            request,
            ngettext("Erased %(n)d customer.", "Erased %(n)d customers.", erased) % {"n": erased},
            messages.SUCCESS,
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": _("Erase customers"),
        "queryset": queryset,
        "count": queryset.count(),
        "action_name": "erase_customers",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/accounts/erase_customers.html", context)


CUSTOMER_ACTIONS = [assign_to_sales_user, erase_customers]


# The Customer admin lives here (not in recommendations/admin.py) because its actions are accounts' services.
@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "region", "order_count", "revenue", "last_purchase_at", "embedding_version"]
    list_filter = ["region"]
    search_fields = ["pseudonym"]
    exclude = ["embedding"]
    readonly_fields = ["pseudonym", "embedding_version", "embedding_input_hash", "embedded_at"]
    actions = CUSTOMER_ACTIONS  # assign to a sales user; erase (right to erasure)

    def delete_model(self, request, obj):
        # Deleting a customer is an erasure: purchases detached, audited (accounts.services).
        services.customer_erase(customer=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        services.customers_erase(customers=queryset, actor=request.user)
