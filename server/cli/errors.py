class CliError(Exception):
    """A command cannot proceed; the message is one actionable line without secrets or PII."""
