"""Sample records for the demo's CRM and billing systems, so a validation run works at once.

The billing file is the CRM file put through the demo's own mapping, then disturbed the way
real integrations drift: a few customers missing or extra, a few statuses out of date, and a
few CRM records the mapping rejects.
"""

import io
import random

import polars as pl

from planner.mapping.engine import MappingSpec, compile_mapping

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Perlman"]
COUNTRIES = ["gb", "us", "de", "fr", "nl", ""]


def crm_records(n: int = 300, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)  # noqa: S311 - repeatable demo data, not security
    rows = []
    for i in range(1, n + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            {
                "Id": f"001a{i:06d}",
                "Status__c": rng.choice(["Active", "active ", "Inactive", "ACTIVE"]),
                "Email": f"{first}.{last}{i}@example.com",
                "FirstName": first,
                "LastName": last,
                "Country": rng.choice(COUNTRIES),
                "Annual_Fee__c": f"{rng.randint(50, 5000)}.{rng.randint(0, 99):02d}",
                "Signup_Date__c": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            }
        )
    # Records the mapping rejects: an unmapped status and a malformed e-mail address.
    rows[10]["Status__c"] = "pending"
    rows[42]["Status__c"] = "on hold"
    rows[77]["Email"] = "no-at-sign.example.com"
    return pl.DataFrame(rows)


def billing_records(crm: pl.DataFrame, specs: list[MappingSpec]) -> pl.DataFrame:
    report = compile_mapping(specs).validate(crm, "Id")
    target = report.output.drop("Id").filter(pl.col("customer_ref").is_not_null())
    target = target.with_columns(pl.all().cast(pl.String))
    drifted = pl.col("customer_ref").is_in(["001A000005", "001A000123", "001A000200"])
    target = target.with_columns(
        pl.when(drifted & (pl.col("status_code") == "1"))
        .then(pl.lit("0"))
        .when(drifted)
        .then(pl.lit("1"))
        .otherwise(pl.col("status_code"))
        .alias("status_code")
    )
    missing = ["001A000003", "001A000150"]
    target = target.filter(~pl.col("customer_ref").is_in(missing))
    extra = target.head(2).with_columns(pl.Series("customer_ref", ["001A900001", "001A900002"]))
    return pl.concat([target, extra])


def to_csv(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_csv(out)
    return out.getvalue()
