"""Each role against each root field, over HTTP: allowed roles get data, the others FORBIDDEN."""

from __future__ import annotations

import pytest

from schema import build_schema
from server.auth.principal import Role
from server.settings import Settings
from tests.support.live_server import LiveServer

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
COMPLIANCE = frozenset({Role.COMPLIANCE})
BUILD_READERS = frozenset({Role.ADMIN, Role.ANALYST})
SENDERS = frozenset({Role.PARTNER, Role.ADMIN})
PROFILE_READERS = frozenset({Role.COMPLIANCE, Role.ADMIN})
ANALYSTS = frozenset({Role.ANALYST, Role.ADMIN})
PARTNERS = frozenset({Role.PARTNER})
MARKETERS = frozenset({Role.MARKETER})
SEGMENT_READERS = frozenset({Role.MARKETER, Role.ADMIN})

# The promise, written out: which role may call which root field.
EXPECTED: dict[str, tuple[frozenset[Role], str]] = {
    "Query.viewer": (ALL, "{ viewer { role } }"),
    "Query.partners": (ADMIN, "{ partners { id } }"),
    "Query.apiKeys": (ADMIN, "{ apiKeys { keyId } }"),
    "Query.auditLog": (COMPLIANCE, "{ auditLog(first: 1) { seq } }"),
    "Query.verifyAuditLog": (COMPLIANCE, "{ verifyAuditLog { intact } }"),
    "Query.auditEntries": (
        COMPLIANCE,
        '{ auditEntries(subject: {kind: EMAIL, value: "probe@example.org"}, first: 1) { pageInfo { hasNextPage } } }',
    ),
    "Query.dataQuality": (ANALYSTS, "{ dataQuality { source } }"),
    "Query.analyticsSegments": (ANALYSTS, "{ analyticsSegments { name } }"),
    "Query.analyticsBudget": (ANALYSTS | MARKETERS, "{ analyticsBudget { releasesLeft } }"),
    "Query.analyticsCost": (ANALYSTS | MARKETERS, "{ analyticsCost(kind: TREND, days: 7) { noiseScale } }"),
    "Query.segmentSize": (ANALYSTS, '{ segmentSize(segment: "none") { errors { code } } }'),
    "Query.segmentSizeTrend": (ANALYSTS, '{ segmentSizeTrend(segment: "none", days: 3) { errors { code } } }'),
    "Query.consent": (COMPLIANCE, '{ consent(identifier: {kind: EMAIL, value: "probe@example.org"}) { found } }'),
    "Query.profile": (
        PROFILE_READERS,
        '{ profile(identifier: {kind: EMAIL, value: "probe@example.org"}) { asOf } }',
    ),
    "Mutation.recordConsent": (
        COMPLIANCE,
        'mutation { recordConsent(input: {identifier: {kind: EMAIL, value: "probe@example.org"}, purpose: ANALYTICS,'
        ' granted: true, source: "test", policyVersion: "v1"}) { recorded } }',
    ),
    "Mutation.recordPrivacySignal": (
        COMPLIANCE,
        'mutation { recordPrivacySignal(input: {identifier: {kind: EMAIL, value: "probe@example.org"},'
        ' signal: GLOBAL_PRIVACY_CONTROL, source: "test"}) { recorded } }',
    ),
    "Query.profileBuild": (BUILD_READERS, "{ profileBuild(id: 0) { status } }"),
    "Query.profileBuilds": (BUILD_READERS, "{ profileBuilds(first: 1) { status } }"),
    # Out of range: refused before any build starts on the shared server.
    "Mutation.startProfileBuild": (ADMIN, "mutation { startProfileBuild(partitions: 0) { errors { code } } }"),
    "Mutation.ingestEvents": (SENDERS, "mutation { ingestEvents(batch: {events: []}) { received } }"),
    "Mutation.upsertAttributes": (ADMIN, "mutation { upsertAttributes(batch: {records: []}) { received } }"),
    "Mutation.createPartner": (
        ADMIN,
        'mutation { createPartner(name: "!", purposes: [ANALYTICS]) { errors { code } } }',
    ),
    "Mutation.createApiKey": (ADMIN, 'mutation { createApiKey(role: ANALYST, label: "") { errors { code } } }'),
    "Mutation.revokeApiKey": (ADMIN, 'mutation { revokeApiKey(keyId: "0000000000000000") { revoked } }'),
    # Requests: ids that exist nowhere, so a permitted role gets a domain error and changes nothing.
    "Query.dataSubjectRequest": (COMPLIANCE, "{ dataSubjectRequest(id: 0) { id } }"),
    "Query.dataSubjectRequests": (COMPLIANCE, "{ dataSubjectRequests(first: 1) { id } }"),
    "Query.erasureReceipts": (COMPLIANCE, "{ erasureReceipts(requestId: 0) { id } }"),
    "Mutation.fileRequest": (
        COMPLIANCE,
        'mutation { fileRequest(input: {kind: ACCESS, identifier: {kind: EMAIL, value: "not-an-email"}})'
        " { errors { code } } }",
    ),
    "Mutation.verifyRequest": (
        COMPLIANCE,
        'mutation { verifyRequest(id: 0, method: "m", reference: "r") { errors { code } } }',
    ),
    "Mutation.rejectRequest": (COMPLIANCE, "mutation { rejectRequest(id: 0, reason: DUPLICATE) { errors { code } } }"),
    "Mutation.executeRequest": (COMPLIANCE, "mutation { executeRequest(id: 0) { errors { code } } }"),
    "Mutation.exportRequest": (COMPLIANCE, "mutation { exportRequest(id: 0) { errors { code } } }"),
    "Mutation.rectifyRequest": (
        COMPLIANCE,
        'mutation { rectifyRequest(id: 0, changes: [{field: "first_name", value: "x"}]) { errors { code } } }',
    ),
    "Mutation.liftRestriction": (COMPLIANCE, "mutation { liftRestriction(id: 0) { errors { code } } }"),
    # Partner reads: a segment nobody granted, an identifier nobody sent.
    "Query.grantedSegments": (PARTNERS, "{ grantedSegments { name } }"),
    "Query.visitor": (PARTNERS, '{ visitor(identifier: {kind: DEVICE_ID, value: "probe-device"}) { asOf } }'),
    "Query.segmentMembers": (PARTNERS, '{ segmentMembers(segment: "probe", first: 1) { errors { code } } }'),
    "Query.segmentChanges": (PARTNERS, "{ segmentChanges(first: 1) { errors { code } } }"),
    "Query.trustedDocuments": (ADMIN, "{ trustedDocuments(first: 1) { id } }"),
    "Mutation.registerDocuments": (SENDERS, "mutation { registerDocuments(documents: []) { ids } }"),
    # Segments: definitions and health for marketers (and admins reading), never members.
    # Two names that are no segment: refused as UNKNOWN_SEGMENT before anything is read or spent.
    "Query.segmentOverlap": (
        ANALYSTS,
        '{ segmentOverlap(segments: ["probe-a", "probe-b"]) { errors { code } } }',
    ),
    "Query.segments": (SEGMENT_READERS, "{ segments { name } }"),
    "Query.segment": (SEGMENT_READERS, '{ segment(name: "probe") { name } }'),
    "Query.segmentTemplates": (SEGMENT_READERS, "{ segmentTemplates { name } }"),
    "Query.segmentGrants": (SEGMENT_READERS, "{ segmentGrants { id } }"),
    "Mutation.createSegment": (
        MARKETERS,
        'mutation { createSegment(name: "probe-x", ruleText: "no_such_feature > 1") { errors { code } } }',
    ),
    "Mutation.updateSegment": (MARKETERS, 'mutation { updateSegment(name: "probe") { errors { code } } }'),
    "Mutation.deleteSegment": (MARKETERS, 'mutation { deleteSegment(name: "probe") { deleted } }'),
    "Mutation.previewSegment": (
        MARKETERS,
        'mutation { previewSegment(ruleText: "no_such_feature > 1") { errors { code } } }',
    ),
    "Mutation.grantSegment": (
        MARKETERS,
        'mutation { grantSegment(segment: "probe", partner: "probe", purpose: ANALYTICS) { errors { code } } }',
    ),
    "Mutation.revokeGrant": (MARKETERS, "mutation { revokeGrant(id: 0) { errors { code } } }"),
    # Distributions: analysts (and admins); a segment nobody has, so the answer is a refusal.
    "Query.featureDistribution": (
        ANALYSTS,
        '{ featureDistribution(feature: "lifecycle", segment: "probe") { errors { code } } }',
    ),
    "Query.featureQuantiles": (
        ANALYSTS,
        '{ featureQuantiles(feature: "events_lifetime", quantiles: [0.5], segment: "probe") { errors { code } } }',
    ),
    "Query.interestReach": (
        ANALYSTS,
        '{ interestReach(topics: ["travel"], minScore: 0.5, segment: "probe") { errors { code } } }',
    ),
    "Query.profileMix": (
        ANALYSTS,
        '{ profileMix(dimension: LIFECYCLE, by: REGION, segment: "probe") { errors { code } } }',
    ),
}


