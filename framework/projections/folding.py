"""Folding a stream's queued read-model writes into one write per row before they are sent.

A transaction may touch an item only once. Without folding, a projector that keeps one row per
stream (a balance) had to commit one transaction per event; a rebuild ran at a fraction of the
speed of the same replay writing nothing. The engine therefore keeps the writes handlers queue in
a structured form (``RowWrite``: the row's table and key, and the PynamoDB actions or the item)
and folds consecutive writes on the same row:

- ``Update`` + ``Update``: the actions merge. Two ``add`` of a number sum; a later ``set`` or
  ``remove`` of an attribute replaces what came before on it; an ``add`` after a ``set`` of a
  number sets the sum, after a ``remove`` it sets the added value; distinct attributes
  concatenate.
- ``Put`` + ``Update``: the update's actions are applied to the put's item.
- anything + ``Delete``: the delete. Anything + ``Put``: the put (it replaces the whole row).

Exactness matters more than coverage: a fold must leave the row exactly as the writes applied one
by one would. Whatever cannot be folded exactly is a *fold boundary*, and the engine commits what
it has before going on: a write with a condition, a raw low-level write, an action on a nested
path or on a key attribute, a ``set`` whose value is computed from the item (``if_not_exists``,
``list_append``, arithmetic), set additions and deletions, an ``add`` to a non-number, a sum that
DynamoDB's 38 digits cannot hold exactly, an update after a delete. Such writes still share a
transaction with writes of other rows.
"""

from __future__ import annotations

import decimal
import functools
import types
from collections.abc import Hashable, Mapping
from typing import Any, Literal, NamedTuple

from pynamodb.attributes import NumberAttribute
from pynamodb.expressions.operand import Path, Value
from pynamodb.expressions.update import Action, AddAction, RemoveAction, SetAction, Update
from pynamodb.models import Model

from framework.errors import DefinitionError
from framework.store.positions import TransactItem, row_identity

WriteKind = Literal["Put", "Update", "Delete"]
AttributeValue = Mapping[str, Any]

_DYNAMODB_NUMBERS = decimal.Context(
    prec=38,
    Emin=-130,
    Emax=125,
    traps=[decimal.Inexact, decimal.Overflow, decimal.Underflow, decimal.Subnormal],
)
"""DynamoDB numbers: 38 significant digits, magnitudes 1E-130 to 9.99E+125. A sum that does not
fit exactly raises, and the writes are not folded (DynamoDB then judges them one by one)."""


class FieldChange(NamedTuple):
    """What an update does to one top-level attribute: set, add (a number) or remove.

    Kept plain, not as PynamoDB actions, so that folding the events of a stream builds no
    expression objects; the actions are built once, when the write is sent. A number folded
    from several writes is kept as a ``Decimal`` (``number``) and serialized once, when the
    write is sent, not parsed and printed again at every fold. A tuple, not an attrs class: a
    rebuild makes a few of them for every event, and a tuple is the cheapest object to make.
    """

    kind: Literal["set", "add", "remove"]
    path: Path
    value: AttributeValue | None = None
    number: decimal.Decimal | None = None

    def serialized(self) -> AttributeValue | None:
        """The value as DynamoDB receives it (``{"N": "12"}``); ``None`` for a removal."""
        if self.number is not None:
            return {"N": str(self.number)}
        return self.value

    def as_number(self) -> decimal.Decimal | None:
        """The value as a number, or ``None`` when it is not one (or there is none)."""
        if self.number is not None:
            return self.number
        if self.value is None or "N" not in self.value:
            return None
        try:
            return decimal.Decimal(self.value["N"])
        except (decimal.DecimalException, ValueError):
            return None

    def action(self) -> Action:
        """The PynamoDB action that makes this change."""
        if self.kind == "remove":
            return RemoveAction(self.path)
        value = self.serialized()
        assert value is not None
        make = SetAction if self.kind == "set" else AddAction
        return make(self.path, Value(dict(value)))


class RowWrite(NamedTuple):
    """A read-model write queued by a projector, kept structured so that it can be folded.

    ``identity`` is the row's (``row_identity``). ``request`` is what PynamoDB built for the
    write as queued (with its condition, if any), and is sent unchanged when nothing was folded
    into it; an update's request is ``None`` until it is needed (``transact_item``): serializing
    the update expression of every intermediate fold cost a rebuild more than its requests.
    ``actions`` are an update's (top-level attribute name to action), ``item`` a put's
    serialized item; ``None`` when the write cannot be folded (a condition, an action that
    depends on the item). A tuple, as ``FieldChange``: a rebuild makes two for every event.
    """

    kind: WriteKind
    table: str
    key: Mapping[str, AttributeValue]
    identity: Hashable
    request: Mapping[str, Any] | None
    item: Mapping[str, AttributeValue] | None = None
    actions: Mapping[str, FieldChange] | None = None
    foldable: bool = True

    def transact_item(self) -> TransactItem:
        """The ``TransactWriteItems`` entry of this write."""
        if self.request is not None:
            return {self.kind: dict(self.request)}
        assert self.actions is not None  # only a foldable update defers its request
        return {self.kind: _update_request(self, self.actions)}


