from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from planner.models import (
    Connection,
    DataElement,
    IntegrationProject,
    Membership,
    Objective,
    PatternDecision,
    Role,
    SuccessCriterion,
    System,
)

PASSWORD = "correct-horse-battery"  # noqa: S105


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrationProject
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Integration {n}")
    business_problem = "Statuses disagree between CRM and billing."
    owner = factory.SubFactory(UserFactory)

    @factory.post_generation
    def owner_membership(obj, create, extracted, **kwargs):
        if create:
            Membership.objects.create(project=obj, user=obj.owner, role=Role.OWNER)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"System {n}")
    kind = System.Kind.CRM
    owner = "Ops"


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    project = factory.SubFactory(ProjectFactory)
    source = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))
    target = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))
    volume_per_day = 1000
    peak_per_day = 2000


class ObjectiveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Objective

    project = factory.SubFactory(ProjectFactory)
    business_objective = "No inactive customer is invoiced."


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuccessCriterion

    project = factory.SubFactory(ProjectFactory)
    metric = "sync latency"
    comparator = "<="
    target = Decimal("5")
    unit = "minutes"
    attainment_pct = Decimal("99.9")
    window_value = 30
    window_unit = "days"


class DataElementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataElement

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"element {n}")
    source_of_truth = factory.SubFactory(SystemFactory, project=factory.SelfAttribute("..project"))


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatternDecision

    project = factory.SubFactory(ProjectFactory)
    pattern = PatternDecision.Pattern.HUB_AND_SPOKE
    rationale = "Five systems and growing."
