"""One error hierarchy, so callers catch ``CiliumLabsError`` and the CLI maps each kind to an exit code.

User mistakes (bad spec, missing tool, bad input file) are ``UsageError`` subclasses: the CLI prints one line
and exits 2. Everything that went wrong while doing real work is exit 1.
"""

from __future__ import annotations


class CiliumLabsError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} (fix: {fix})")


class UsageError(CiliumLabsError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = 2


class SpecError(UsageError):
    """A lab spec field is invalid; ``field`` names it in dotted form (``gcp.project``)."""

    def __init__(self, field: str, message: str, *, fix: str | None = None) -> None:
        self.field = field
        super().__init__(f"spec field '{field}': {message}", fix=fix)


class ToolNotFoundError(UsageError):
    """A required external program is not on PATH."""

    def __init__(self, tool: str, install_hint: str) -> None:
        self.tool = tool
        super().__init__(f"'{tool}' was not found on PATH", fix=install_hint)


class CommandError(CiliumLabsError):
    """An external command exited non-zero; stderr is kept for the message and for callers to match on."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
        super().__init__(f"{argv[0]} {' '.join(argv[1:3])} failed: {tail}")


class CommandTimeout(CiliumLabsError):
    """An external command did not finish within its timeout and was killed."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.argv = argv
        self.timeout = timeout
        super().__init__(f"{argv[0]} {' '.join(argv[1:3])} timed out after {timeout:g}s")


class PreflightError(UsageError):
    """The machine cannot host the lab as specified; nothing was created."""


class BackendError(CiliumLabsError):
    """A backend failed to create, inspect or destroy its nodes."""


class LabStateError(UsageError):
    """The lab state folder disagrees with the request (lab exists already, or no such lab)."""


class ClusterError(CiliumLabsError):
    """The Kubernetes API could not be reached or answered with an error."""

    def __init__(self, message: str, *, fix: str | None = None, status: int | None = None) -> None:
        super().__init__(message, fix=fix)
        self.status = status
        """The API's HTTP status; 0 when no answer came (connection, TLS, timeout); None when not known."""


class ParseError(UsageError):
    """Text handed to a parser is not the output it claims to be."""


class NotBuiltError(CiliumLabsError):
    """A capability named by the CLI is not built yet; said plainly instead of pretending to succeed."""


class CapabilityMissing(CiliumLabsError):
    """The backend lacks an optional capability (``node_exec``, ``capture``, ``load_image``) a step needs."""


class LabBusyError(LabStateError):
    """Another process holds the lab (it is creating, changing or destroying it); nothing was done here."""