def root_fields() -> dict[str, frozenset[str] | None]:
    return {f"{type_name}.{field}": roles for type_name, field, roles in field_permissions_of_roots()}


def field_permissions_of_roots() -> list[tuple[str, str, frozenset[str] | None]]:
    from schema import field_permissions

    return [row for row in field_permissions(build_schema(Settings())) if row[0] in {"Query", "Mutation"}]


def test_matrix_covers_every_root_field_and_matches_declarations() -> None:
    declared = root_fields()
    assert set(EXPECTED) == set(declared), "add new root fields to EXPECTED"
    for name, (roles, _query) in EXPECTED.items():
        assert declared[name] == frozenset(role.value for role in roles), name


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
def test_each_role_against_each_root_field(live_server: LiveServer, role: Role) -> None:
    token = live_server.issue_key(role)
    for name, (allowed, query) in EXPECTED.items():
        body = live_server.graphql(query, token=token).json()
        codes = [error["extensions"]["code"] for error in body.get("errors", [])]
        if role in allowed:
            assert "FORBIDDEN" not in codes, (name, body)
            assert body["data"] is not None, (name, body)
        else:
            assert codes == ["FORBIDDEN"], (name, body)
            # A refused non-null field nulls the whole answer; a refused nullable one (profile) is null.
            assert body["data"] is None or set(body["data"].values()) == {None}, name


