"""The limits count what they counted before, for ordinary documents, at the cost of the written text;
graphql-core's overlap rule stops at its budget with a code."""

from __future__ import annotations

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate
from strawberry.extensions.max_aliases import count_fields_with_alias
from strawberry.extensions.query_depth_limiter import determine_depth, get_fragments

from schema import build_schema
from schema.document_shape import measure_document
from schema.limits import OVERLAP_BUDGET, DocumentLimits, overlap_rule
from server.settings import Settings

ORDINARY = [
    "{ viewer { role } }",
    "{ a: viewer { role } b: viewer { k: keyId } }",
    "{ auditLog { seq details { key value } } verifyAuditLog { intact } }",
    "query { ...A } fragment A on Query { viewer { role } auditLog { details { key } } }",
    "query Q { ...A b: partners { id } } fragment A on Query { a: viewer { ...V } } fragment V on Viewer { r: role }",
    "{ ... on Query { x: viewer { role } } auditLog { ... { details { key } } } }",
    "{ __schema { types { name fields { name type { name ofType { name } } } } } viewer { role } }",
    "query A { viewer { role } } query B { auditLog { details { key } } p: partners { id } }",
    "query { ...A ...B } fragment A on Query { viewer { role } } fragment B on Query { ...A partners { id } }",
]


@pytest.mark.parametrize("document", ORDINARY)
def test_depth_and_aliases_are_strawberrys_for_ordinary_documents(document: str) -> None:
    parsed = parse(document)
    fragments = get_fragments(parsed.definitions)
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    shape = measure_document(parsed)

    def strawberry_depth(operation: OperationDefinitionNode) -> int:
        return determine_depth(operation, fragments, 0, 1000, None, "op", None)  # type: ignore[arg-type]

    assert [op.depth for op in shape.operations] == [strawberry_depth(op) for op in operations]
    assert shape.aliases == sum(count_fields_with_alias(op, fragments) for op in operations)


def test_root_fields_count_through_fragments_and_inline_fragments_but_not_typename() -> None:
    shape = measure_document(
        parse(
            "query { __typename viewer { role } ... on Query { partners { id } } ...A }"
            " fragment A on Query { apiKeys { keyId } auditLog { seq } }"
        )
    )
    assert [op.root_fields for op in shape.operations] == [4]


def test_a_fragment_counts_each_time_it_is_spread() -> None:
    shape = measure_document(parse("query { ...A ...A } fragment A on Query { a: viewer { role } }"))
    assert (shape.operations[0].root_fields, shape.aliases) == (2, 2)


def test_unknown_and_cyclic_spreads_count_as_empty() -> None:
    document = parse(
        "query { ...Missing ...A } fragment A on Query { viewer { ...B } } fragment B on Viewer { role ...A }"
    )
    shape = measure_document(document)
    assert shape.operations[0].root_fields == 1
    assert shape.operations[0].depth >= 1


def test_thirty_levels_of_fan_out_are_measured_from_the_text() -> None:
    levels = 30
    fragments = ["fragment F0 on Query { a: viewer { role } }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    document = parse(f"query {{ ...F{levels} }} " + " ".join(fragments))
    shape = measure_document(document)  # inlined, 2**30 spreads would take hours
    assert (shape.operations[0].root_fields, shape.aliases, shape.operations[0].depth) == (2**30, 2**30, 1)


def test_a_chain_longer_than_the_recursion_limit_is_measured() -> None:
    chain = 1500
    fragments = ["fragment F0 on Query { viewer { role } }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} }}" for i in range(1, chain + 1)]
    document = parse(f"query {{ ...F{chain} }} " + " ".join(fragments))
    assert sum(isinstance(d, FragmentDefinitionNode) for d in document.definitions) == chain + 1
    assert measure_document(document).operations[0].root_fields == 1


def overlap_codes(document: str, budget: int) -> list[str | None]:
    schema = build_schema(Settings())._schema
    errors = validate(schema, parse(document), [overlap_rule(budget)])
    return [(error.extensions or {}).get("code") for error in errors]


def test_the_overlap_rule_past_its_budget_refuses_with_a_code() -> None:
    fragments = " ".join(f"fragment D{i} on AuditEntry {{ details {{ key }} }}" for i in range(200))
    document = "{ auditLog { " + " ".join(f"...D{i}" for i in range(200)) + " } } " + fragments
    assert overlap_codes(document, OVERLAP_BUDGET) == ["QUERY_TOO_COMPLEX"]


def test_the_overlap_rule_within_its_budget_keeps_graphql_cores_answers() -> None:
    conflicts = " ".join(f"x{i}: viewer {{ role }} x{i}: partners {{ id }}" for i in range(120))
    codes = overlap_codes("{ " + conflicts + " }", OVERLAP_BUDGET)
    assert len(codes) == 101  # graphql-core's error limit, then its own abort: not a budget refusal
    assert "QUERY_TOO_COMPLEX" not in codes


def test_ordinary_documents_are_not_refused_by_the_limits() -> None:
    limits = DocumentLimits(max_depth=10, max_aliases=15, max_root_fields=10)
    assert [limits.refusals(parse(document)) for document in ORDINARY] == [[] for _ in ORDINARY]
