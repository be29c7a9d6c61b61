"""Run train.py and SIGKILL it at a chosen write, for tests/test_faults.py.

    python tests/fault_points.py PATTERN WHEN N train.py ARGS...

Every file a later run trusts is published by a rename: utils.atomic writes a temporary, then `os.replace`s
it over the final name; a file created once (run.json, a fold claim: training.claims) is `os.link`ed into
place. This wrapper patches both so that the N-th one whose destination matches the glob PATTERN kills the
process with SIGKILL, `before` it (a complete temporary left beside an absent or older final file) or
`after` it (the file in place, everything after it never written). SIGKILL cannot be
caught: no `finally`, no atexit, no signal handler runs, as when the machine loses power or the OOM killer
strikes. A module of its own so that the child process can run it by path.
"""

from __future__ import annotations

import fnmatch
import os
import runpy
import signal
import sys


def main() -> None:
    pattern, when, nth, script, *args = sys.argv[1:]
    if when not in ("before", "after"):
        raise SystemExit(f"WHEN must be before or after, not {when}")
    seen = 0

    def killing(real):
        def publish(src, dst, *a, **kw):
            nonlocal seen
            hit = fnmatch.fnmatch(os.fspath(dst), pattern)
            seen += hit
            if hit and seen == int(nth) and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(src, dst, *a, **kw)
            if hit and seen == int(nth) and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return publish

    os.replace, os.link = killing(os.replace), killing(os.link)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