@pytest.mark.parametrize(
    "token", [None, "", "aud_0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not-a-key", "Bearer"]
)
def test_missing_or_wrong_key_gets_unauthenticated_and_no_hint(live_server: LiveServer, token: str | None) -> None:
    for name, (_roles, query) in EXPECTED.items():
        response = live_server.graphql(query, token=token)
        assert response.status_code == 401, name
        assert response.json() == {
            "errors": [{"message": "authentication required", "extensions": {"code": "UNAUTHENTICATED"}}]
        }
    unknown = live_server.graphql("{ noSuchField }", token=token)
    assert unknown.status_code == 401, "an unknown field must look exactly like a known one"


def test_revoked_key_is_refused_at_once(live_server: LiveServer) -> None:
    admin = live_server.issue_key(Role.ADMIN)
    victim = live_server.issue_key(Role.ANALYST)
    assert live_server.graphql("{ viewer { role } }", token=victim).status_code == 200
    key_id = victim.split("_", 1)[1].split(".", 1)[0]
    revoked = live_server.graphql(f'mutation {{ revokeApiKey(keyId: "{key_id}") {{ revoked }} }}', token=admin)
    assert revoked.json()["data"]["revokeApiKey"]["revoked"] is True
    assert live_server.graphql("{ viewer { role } }", token=victim).status_code == 401


def test_key_with_right_id_but_wrong_secret_is_refused(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert live_server.graphql("{ viewer { role } }", token=forged).status_code == 401


def test_key_labels_cannot_carry_personal_data(live_server: LiveServer) -> None:
    admin = live_server.issue_key(Role.ADMIN)
    for label in ("ana.lopez@example.org", "call +49 151 1234567", "x" * 65, ""):
        body = live_server.graphql(
            "mutation($l: String!) { createApiKey(role: ANALYST, label: $l) { token errors { code } } }",
            token=admin,
            variables={"l": label},
        ).json()
        assert body["data"]["createApiKey"] == {"token": None, "errors": [{"code": "INVALID_LABEL"}]}, label
