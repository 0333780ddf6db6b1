"""Hot queries compiled once per database connection.

For a one-row look-up the ORM spends several times longer building and
compiling the query than the database spends answering it: on the agents'
check-in, the hottest path of the server, that was most of a request. A
``CompiledQuery`` builds its queryset with the ORM once per connection, keeps
the SQL and the result converters, and afterwards only executes the SQL with
new argument values and turns the row into a model instance as the ORM would.

Where each argument goes in the SQL is found, not declared: the first
compilation on a connection builds the queryset twice with stand-in values
for the arguments (distinct in each build, and made of characters an ORM
transformation would change) and compares the ORM's parameters. A parameter
that differs between the two builds and is the stand-in is that argument's
slot; one that is the same in both is a constant of the query (a status it
filters on, a singleton's primary key), kept as a ``Literal``. So a queryset
may be built from functions in other modules (``rings.held_back_versions``
inside ``handover.latest_offered_to``) and change freely: the statement
follows. What cannot be compiled once refuses to run, loudly
(``CompiledQueryMismatch``): SQL that changes with the values, a parameter
that changes with them but is not one of them (an argument the ORM
transformed, a clock read while building), an argument that never reaches the
statement, or real values that compile to anything but the statement found
with the stand-ins.

On PostgreSQL the constants are written into the statement once instead of
being converted and sent on every execution (for the check-in's statement that
was a quarter of its client-side cost), and the statement binds its
parameters on the server and is prepared there once per connection: for the
check-in's look-up (the client, the settings rows, the probe for waiting work)
planning cost PostgreSQL three times what executing did. Django's own queries
bind on the client, which psycopg never prepares, so only these are.
``DATABASE_PREPARED_STATEMENTS=false`` (console/settings.py) leaves the
connection's ``prepare_threshold`` unset and nothing is prepared, for a
connection pooler in transaction mode that does not track prepared
statements. Queries still go through Django's cursor wrapper: they are
counted, logged and wrapped like any other.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar, cast
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, Expression, Lookup, Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)


class CompiledQueryMismatch(RuntimeError):
    """The queryset cannot be compiled once and run with new values: its statement would query wrong."""


@dataclass(frozen=True)
class Literal:
    """A parameter of the statement that no argument reaches: the same on every execution."""

    value: Any


@dataclass(frozen=True)
class Argument:
    """A parameter that takes the named argument's value, through ``convert`` (a list's array) if any."""

    name: str
    convert: Callable[[Any], Any] | None = None


# Stand-ins for int arguments: inside every integer column's range (the ORM refuses a lookup
# beyond it) and far from the small constants a query holds.
_INT_STAND_IN = 1_900_000_000


def _stand_in(name: str, value: Any, index: int, build: int) -> Any:
    """A value for argument ``name`` in stand-in build 1 or 2: of the argument's kind, different in each."""
    if isinstance(value, bool) or not isinstance(value, int | str | list | tuple):
        raise CompiledQueryMismatch(
            f"argument {name}={value!r}: a compiled query takes str, int or list arguments (None or a bool "
            "would change its SQL)"
        )
    if isinstance(value, int):
        return _INT_STAND_IN + 10 * index + build
    if isinstance(value, str):
        # %, _, \ and ' are what a LIKE or quoting transformation changes: such an argument is refused.
        return f"stand-in {name} {build} %_\\'"
    return [_stand_in(name, value[0] if value else "", index, build)]


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values))


def _any_of(connection: BaseDatabaseWrapper) -> Callable[[Iterable[Any]], Any]:
    return list if connection.vendor == "postgresql" else _json_list


def any_of_parameter(connection: BaseDatabaseWrapper, values: Iterable[Any]) -> Any:
    """A list bound as one parameter of ``AnyOf``: an array on PostgreSQL, a JSON array elsewhere."""
    return _any_of(connection)(values)


def _converter(connection: BaseDatabaseWrapper, value: Any) -> Callable[[Any], Any] | None:
    """How an argument's value becomes its parameter: a list as one ``AnyOf`` parameter, anything else as is."""
    return _any_of(connection) if isinstance(value, list | tuple) else None