QueuedWrite = RowWrite | TransactItem
"""What a projector queues: a structured read-model write, or a raw low-level one (never folded)."""


def key_names(model: type[Model]) -> tuple[str, ...]:
    """The names of ``model``'s key attributes (hash, then range)."""
    attributes = model.get_attributes().values()
    hash_keys = [a.attr_name for a in attributes if a.is_hash_key]
    return (*hash_keys, *(a.attr_name for a in attributes if a.is_range_key))


@functools.cache
def _key_attributes(model: type[Model]) -> tuple[tuple[str, Any], ...]:
    """(Python name, attribute) of ``model``'s key attributes, hash key first; a model's schema
    is fixed, so it is looked up once."""
    keys = [
        (name, attribute)
        for name, attribute in model.get_attributes().items()
        if attribute.is_hash_key or attribute.is_range_key
    ]
    return tuple(sorted(keys, key=lambda entry: not entry[1].is_hash_key))


@functools.cache
def _number_fields(model: type[Model]) -> dict[str, tuple[Path, Any]]:
    """``model``'s number attributes that are not keys: Python name to (path, attribute)."""
    return {
        name: (Path(attribute), attribute)
        for name, attribute in model.get_attributes().items()
        if attribute.attr_type == "N" and not (attribute.is_hash_key or attribute.is_range_key)
    }


def model_key(model: type[Model], key: Any) -> dict[str, AttributeValue]:
    """The serialized key of ``model``'s row keyed by ``key``: the hash key's value, or a
    (hash, range) tuple for a model with a range key."""
    attributes = _key_attributes(model)
    values = key if len(attributes) > 1 else (key,)
    if not isinstance(values, tuple) or len(values) != len(attributes):
        names = ", ".join(name for name, _ in attributes)
        raise ValueError(f"{model.__name__} is keyed by ({names}): got {key!r}")
    serialized: dict[str, AttributeValue] = {}
    for (name, attribute), value in zip(attributes, values, strict=True):
        if value is None:
            raise ValueError(f"{model.__name__}.{name} is part of the key and is not set")
        serialized[attribute.attr_name] = {attribute.attr_type: attribute.serialize(value)}
    return serialized


def added_write(table: str, model: type[Model], key: Any, amounts: Mapping[str, Any]) -> RowWrite:
    """An unconditional ``Update`` adding ``amounts`` to number attributes of a row.

    The same write as ``update(Row(key), actions=[Row.a.add(x), ...])``, built without a model
    instance or PynamoDB actions: the attributes' paths are looked up once per model and each
    amount is serialized by its attribute, as PynamoDB would. In a replay of a row updated by
    every event, building those objects was most of the handler's time.
    """
    if not amounts:
        raise ValueError(f"nothing to add to {model.__name__}")
    fields = _number_fields(model)
    changes: dict[str, FieldChange] = {}
    for name, amount in amounts.items():
        field = fields.get(name)
        if field is None:
            raise DefinitionError(
                f"{model.__name__}.{name} is not a number attribute (nor a key): add_to adds "
                "to number attributes; use update() with PynamoDB actions for anything else"
            )
        path, attribute = field
        if type(amount) is int and type(attribute) is NumberAttribute:
            number = str(amount)  # what its json.dumps gives, without the encoder's cost
        else:
            number = attribute.serialize(amount)
        changes[attribute.attr_name] = FieldChange("add", path, {"N": number})
    if type(key) in _PLAIN_KEYS or (
        type(key) is tuple and all(type(value) in _PLAIN_KEYS for value in key)
    ):
        serialized, identity = _known_row(table, model, key)
    else:
        serialized = model_key(model, key)
        identity = row_identity(table, serialized)
    return RowWrite("Update", table, serialized, identity, None, actions=changes)


_PLAIN_KEYS = (str, int)
"""Key values whose equal values serialize alike (unlike 1, 1.0 and True), so that a row's
serialized key and identity can be remembered by value."""


@functools.lru_cache(maxsize=4096)
def _known_row(
    table: str, model: type[Model], key: Any
) -> tuple[Mapping[str, AttributeValue], Hashable]:
    """The serialized key and identity of a row, remembered: a rebuild adds to the same rows
    event after event, and working them out was a fifth of what each of its writes cost. The
    key is read-only, as it is shared by every write of the row."""
    serialized = model_key(model, key)
    return types.MappingProxyType(serialized), row_identity(table, serialized)


