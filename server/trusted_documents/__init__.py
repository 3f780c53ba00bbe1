"""GraphQL operations registered once by their sha256 and run by that id afterwards."""
