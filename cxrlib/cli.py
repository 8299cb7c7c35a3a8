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
    PermissionError,
    FileExistsError,
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
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