def row_key(row: Model) -> dict[str, AttributeValue]:
    """The serialized key of ``row`` (``{"pk": {"S": "acc-1"}}``), as PynamoDB would send it."""
    key: dict[str, AttributeValue] = {}
    for name, attribute in _key_attributes(type(row)):
        value = getattr(row, name)
        if value is None:
            raise ValueError(f"{type(row).__name__}.{name} is part of the key and is not set")
        key[attribute.attr_name] = {attribute.attr_type: attribute.serialize(value)}
    return key


def put_write(
    table: str, key: Mapping[str, AttributeValue], request: Mapping[str, Any]
) -> RowWrite:
    """A queued ``Put`` of a row; ``request`` as PynamoDB builds it (``TableName``, ``Item``...)."""
    request = {**request, "TableName": table}
    foldable = "ConditionExpression" not in request
    item = dict(request["Item"])
    return RowWrite("Put", table, key, row_identity(table, key), request, item, foldable=foldable)


def delete_write(
    table: str, key: Mapping[str, AttributeValue], request: Mapping[str, Any]
) -> RowWrite:
    """A queued ``Delete`` of a row."""
    request = {**request, "TableName": table}
    foldable = "ConditionExpression" not in request
    return RowWrite("Delete", table, key, row_identity(table, key), request, foldable=foldable)


def update_write(
    table: str,
    key: Mapping[str, AttributeValue],
    request: Mapping[str, Any],
    actions: list[Action],
) -> RowWrite:
    """A queued ``Update`` of a row with PynamoDB ``actions``."""
    request = {**request, "TableName": table}
    by_name = _foldable_actions(actions, key)
    foldable = "ConditionExpression" not in request and by_name is not None
    identity = row_identity(table, key)
    return RowWrite("Update", table, key, identity, request, actions=by_name, foldable=foldable)


def unconditional_update(
    table: str, key: Mapping[str, AttributeValue], actions: list[Action]
) -> RowWrite | None:
    """A queued ``Update`` without a condition whose request is built only when it is sent.

    ``None`` when the actions cannot be folded: the caller then lets PynamoDB build the request
    (``update_write``), so that such writes reach DynamoDB exactly as queued.
    """
    by_name = _foldable_actions(actions, key)
    if by_name is None:
        return None
    return RowWrite("Update", table, key, row_identity(table, key), None, actions=by_name)


def _foldable_actions(
    actions: list[Action], key: Mapping[str, AttributeValue]
) -> dict[str, FieldChange] | None:
    """The changes by attribute name, or ``None`` when any of them cannot be folded exactly."""
    by_name: dict[str, FieldChange] = {}
    for action in actions:
        path = action.values[0]
        if not isinstance(path, Path) or len(path.path) != 1:
            return None  # a nested path: overlaps with its parent are not worth the risk
        name = path.path[0]
        if name in by_name or name in key:
            return None  # DynamoDB refuses both; let it say so
        if isinstance(action, RemoveAction):
            by_name[name] = FieldChange("remove", path)
            continue
        if not isinstance(action, SetAction | AddAction):
            return None  # DELETE from a set
        value = action.values[1]
        if not isinstance(value, Value):
            return None  # computed from the item (if_not_exists, list_append, a + b)
        serialized: AttributeValue = value.value
        if isinstance(action, AddAction):
            if value.attr_type != "N":
                return None  # set additions: not folded
            by_name[name] = FieldChange("add", path, serialized)
        else:
            by_name[name] = FieldChange("set", path, serialized)
    return by_name


def fold(earlier: RowWrite, later: RowWrite) -> RowWrite | None:
    """One write with the effect of ``earlier`` then ``later`` on their row, or ``None``."""
    if earlier.identity != later.identity:
        return None
    return _fold_row(earlier, later)


def _fold_row(earlier: RowWrite, later: RowWrite) -> RowWrite | None:
    """``fold`` of two writes known to be of one row."""
    if not (earlier.foldable and later.foldable):
        return None
    if later.kind in ("Put", "Delete"):
        return later  # replaces or removes the row whatever was written before
    if later.actions is None:
        return None
    if earlier.kind == "Put":
        return _apply_to_item(earlier, later.actions)
    if earlier.kind == "Update" and earlier.actions is not None:
        return _merge_updates(earlier, earlier.actions, later.actions)
    return None  # an update after a delete: not folded


