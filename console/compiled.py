"""Hot queries compiled once per database connection.

For a one-row look-up the ORM spends several times longer building and
compiling the query than the database spends answering it: on the agents'
check-in, the hottest path of the server, that was most of a request. A
``CompiledQuery`` builds its queryset with the ORM once per connection, keeps
the SQL and the result converters, and afterwards only executes the SQL with
new parameter values and turns the row into a model instance as the ORM would.

The parameters are listed by the caller (``params``, in the order the SQL
needs them); the first compilation on each connection checks that list against
the ORM's own parameters for the same values and refuses to run on a mismatch,
so a Django upgrade that reorders them fails loudly instead of querying wrong.
Queries still go through Django's cursor: they are counted, logged and wrapped
like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)


class CompiledQueryMismatch(RuntimeError):
    """The declared parameters do not match what the ORM compiles."""


@dataclass
class _Compiled:
    sql: str
    compiler: SQLCompiler
    converters: dict[int, Any]
    attnames: list[str]
    annotations: list[str]


class CompiledQuery(Generic[M]):
    """``build(**values)`` is the queryset; ``params(connection, **values)`` its SQL parameters, in order."""

    def __init__(
        self,
        model: type[M],
        build: Callable[..., QuerySet[M]],
        params: Callable[..., Sequence[Any]],
        *,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.model = model
        self.build = build
        self.params = params
        self.using = using
        self._compiled: WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = WeakKeyDictionary()

    def _compile(self, connection: BaseDatabaseWrapper, values: dict[str, Any]) -> _Compiled:
        compiler = self.build(**values).query.get_compiler(connection=connection)
        sql, orm_params = compiler.as_sql()
        declared = list(self.params(connection, **values))
        if list(orm_params) != declared:
            raise CompiledQueryMismatch(
                f"{self.model.__name__}: declared parameters {declared!r} but the ORM compiles {list(orm_params)!r}"
            )
        expressions = [expression for expression, _, _ in compiler.select]
        attnames = []
        for expression in expressions:
            if not isinstance(expression, Col):
                break
            attnames.append(expression.target.attname)
        annotations = [alias for _, _, alias in compiler.select[len(attnames) :]]
        return _Compiled(
            sql=sql,
            compiler=compiler,
            converters=compiler.get_converters(expressions),
            attnames=attnames,
            annotations=[str(alias) for alias in annotations],
        )

    def first(self, **values: Any) -> M | None:
        """The first row as a model instance, or None."""
        found = self.first_annotated(**values)
        return found[0] if found is not None else None

    def first_annotated(self, **values: Any) -> tuple[M, dict[str, Any]] | None:
        """The first row as a model instance and its annotations by name, or None."""
        connection = connections[self.using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compile(connection, values)
            self._compiled[connection] = compiled
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, list(self.params(connection, **values)))
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            row = next(iter(compiled.compiler.apply_converters([row], compiled.converters)))
        width = len(compiled.attnames)
        instance = self.model.from_db(connection.alias, compiled.attnames, tuple(row[:width]))
        return instance, dict(zip(compiled.annotations, row[width:], strict=True))
