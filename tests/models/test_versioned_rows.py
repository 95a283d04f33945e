"""Rows of VersionedModels read from the database without `Model.__init__`: the same objects
as Django builds, saved as updates, and built the usual way when fields are deferred or an
init signal has a receiver."""

from django.db.models.signals import post_init

from planner.models import FieldMapping
from tests.factories import FieldMappingFactory


def fields_of(row) -> dict:
    return {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}


def test_a_row_read_is_the_object_django_builds(db):
    made = FieldMappingFactory(max_length=80, rule="trim")
    read = FieldMapping.objects.get(pk=made.pk)
    usual = FieldMapping(*[getattr(read, f.attname) for f in FieldMapping._meta.concrete_fields])
    assert type(read) is FieldMapping and fields_of(read) == fields_of(usual)
    assert read._state.adding is False and read._state.db == "default"
    assert read.connection == made.connection and read.project == made.project
    read.rule = "trim | lower"
    read.save()  # an update of the row, not a second row
    assert FieldMapping.objects.count() == 1
    assert FieldMapping.objects.get(pk=made.pk).rule == "trim | lower"


def test_deferred_fields_and_init_receivers_take_the_usual_way(db):
    made = FieldMappingFactory(rule="trim")
    partial = FieldMapping.objects.only("pk", "source_field").get(pk=made.pk)
    assert partial.get_deferred_fields() and partial.rule == "trim"  # fetched on access
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=FieldMapping)
    try:
        read = FieldMapping.objects.get(pk=made.pk)
    finally:
        post_init.disconnect(receiver, sender=FieldMapping)
    assert seen == [read]