def _apply_to_item(put: RowWrite, changes: Mapping[str, FieldChange]) -> RowWrite | None:
    assert put.item is not None
    item = dict(put.item)
    for name, change in changes.items():
        if change.kind == "remove":
            item.pop(name, None)
            continue
        value = change.serialized()
        assert value is not None
        current = item.get(name)
        if change.kind == "set" or current is None:
            item[name] = value
        elif "N" in current:
            total = _add(FieldChange("set", change.path, current), change)
            if total is None:
                return None
            item[name] = {"N": str(total)}
        else:
            return None  # ADD to a non-number: DynamoDB refuses it, let it say so
    assert put.request is not None  # a put's request is built when it is queued
    request = {**put.request, "Item": item}
    return put._replace(item=item, request=request)


def _merge_updates(
    earlier: RowWrite, before: Mapping[str, FieldChange], after: Mapping[str, FieldChange]
) -> RowWrite | None:
    merged = dict(before)
    for name, change in after.items():
        previous = merged.pop(name, None)  # re-inserted last: the order stays that of the writes
        if previous is None or change.kind != "add":
            merged[name] = change
            continue
        # A later ADD of a number onto what the earlier update did to the attribute.
        if previous.kind == "remove":
            merged[name] = FieldChange("set", change.path, change.value, change.number)
            continue
        total = _add(previous, change)
        if total is None:
            return None
        merged[name] = FieldChange(previous.kind, change.path, None, total)
    # Made directly, not by _replace: this runs once for every event a rebuild folds.
    return RowWrite("Update", earlier.table, earlier.key, earlier.identity, None, None, merged)


def _update_request(earlier: RowWrite, changes: Mapping[str, FieldChange]) -> dict[str, Any]:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    expression = Update(*(change.action() for change in changes.values())).serialize(names, values)
    request: dict[str, Any] = {
        "TableName": earlier.table,
        "Key": dict(earlier.key),
        "UpdateExpression": expression,
        # PynamoDB's placeholders map a placeholder to a name the other way round.
        "ExpressionAttributeNames": {placeholder: name for name, placeholder in names.items()},
    }
    if values:
        request["ExpressionAttributeValues"] = values
    return request


def _add(left: FieldChange, right: FieldChange) -> decimal.Decimal | None:
    """The sum of two number values, or ``None`` when either is not one or it is not exact."""
    first, second = left.as_number(), right.as_number()
    if first is None or second is None:
        return None
    try:
        return _DYNAMODB_NUMBERS.add(first, second)
    except decimal.DecimalException:
        return None


class FoldedBatch:
    """The writes of consecutive events of one stream, folded; what one transaction will carry.

    ``add`` takes an event's writes whole or not at all: when one of them touches a row already
    written in the batch and cannot be folded into it, the batch is left unchanged and the
    caller commits it first.
    """

    def __init__(self) -> None:
        self.writes: list[QueuedWrite] = []
        self._rows: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.writes)

    def add(self, writes: list[tuple[Hashable, QueuedWrite]], limit: int | None = None) -> bool:
        """Fold an event's writes (each with the identity of its row) in; ``False`` if not.

        ``limit`` bounds the number of writes the batch may hold afterwards.
        """
        if len(writes) == 1:  # most events write one row: nothing to stage, nothing to undo
            identity, write = writes[0]
            index = self._rows.get(identity)
            if limit is not None and len(self.writes) + (index is None) > limit:
                return False
            if index is not None:
                folded = _fold_any(self.writes[index], write)
                if folded is None:
                    return False
                self.writes[index] = folded
                return True
            self._rows[identity] = len(self.writes)
            self.writes.append(write)
            return True
        staged, rows = list(self.writes), dict(self._rows)
        for identity, write in writes:
            index = rows.get(identity)
            if index is None:
                rows[identity] = len(staged)
                staged.append(write)
                continue
            folded = _fold_any(staged[index], write)
            if folded is not None:
                staged[index] = folded
            elif index >= len(self.writes):
                # The event itself writes the row twice in a way that does not fold: send the
                # writes as queued; DynamoDB refuses the transaction and the event is parked.
                staged.append(write)
            else:
                return False
        if limit is not None and len(staged) > limit:
            return False
        self.writes, self._rows = staged, rows
        return True

    def rows(self) -> frozenset[Hashable]:
        """The identities of the rows the batch writes."""
        return frozenset(self._rows)

    def transact_items(self) -> list[TransactItem]:
        """The ``TransactWriteItems`` entries, in the order the rows were first written."""
        return [w.transact_item() if isinstance(w, RowWrite) else w for w in self.writes]


def _fold_any(earlier: QueuedWrite, later: QueuedWrite) -> RowWrite | None:
    """Fold two writes the batch found under one row identity."""
    if isinstance(earlier, RowWrite) and isinstance(later, RowWrite):
        return _fold_row(earlier, later)
    return None
