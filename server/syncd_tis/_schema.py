"""The TCS tables the jobs read and write (SQLAlchemy Core), named as in MySQL schema `tcs`.

Three groups, each on its own MetaData:

* `TCS`: the source tables and the three derived tables (`PersonOwner`, `PersonTrust`,
  `PostTrust`). In production these exist already; `syncd db init` creates only what is missing.
* `REFERENCE`: stand-ins for the Reference service's `Trust`, `Site` and `Grade`, which live in
  another database in production and are never read by the jobs. Only the demo fills them, so
  `db init` creates them only in a database that has no `Person` table yet.
* `STAGING`: per-run TEMPORARY tables where a derived table is computed aside before it is
  diff-applied; never created by `db init`, invisible to other sessions, gone with the connection.

Unlike the old schema, `PersonTrust` and `PostTrust` carry a unique key on (owner id, trust id):
the jobs never write duplicates, and the key makes that a database guarantee. On a production
schema without the key the jobs still remove old duplicates; add the key with a TCS migration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere, as in TCS.
Id = BigInteger().with_variant(Integer(), "sqlite")


class _Timestamp(TypeDecorator[datetime]):
    """Microseconds on MySQL (DATETIME(6)); the other backends keep them anyway.

    Not `with_variant(mysql.DATETIME(fsp=6), …)`: that imports the MySQL dialect with the
    tables, into the daemon too, which names these tables but never talks to MySQL; here the
    MySQL type is imported when a MySQL connection first needs it."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())


Timestamp = _Timestamp()

TCS = MetaData()
REFERENCE = MetaData()
STAGING = MetaData()

person = Table(
    "Person",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("intrepidId", String(50)),
    Column("addedDate", Timestamp),
    Column("amendedDate", Timestamp),  # the JPA @Version of TCS: optimistic lock and CDC marker
    Column("role", String(255)),
    Column("status", String(20)),  # CURRENT, INACTIVE or DELETE
    Column("publicHealthNumber", String(255)),
)

contact_details = Table(
    "ContactDetails",
    TCS,
    Column("id", Id, ForeignKey("Person.id", name="fk_contactdetails_person"), primary_key=True),
    Column("surname", String(255)),
    Column("forenames", String(255)),
)

gmc_details = Table(
    "GmcDetails",
    TCS,
    Column("id", Id, ForeignKey("Person.id", name="fk_gmcdetails_person"), primary_key=True),
    Column("gmcNumber", String(50)),
)

gdc_details = Table(
    "GdcDetails",
    TCS,
    Column("id", Id, ForeignKey("Person.id", name="fk_gdcdetails_person"), primary_key=True),
    Column("gdcNumber", String(50)),
)

programme = Table(
    "Programme",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("programmeName", String(255)),
    Column("programmeNumber", String(255)),
    Column("owner", String(255)),  # a local office name
)

programme_membership = Table(
    "ProgrammeMembership",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", String(36)),
    Column("personId", Id, ForeignKey("Person.id", name="fk_pm_person"), nullable=False),
    Column("programmeId", Id, ForeignKey("Programme.id", name="fk_pm_programme")),
    Column("programmeStartDate", Date),
    Column("programmeEndDate", Date),
    Column("programmeMembershipType", String(255)),
    Column("trainingNumberId", Id),
    Column("amendedDate", Timestamp),
    Index("ix_pm_person", "personId"),
    # The record-status job selects by "started on D" or "ended on D-1".
    Index("ix_pm_start", "programmeStartDate"),
    Index("ix_pm_end", "programmeEndDate"),
)

specialty = Table(
    "Specialty",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255)),
    Column("specialtyCode", String(255)),
)

post = Table(
    "Post",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("nationalPostNumber", String(255)),
    Column("owner", String(255)),
    Column("employingBodyId", Id),  # a Trust id in the Reference database
    Column("trainingBodyId", Id),
    Column("fundingStatus", String(20)),  # CURRENT or INACTIVE
    Column("status", String(20)),
    Column("intrepidId", String(50)),
)

post_funding = Table(
    "PostFunding",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("postId", Id, ForeignKey("Post.id", name="fk_postfunding_post"), nullable=False),
    Column("fundingType", String(255)),
    Column("startDate", Date),
    Column("endDate", Date),
    Index("ix_postfunding_post", "postId"),
)

