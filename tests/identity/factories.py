"""factory-boy factories shared across apps (identity is used everywhere)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from controlplane.identity import services
from controlplane.identity.models import Principal, PrincipalKind, Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        # set_password runs after the INSERT and skip_postgeneration_save skips the save: keep the hash.
        if create and results:
            instance.save(update_fields=["password"])


class PrincipalFactory(factory.django.DjangoModelFactory):
    """A principal; pass `capabilities=[...]` to grant through the service (and the ledger)."""

    class Meta:
        model = Principal
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"principal-{n}")
    kind = PrincipalKind.SERVICE

    class Params:
        human = factory.Trait(kind=PrincipalKind.HUMAN, user=factory.SubFactory(UserFactory))
        agent = factory.Trait(kind=PrincipalKind.AGENT)

    @factory.post_generation
    def capabilities(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        for capability in extracted or []:
            services.grant_add(principal=self, capability=capability, actor="test")


def token_for(principal: Principal) -> str:
    return services.token_issue(principal=principal, name="test", actor="test").secret
