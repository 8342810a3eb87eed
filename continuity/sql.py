"""Matching a column against a long list of values with one parameter.

`id IN (%s, %s, ...)` with 1,000 ids costs more than the statement it guards: psycopg splits and
converts a 1,000-placeholder query string on every call (it only caches short queries) and the
server parses 1,000 constants. `id IN (SELECT unnest(%s::bigint[]))` sends one array, and the
planner drives the statement from that list (a semi-join into the primary key), where
`id = ANY(array)` let it prefer another index whose selectivity it misjudged: with 200,000 rows
queued and stale statistics, a claim scanned every queued row to find its 1,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignObject, Lookup
from django.db.models.sql.compiler import SQLCompiler


def sql_any_of(
    column: str, values: Sequence[Any], *, array_type: str = "bigint"
) -> tuple[str, list[Any]]:
    """`column` equals one of `values`, as an SQL fragment and its parameters (an empty list
    matches nothing)."""
    return f"{column} IN (SELECT unnest(%s::{array_type}[]))", [list(values)]


@Field.register_lookup
class AnyOf(Lookup):
    """`filter(id__any_of=ids)`: the ORM spelling of sql_any_of for hot paths (plain values:
    ids, not model instances, also on a foreign key: `contact_id__any_of=[...]`)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection) for v in self.rhs]
        array_type = field.cast_db_type(connection) or "text"
        sql, params = sql_any_of(lhs, values, array_type=array_type)
        return sql, [*lhs_params, *params]


# Relation fields keep their own lookup registry; without this, `contact_id__any_of` is refused.
ForeignObject.register_lookup(AnyOf)