placement = Table(
    "Placement",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("traineeId", Id, ForeignKey("Person.id", name="fk_placement_person")),
    Column("postId", Id, ForeignKey("Post.id", name="fk_placement_post")),
    Column("dateFrom", Date),
    Column("dateTo", Date),
    Column("siteId", Id),
    Column("siteCode", String(255)),
    Column("gradeId", Id),
    Column("gradeAbbreviation", String(255)),
    Column("placementType", String(255)),
    Column("lifecycleState", String(20)),  # DRAFT or APPROVED
    Index("ix_placement_trainee", "traineeId"),
    Index("ix_placement_post", "postId"),
)

placement_specialty = Table(
    "PlacementSpecialty",
    TCS,
    Column("placementId", Id, ForeignKey("Placement.id", name="fk_plspec_placement")),
    Column("specialtyId", Id, ForeignKey("Specialty.id", name="fk_plspec_specialty")),
    Column("placementSpecialtyType", String(20)),  # PRIMARY, SUB_SPECIALTY, OTHER
    PrimaryKeyConstraint("placementId", "specialtyId"),
)

person_owner = Table(
    "PersonOwner",
    TCS,
    Column("id", Id, ForeignKey("Person.id", name="fk_personowner_person"), autoincrement=False),
    Column("owner", String(255)),
    Column("rule", String(2)),
    PrimaryKeyConstraint("id", name="person_owner_pk"),
)

person_trust = Table(
    "PersonTrust",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("personId", Id, ForeignKey("Person.id", name="fk_persontrust_person"), nullable=False),
    Column("trustId", Id),
    Column("trustCode", String(255)),  # never filled, as in the old service
    Column("trustName", String(255)),
    UniqueConstraint("personId", "trustId", name="uk_persontrust_person_trust"),
)

post_trust = Table(
    "PostTrust",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("postId", Id, ForeignKey("Post.id", name="fk_posttrust_post"), nullable=False),
    Column("trustId", Id),
    Column("trustCode", String(255)),
    Column("trustName", String(255)),
    UniqueConstraint("postId", "trustId", name="uk_posttrust_post_trust"),
)

trust = Table(
    "Trust",
    REFERENCE,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(20)),
    Column("trustKnownAs", String(255)),
    Column("status", String(20)),
)

site = Table(
    "Site",
    REFERENCE,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("siteCode", String(20)),
    Column("siteName", String(255)),
    Column("trustId", Id),
)

grade = Table(
    "Grade",
    REFERENCE,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("abbreviation", String(20)),
    Column("name", String(255)),
)

# Staging: per-person sort keys of the owner rules (see _owner), then one row per result row
# of the derived table, keyed like its natural key.
owner_membership_keys = Table(
    "tis_owner_membership_keys",
    STAGING,
    Column("personId", BigInteger, primary_key=True, autoincrement=False),
    Column("k1", BigInteger),
    Column("k5", BigInteger),
    Column("k7", BigInteger),
    prefixes=["TEMPORARY"],
)

owner_placement_keys = Table(
    "tis_owner_placement_keys",
    STAGING,
    Column("personId", BigInteger, primary_key=True, autoincrement=False),
    Column("k2", BigInteger),
    Column("k6", BigInteger),
    Column("k8", BigInteger),
    prefixes=["TEMPORARY"],
)

owner_stage = Table(
    "tis_owner_stage",
    STAGING,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", String(255)),
    Column("rule", String(2)),
    prefixes=["TEMPORARY"],
)

person_trust_stage = Table(
    "tis_person_trust_stage",
    STAGING,
    Column("personId", BigInteger, nullable=False),
    Column("trustId", BigInteger, nullable=False),
    PrimaryKeyConstraint("personId", "trustId"),
    prefixes=["TEMPORARY"],
)

post_trust_stage = Table(
    "tis_post_trust_stage",
    STAGING,
    Column("postId", BigInteger, nullable=False),
    Column("trustId", BigInteger, nullable=False),
    PrimaryKeyConstraint("postId", "trustId"),
    prefixes=["TEMPORARY"],
)


def create_schema(engine: Engine) -> tuple[list[str], list[str]]:
    """Create the tables that do not exist yet; returns (created, already there).

    Never alters or drops anything. The Reference stand-ins are only added to a database that
    has no `Person` table yet, i.e. a new demo or test database, never to a TCS schema.
    """
    existing = set(inspect(engine).get_table_names())
    everything = [*TCS.sorted_tables, *REFERENCE.sorted_tables]
    wanted = TCS.sorted_tables if person.name in existing else everything
    with engine.begin() as conn:
        for table in wanted:
            table.create(conn, checkfirst=True)
    created = [t.name for t in wanted if t.name not in existing]
    kept = [t.name for t in everything if t.name in existing]
    return created, kept