def _parameter(slot: Literal | Argument, values: dict[str, Any]) -> Any:
    if isinstance(slot, Literal):
        return slot.value
    value = values[slot.name]
    return value if slot.convert is None else slot.convert(value)


@dataclass
class _Compiled:
    sql: str
    compiler: SQLCompiler
    converters: dict[int, Any]
    attnames: list[str]
    annotations: list[str]
    names: frozenset[str]
    # The parameters bound on each execution, in the statement's order (on PostgreSQL the literals are in ``sql``).
    bound: list[Literal | Argument]

    def parameters(self, values: dict[str, Any]) -> list[Any]:
        if values.keys() != self.names:
            raise TypeError(f"the query takes {sorted(self.names)}, not {sorted(values)}")
        return [_parameter(slot, values) for slot in self.bound]


def _with_literals(connection: BaseDatabaseWrapper, sql: str, slots: Sequence[Literal | Argument]) -> str:
    """``sql`` with each ``Literal`` parameter written in, quoted as the database quotes it."""
    pieces = sql.split("%s")
    if "%%" in sql or len(pieces) != len(slots) + 1:
        # Placeholders this split cannot tell apart from text.
        raise CompiledQueryMismatch(f"cannot write literals into {sql[:200]!r}")
    written = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        if isinstance(slot, Literal):
            # compose_sql (PostgreSQL's operations) quotes as psycopg does; a % in it must stay text.
            quoted = cast(Any, connection.ops).compose_sql("%s", [slot.value])
            written.append(quoted.replace("%", "%%"))
        else:
            written.append("%s")
        written.append(piece)
    return "".join(written)


