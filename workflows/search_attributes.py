"""Our custom search attributes. People use them in the Temporal Web UI
(`OmniException IS NOT NULL` lists every stuck process: unset when none is open); lists and reports read Postgres."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

OMNI_STATUS = SearchAttributeKey.for_keyword("OmniStatus")
OMNI_EXCEPTION = SearchAttributeKey.for_keyword("OmniException")
OMNI_CHANNEL = SearchAttributeKey.for_keyword("OmniChannel")
OMNI_PRIORITY = SearchAttributeKey.for_float("OmniPriority")

ALL = (OMNI_STATUS, OMNI_EXCEPTION, OMNI_CHANNEL, OMNI_PRIORITY)

# The names the CLI's `--search-attribute NAME=Type` expects.
CLI_TYPES = {
    "OmniStatus": "Keyword",
    "OmniException": "Keyword",
    "OmniChannel": "Keyword",
    "OmniPriority": "Double",
}
