"""The ``majordomo-log`` command: parse (``cli/parser.py``), fill in the stores not
given (``cli/args.py``, by the rule of ``stores/defaults.py``), run the command
(``cli/commands.py`` and the modules it names).

Errors a user can fix (a bad URL, a missing database, a bad argument) print one line
and exit 2; a reader that closes the pipe early ends the command quietly with status 141
(``cli/pipes.py``). The read commands (report, tail, show, prices, budgets status, spool
status|inspect, and ui: the dashboard, ``cli/ui.py``) never write: databases are opened
read-only and never migrated, body folders never created. ``reprice`` writes only to a
log that exists (its table is there), after migrating it.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Sequence

from .._exceptions import MajordomoLogError
from .args import UsageError, check_window, resolve_stores
from .parser import build_parser
from .pipes import stdout_closed

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve_stores(args)
        check_window(args)
        result = args.run(args)  # a coroutine, or a command that blocks on its own (ui)
        code: int = asyncio.run(result) if inspect.iscoroutine(result) else result
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's last flush
        return code
    except BrokenPipeError:  # an OSError: the reader stopped reading, which is no error
        return stdout_closed()
    except (UsageError, MajordomoLogError, ImportError, OSError, ValueError) as exc:
        print(f"majordomo-log: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