class CompiledQuery(Generic[M]):
    """``build(**arguments)`` is the queryset; run it with ``first``, ``first_annotated`` or ``rows``.

    The arguments are keywords, the same names as ``build``'s parameters, of
    the same kind on every call: str, int, or a list (bound as one parameter
    of ``AnyOf``).
    """

    def __init__(self, model: type[M], build: Callable[..., QuerySet[M]], *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.model = model
        self.build = build
        self.using = using
        self._names = sorted(inspect.signature(build).parameters)
        self._compiled: WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = WeakKeyDictionary()

    def _sql(self, connection: BaseDatabaseWrapper, values: dict[str, Any]) -> tuple[SQLCompiler, str, list[Any]]:
        try:
            compiler = self.build(**values).query.get_compiler(connection=connection)
            sql, params = compiler.as_sql()
        except Exception as exc:  # e.g. a value the ORM refuses, or a query it finds empty
            raise CompiledQueryMismatch(f"{self._label}: cannot compile with {values!r}: {exc!r}") from exc
        return compiler, sql, list(params)

    @property
    def _label(self) -> str:
        return f"{self.model.__name__} query {getattr(self.build, '__qualname__', self.build)}"

    def _slots(self, connection: BaseDatabaseWrapper, values: dict[str, Any]) -> tuple[SQLCompiler, str, list]:
        """The statement and where each argument goes in it, found by building it with two sets of stand-ins."""
        if sorted(values) != self._names:
            raise TypeError(f"{self._label} takes {self._names}, not {sorted(values)}")
        builds = []
        for build in (1, 2):
            stand_ins = {name: _stand_in(name, values[name], index, build) for index, name in enumerate(self._names)}
            builds.append((stand_ins, *self._sql(connection, stand_ins)))
        (first_in, compiler, sql, first), (second_in, _, second_sql, second) = builds
        if second_sql != sql or len(second) != len(first):
            raise CompiledQueryMismatch(f"{self._label}: its SQL changes with the arguments' values")
        converters = {name: _converter(connection, values[name]) for name in self._names}

        def as_bound(name: str, stand_in: Any) -> Any:
            convert = converters[name]
            return stand_in if convert is None else convert(stand_in)

        slots: list[Literal | Argument] = []
        for position, (one, other) in enumerate(zip(first, second, strict=True), start=1):
            if one == other:
                slots.append(Literal(one))
                continue
            found = [
                name
                for name in self._names
                if one == as_bound(name, first_in[name]) and other == as_bound(name, second_in[name])
            ]
            if len(found) != 1:
                raise CompiledQueryMismatch(
                    f"{self._label}: parameter {position} ({one!r}) changes with the arguments but is none of "
                    "them as given (did the ORM transform an argument, or the build read a clock?)"
                )
            slots.append(Argument(found[0], converters[found[0]]))
        unbound = set(self._names) - {slot.name for slot in slots if isinstance(slot, Argument)}
        if unbound:
            raise CompiledQueryMismatch(f"{self._label}: argument(s) {sorted(unbound)} never reach the statement")
        _, real_sql, real = self._sql(connection, values)
        if real_sql != sql or real != [_parameter(slot, values) for slot in slots]:
            raise CompiledQueryMismatch(
                f"{self._label}: with {values!r} the ORM compiles {real!r}, not the statement its stand-ins gave"
            )
        return compiler, sql, slots

    def _compile(self, connection: BaseDatabaseWrapper, values: dict[str, Any]) -> _Compiled:
        compiler, sql, slots = self._slots(connection, values)
        # Only PostgreSQL prepares statements; elsewhere every parameter stays bound.
        bound = slots
        if connection.vendor == "postgresql" and any(isinstance(slot, Literal) for slot in slots):
            sql = _with_literals(connection, sql, slots)
            bound = [slot for slot in slots if isinstance(slot, Argument)]
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
            names=frozenset(self._names),
            bound=bound,
        )

    def first(self, **values: Any) -> M | None:
        """The first row as a model instance, or None."""
        found = self.first_annotated(**values)
        return found[0] if found is not None else None

    def _ready(self, values: dict[str, Any]) -> tuple[BaseDatabaseWrapper, _Compiled, list[Any]]:
        connection = connections[self.using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compile(connection, values)
            self._compiled[connection] = compiled
        return connection, compiled, compiled.parameters(values)

    def rows(self, **values: Any) -> list[tuple[Any, ...]]:
        """Every row as a tuple of its selected values (a ``values()`` or ``values_list()`` queryset)."""
        connection, compiled, params = self._ready(values)
        rows: list[Sequence[Any]] = _fetch(connection, compiled.sql, params, every=True)
        if compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        return [tuple(row) for row in rows]

    def first_annotated(self, **values: Any) -> tuple[M, dict[str, Any]] | None:
        """The first row as a model instance and its annotations by name, or None."""
        connection, compiled, params = self._ready(values)
        row: Sequence[Any] | None = _fetch(connection, compiled.sql, params, every=False)
        if row is None:
            return None
        if compiled.converters:
            row = next(iter(compiled.compiler.apply_converters([row], compiled.converters)))
        width = len(compiled.attnames)
        instance = self.model.from_db(connection.alias, compiled.attnames, tuple(row[:width]))
        return instance, dict(zip(compiled.annotations, row[width:], strict=True))


class RawStatement:
    """A statement the ORM cannot write (a data-modifying WITH, say), prepared once per connection.

    ``sql(connection)`` writes it for that connection's database, its table and
    column names taken from the models' metadata; it runs like a
    ``CompiledQuery`` (prepared on PostgreSQL, counted and logged by Django).
    """

    def __init__(self, sql: Callable[[BaseDatabaseWrapper], str], *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.sql = sql
        self.using = using
        self._written: WeakKeyDictionary[BaseDatabaseWrapper, str] = WeakKeyDictionary()

    def rows(self, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        connection = connections[self.using]
        sql = self._written.get(connection)
        if sql is None:
            sql = self._written[connection] = self.sql(connection)
        return [tuple(row) for row in _fetch(connection, sql, list(params), every=True)]


def _fetch(connection: BaseDatabaseWrapper, sql: str, params: list[Any], *, every: bool) -> Any:
    """Every row (a list) or the first (or None); on PostgreSQL through a preparing cursor, with the
    connection's health checked lazily.

    With CONN_HEALTH_CHECKS Django sends ``SELECT 1`` before a request's first
    query on a reused connection: on a quiet heartbeat that doubled the round
    trips. Here the statement itself is the check: when it fails on a
    connection not yet checked in this request, outside a transaction, and the
    connection turns out dead (a database restart), it is closed and the
    statement runs once more on a new one, which is what the health check
    would have done beforehand.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if every else cursor.fetchone()
    # The health-check attributes are Django's own (base/base.py), not in its type stubs.
    db: Any = connection
    unchecked = db.health_check_enabled and not db.health_check_done and db.connection is not None
    try:
        return _prepared_fetch(db, sql, params, every=every)
    except DatabaseError:
        if not unchecked or db.in_atomic_block or db.is_usable():
            raise
        db.close()
        return _prepared_fetch(db, sql, params, every=every)
    finally:
        if unchecked and db.connection is not None:
            db.health_check_done = True


def _prepared_fetch(connection: Any, sql: str, params: list[Any], *, every: bool) -> Any:
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(_preparing_cursor_class()(connection.connection))
    with cursor:
        cursor.execute(sql, params)
        if connection.queries_logged and connection.queries_log and connection.queries_log[-1]["sql"] is None:
            # Django's query log reads the SQL from psycopg, which keeps none for a prepared
            # execution: log the statement (its parameters bound apart) so DEBUG and tests see it.
            connection.queries_log[-1]["sql"] = sql
        return cursor.fetchall() if every else cursor.fetchone()


@cache
def _preparing_cursor_class() -> type:
    # Imported here: the PostgreSQL backend module needs psycopg, which a SQLite-only run never loads.
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Binds parameters on the server and prepares the statement on first use (when the connection prepares at all)."""

        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None
        ) -> Any:
            # psycopg's Cursor.execute, which the stubs cannot see through Django's class.
            return super().execute(query, params, prepare=prepare, binary=binary)  # type: ignore[misc]

    return PreparingCursor


class AnyOf(Lookup):
    """``lhs`` is one of a list of values bound as one parameter: the same SQL whatever the list's length.

    ``IN (%s, %s, ...)`` is another statement for every length, so a query
    filtering on a list could not be compiled (or prepared) once. Used as an
    expression: ``filter(AnyOf(F("number"), [1, 2]))``; ``= ANY(array)`` on
    PostgreSQL, ``IN (SELECT value FROM json_each(...))`` elsewhere (SQLite).
    ``any_of_parameter`` is the parameter it binds (a ``CompiledQuery`` binds a
    list argument the same way).
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def get_db_prep_lookup(self, value: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        return "%s", (any_of_parameter(connection, value),)

    def as_sql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        # lhs and rhs are SQL the compiler wrote (a column, a placeholder); the values are bound.
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        params = (*lhs_params, *rhs_params)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY({rhs})", params
        return f"{lhs} IN (SELECT value FROM json_each({rhs}))", params  # noqa: S608


class RowVersion(Expression):
    """A text that changes whenever the row of a one-table (sub)query changes, without parameters.

    PostgreSQL: where the row version lives and which transaction wrote it
    (``ctid`` and ``xmin``): every UPDATE writes a new version, at a new place
    (so two updates in one transaction differ too), and transaction ids are
    not reused. Elsewhere: the row itself, a JSON object of its columns with
    literal keys (its content is its version). A caller that keeps a row per
    process reads this along with its own query and reads the row again only
    when it differs from the version it holds.
    """

    output_field = CharField()

    def __init__(self, model: type[Model]) -> None:
        super().__init__()
        self.model = model

    def _alias(self, compiler: SQLCompiler) -> str:
        return compiler.quote_name_unless_alias(compiler.query.get_initial_alias())

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[str | int, ...]]:
        alias = self._alias(compiler)
        columns = [str(field.column) for field in self.model._meta.concrete_fields]
        pairs = ", ".join(
            "'{key}', {alias}.{column}".format(
                key=column.replace("'", "''"), alias=alias, column=connection.ops.quote_name(column)
            )
            for column in columns
        )
        return f"JSON_OBJECT({pairs})", ()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        alias = self._alias(compiler)
        return f"({alias}.xmin::text || '/' || {alias}.ctid::text)", ()
