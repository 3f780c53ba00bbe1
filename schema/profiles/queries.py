from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.consent.types import IdentifierInput
from schema.context import Context
from schema.profiles.convert import to_profile
from schema.profiles.types import PROFILE_READERS, Profile
from server.profiles import service
from server.taxonomy.taxonomy import taxonomy_for


@strawberry.type
class ProfileQueries:
    @strawberry.field(
        extensions=PROFILE_READERS,
        description="The profile of the person behind an identifier, as of now; null when there is none to show "
        "(unknown, no profiling consent, or nothing recorded: the answer does not say which). Audited.",
    )
    async def profile(self, info: Info[Context, None], identifier: IdentifierInput) -> Profile | None:
        runtime = info.context.runtime
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        found = await info.context.run(
            lambda unit: service.profile_of(
                unit, identifier.to_domain(), config=unit.profiles, taxonomy=taxonomy, now=unit.clock()
            )
        )
        return None if found is None else to_profile(found)
