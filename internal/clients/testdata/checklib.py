"""Shared by the Python client scripts: one "ok NAME" or "FAIL NAME: ..."
line per check on stdout (see ../doc.go)."""

import sys
import traceback


def check(name, got, want):
    """Passes when got == want."""
    if got == want:
        print("ok", name, flush=True)
    else:
        print("FAIL %s: got %.300r, want %.300r" % (name, got, want), flush=True)


def run(name, fn):
    """Runs fn, which makes its own check() calls; an exception fails name."""
    try:
        fn()
    except Exception as e:  # the client raised: report it, go on
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
        traceback.print_exc(file=sys.stderr)


def raises(fn):
    """The name of the exception fn raises, or None (for checks whose
    outcome is an exception)."""
    try:
        fn()
    except Exception as e:
        return type(e).__name__
    return None


def outcome(fn):
    """What fn returns, or the name of the exception it raises."""
    try:
        return fn()
    except Exception as e:
        return type(e).__name__
