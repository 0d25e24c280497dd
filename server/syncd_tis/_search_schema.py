"""The TCS tables only the search index jobs read, on the same MetaData as the others (`TCS`).

Importing this module adds them to `syncd_tis._schema.TCS`, so `create_schema` creates the
missing ones like every other TCS table. In production they exist already; their columns here
are the subset the jobs read, named as in MySQL schema `tcs`.

* `CurriculumMembership`: a programme membership's curricula; the persons index has one nested
  programme-membership entry per curriculum membership, as TCS's `programmeMembership.sql`.
  Linked by `programmeMembershipUuid` to `ProgrammeMembership.uuid`, which is not unique in
  TCS, so there is an index but no foreign key.
* `TrainingNumber`: the `trainingNumber` text of `ProgrammeMembership.trainingNumberId`.
* `PostGrade`, `PostSpecialty`, `PostSite`: links of a post, each with a type column; the posts
  index reads the APPROVED grade, the PRIMARY specialty and the PRIMARY site.
* `ProgrammePost`: which programmes a post belongs to (no type column in TCS).
"""

from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Index, String, Table

from syncd_tis._schema import TCS, Id

APPROVED = "APPROVED"
PRIMARY = "PRIMARY"

curriculum_membership = Table(
    "CurriculumMembership",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("programmeMembershipUuid", String(36)),
    Column("curriculumId", Id),
    Column("curriculumStartDate", Date),
    Column("curriculumEndDate", Date),
    Index("ix_cm_pm_uuid", "programmeMembershipUuid"),
)

training_number = Table(
    "TrainingNumber",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trainingNumber", String(255)),
)

post_grade = Table(
    "PostGrade",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("postId", Id, ForeignKey("Post.id", name="fk_postgrade_post"), nullable=False),
    Column("gradeId", Id),  # a Grade id in the Reference database
    Column("postGradeType", String(20)),  # APPROVED or OTHER
    Index("ix_postgrade_post", "postId"),
)

post_specialty = Table(
    "PostSpecialty",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("postId", Id, ForeignKey("Post.id", name="fk_postspecialty_post"), nullable=False),
    Column("specialtyId", Id, ForeignKey("Specialty.id", name="fk_postspecialty_specialty")),
    Column("postSpecialtyType", String(20)),  # PRIMARY, OTHER or SUB_SPECIALTY
    Index("ix_postspecialty_post", "postId"),
)

post_site = Table(
    "PostSite",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("postId", Id, ForeignKey("Post.id", name="fk_postsite_post"), nullable=False),
    Column("siteId", Id),  # a Site id in the Reference database
    Column("postSiteType", String(20)),  # PRIMARY or OTHER
    Index("ix_postsite_post", "postId"),
)

programme_post = Table(
    "ProgrammePost",
    TCS,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("programmeId", Id, ForeignKey("Programme.id", name="fk_programmepost_programme")),
    Column("postId", Id, ForeignKey("Post.id", name="fk_programmepost_post"), nullable=False),
    Index("ix_programmepost_post", "postId"),
)

SEARCH_TABLES = (
    curriculum_membership,
    training_number,
    post_grade,
    post_specialty,
    post_site,
    programme_post,
)
