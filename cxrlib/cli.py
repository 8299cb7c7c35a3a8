"""Command-line glue: user errors end in one clear line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

#: Exceptions a user can cause (bad path, bad value, bad file). Anything else is a bug
#: and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
    ValueError,
    KeyError,
)


def run_cli(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Call ``main(argv)``; a user error prints ``error: <message>`` and returns 2 (Ctrl-C: 130)."""
    try:
        return int(main(argv) or 0)
    except USER_ERRORS as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def user_message(exc: BaseException) -> str:
    """One line for a user error: the project's own message, or for an operating-system error
    raised deeper down (``[Errno 13] Permission denied: 'x'``) the path and what to do."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename is not None:
        path = exc.filename
        if isinstance(exc, PermissionError):
            return f"permission denied: {path}; check its permissions or choose another path"
        if isinstance(exc, IsADirectoryError):
            return f"{path} is a folder where a file was expected"
        if isinstance(exc, NotADirectoryError):
            return f"{path}: a file stands where a folder was expected"
        if isinstance(exc, FileNotFoundError):
            return f"file or folder not found: {path}"
        return f"{exc.strerror or exc}: {path}"
    return str(exc)
