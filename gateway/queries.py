"""Query-string models of the views: validated by `gateway.http.query` and documented in
/openapi.json from the same classes (types, bounds, enums, defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Query(BaseModel):
    """Unknown query parameters are ignored (cache busters, tracking tags)."""

    model_config = ConfigDict(extra="ignore")


class SummaryQuery(Query):
    lang: Literal["ja", "en"] = Field(default="ja", description="language of the text")
    format: Literal["text", "ssml"] = Field(
        default="text", description="text: JSON with a plain paragraph; ssml: an SSML document for speech engines")


class AvailabilityQuery(Query):
    isbn: str = Field(min_length=1, max_length=32, description="ISBN-10 or ISBN-13, hyphens allowed",
                      examples=["9784062748797"])
    libraries: str | None = Field(default=None, max_length=2000,
                                  description="comma-separated library ids (default: every library offering it)")
    timeout: float = Field(default=5.0, ge=0.1, le=60, description="seconds to wait for the slowest library")


class HistoryQuery(Query):
    page: int = Field(default=1, ge=1, le=1000)
    per_page: int = Field(default=50, ge=1, le=200)


class MessagesQuery(Query):
    include_read: bool = Field(default=False, description="also the messages already read")


class ExportQuery(Query):
    format: Literal["csv"] = "csv"
