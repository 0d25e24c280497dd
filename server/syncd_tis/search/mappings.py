"""The Elasticsearch mappings of the two indices (reference §8.6).

Fields TCS's `PersonView` / `PostView` annotate get the annotated type; the others got ES's
dynamic mapping in the old index (text with a `keyword` sub-field for strings, `long` for
numbers), which is written out here so the mapping does not depend on the first document seen.
The nested `currentPlacements` of a person is new (see `persons`).
"""

from __future__ import annotations

from typing import Any

LONG: dict[str, Any] = {"type": "long"}
KEYWORD: dict[str, Any] = {"type": "keyword"}
DATE: dict[str, Any] = {"type": "date", "format": "strict_date"}
# What ES's dynamic mapping makes of a string: text, plus an exact `.keyword` sub-field.
DYNAMIC_TEXT: dict[str, Any] = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}
STANDARD_TEXT: dict[str, Any] = {
    "type": "text",
    "analyzer": "standard",
    "search_analyzer": "standard",
}

PERSONS: dict[str, Any] = {
    "properties": {
        "personId": LONG,
        "intrepidId": DYNAMIC_TEXT,
        "surname": KEYWORD,
        "forenames": KEYWORD,
        "fullName": STANDARD_TEXT,
        "gmcNumber": DYNAMIC_TEXT,
        "gdcNumber": DYNAMIC_TEXT,
        "publicHealthNumber": KEYWORD,
        "gradeId": LONG,
        "gradeAbbreviation": DYNAMIC_TEXT,
        "siteId": LONG,
        "siteCode": DYNAMIC_TEXT,
        "placementType": KEYWORD,
        "specialty": KEYWORD,
        "role": KEYWORD,
        "status": {"type": "text", "analyzer": "standard"},
        "currentOwner": KEYWORD,
        "currentOwnerRule": DYNAMIC_TEXT,
        "trusts": {"type": "nested", "properties": {"personId": LONG, "trustId": LONG}},
        "programmeMemberships": {
            "type": "nested",
            "properties": {
                "id": LONG,
                "personId": LONG,
                "programmeId": LONG,
                "programmeName": DYNAMIC_TEXT,
                "programmeNumber": DYNAMIC_TEXT,
                "programmeMembershipStatus": DYNAMIC_TEXT,
                "trainingNumber": DYNAMIC_TEXT,
            },
        },
        "currentPlacements": {
            "type": "nested",
            "properties": {
                "placementId": LONG,
                "postId": LONG,
                "dateFrom": DATE,
                "dateTo": DATE,
                "gradeId": LONG,
                "gradeAbbreviation": KEYWORD,
                "siteId": LONG,
                "siteCode": KEYWORD,
                "placementType": KEYWORD,
                "specialty": KEYWORD,
            },
        },
    }
}

POSTS: dict[str, Any] = {
    "properties": {
        "id": LONG,
        "currentTraineeSurnames": KEYWORD,
        "currentTraineeForenames": KEYWORD,
        "nationalPostNumber": KEYWORD,
        "owner": KEYWORD,
        "primarySpecialtyCode": KEYWORD,
        "status": KEYWORD,
        "programmeNames": KEYWORD,
        "fundingTypes": KEYWORD,
        "primarySiteId": LONG,
        "approvedGradeId": LONG,
        "trustIds": LONG,
        "programmeIds": LONG,
        "primarySpecialtyId": LONG,
        "primarySpecialtyName": DYNAMIC_TEXT,
    }
}

# The fields a `search` operation's query runs against (simple_query_string, lenient, so a word
# against a numeric field is no error).
PERSON_SEARCH_FIELDS = (
    "fullName",
    "surname",
    "forenames",
    "gmcNumber",
    "gdcNumber",
    "publicHealthNumber",
    "intrepidId",
    "personId",
)
POST_SEARCH_FIELDS = (
    "nationalPostNumber",
    "owner",
    "primarySpecialtyName",
    "primarySpecialtyCode",
    "programmeNames",
    "currentTraineeSurnames",
    "currentTraineeForenames",
    "id",
)
