"""Permissions declared on every field; a field without one is refused when the schema is built.

``requires(...)`` is the only way to make a field reachable. The check is a set lookup on the
principal the HTTP layer authenticated: no database query happens in a permission.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from server.auth.principal import Role

ALL_ROLES = frozenset(Role)


class RoleRequired(BasePermission):
    """Allows the field to the listed roles only."""

    message = "not permitted"
    error_extensions = {"code": "FORBIDDEN"}

    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise GraphQLError("authentication required", extensions={"code": "UNAUTHENTICATED"})
        return principal.role in self.roles

    def on_unauthorized(self) -> None:
        raise GraphQLError(self.message, extensions={"code": "FORBIDDEN"})


def requires(*roles: Role) -> list[FieldExtension]:
    """The permission of one field, e.g. ``extensions=requires(Role.ADMIN)``."""
    if not roles:
        raise ValueError("a permission names at least one role")
    return [
        PermissionExtension(permissions=[RoleRequired(frozenset(roles))], fail_silently=False, use_directives=False)
    ]


def any_role() -> list[FieldExtension]:
    """For fields every authenticated caller may read (their own identity, for instance)."""
    return requires(*ALL_ROLES)


def declared_roles(field_extensions: list[FieldExtension]) -> frozenset[Role] | None:
    """The roles a field allows, or None when it declares no permission (used by the schema guard)."""
    for extension in field_extensions:
        if isinstance(extension, PermissionExtension):
            for permission in extension.permissions:
                if isinstance(permission, RoleRequired):
                    return permission.roles
    return None


@cache
def fields_allowed_rule(role: Role) -> type[ValidationRule]:
    """A validation rule refusing fields ``role`` may not read, with FORBIDDEN: for checking a
    document once, ahead of time (registration), not in place of the check on each field."""

    class FieldsAllowedToRole(ValidationRule):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            field = self.context.get_field_def()
            definition = field.extensions.get("strawberry-definition") if field is not None else None
            roles = declared_roles(definition.extensions) if definition is not None else None
            if roles is not None and role not in roles:
                message = f"field '{node.name.value}' is not permitted to this role"
                self.report_error(GraphQLError(message, node, extensions={"code": "FORBIDDEN"}))

    return FieldsAllowedToRole
