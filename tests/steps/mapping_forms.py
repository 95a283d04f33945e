"""What the mapping editor and the spreadsheet import post, as a browser would."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse


def add_data(**overrides):
    data = {
        "source_field": "Status__c",
        "source_type": "string",
        "target_field": "status_code",
        "target_type": "integer",
        "null_rule": "reject",
        "rule": "trim | lower | map(active=1, inactive=0)",
        "direction": "one_way",
        "frequency": "real_time",
        "source_of_truth": "source",
    }
    data.update(overrides)
    return {f"add-mapping-{k}": v for k, v in data.items()}


def page(project, connection):
    return reverse("planner:mapping_import", args=[project.pk, connection.pk])


def preview(client, project, connection, data: bytes | None = None, name="m.csv", **fields):
    post = dict(fields)
    if data is not None:
        post["file"] = SimpleUploadedFile(name, data)
    return client.post(page(project, connection), post)


def confirm(client, project, connection, response, **extra):
    """Post the preview back as the page's form would, with `extra` on top."""
    ctx = response.context
    form = {
        "step": "confirm",
        "encoded": ctx["encoded"],
        "filename": ctx["filename"],
        "mode": ctx["mode"],
    }
    form |= {f"col_{i}": (field or "") for i, field in ctx["columns"].items()}
    form |= extra
    return client.post(page(project, connection), form)


PM_SHEET = (
    "Source System,Target System,Source field,Target field,Target type,Sync frequency,"
    "Direction,Null rule,Required,Transformation,Notes\n"
    "Sales CRM,Billing,Email,email,varchar(80),every 5 minutes,one-way,required,yes,"
    'trim | lower | max_length(80),"  keep my spaces  "\n'
    'sales crm,BILLING,Name,name,text,hourly,→,skip,no,trim,"two\nlines"\n'
    "Sales  CRM,Billing,Id,id,bigint,nightly,→,default 0,n,identity,\n"
)
