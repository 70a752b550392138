"""pymemcache (python3-pymemcache), text protocol.

Usage: pymemcache_client.py HOST:PORT. It writes expiries and CAS uniques
as given: an expiry of -1 goes out as -1, 4294967295 as itself (memcached
reads both as -1: expired at once), a CAS unique of 0 as 0 (never matches)."""

import sys
import time

from pymemcache import serde
from pymemcache.client.base import Client

from checklib import check, outcome, run

host, port = sys.argv[1].rsplit(":", 1)


def client():
    return Client((host, int(port)), serde=serde.pickle_serde, default_noreply=False,
                  connect_timeout=5, timeout=10)


mc = client()


def basic():
    for i, v in enumerate(["text", b"bytes\x00\xff", 42, 2**70, {"a": [1, 2]}, "", "x" * 200000]):
        check("set_get[%d]" % i, (mc.set("v%d" % i, v), mc.get("v%d" % i)), (True, v))
    check("get_missing", mc.get("missing"), None)
    check("set_many", mc.set_many({"m1": "1", "m2": 2}), [])
    check("get_many", mc.get_many(["m1", "m2", "m3"]), {"m1": "1", "m2": 2})
    check("delete_many", (mc.delete_many(["m1", "m2"]), mc.get_many(["m1", "m2"])), (True, {}))
    mc.set("ar", "a")
    check("add_existing", (mc.add("ar", "b"), mc.get("ar")), (False, "a"))
    check("add_new", (mc.add("ar2", "b"), mc.get("ar2")), (True, "b"))
    check("replace_missing", (mc.replace("ar3", "c"), mc.get("ar3")), (False, None))
    mc.set("n", b"5", flags=0)
    check("incr_decr", (mc.incr("n", 3), mc.decr("n", 10), mc.incr("nn", 1)), (8, 0, None))
    mc.set("ap", b"mid", flags=0)
    mc.append("ap", b">")
    mc.prepend("ap", b"<")
    check("append_prepend", mc.get("ap"), b"<mid>")
    mc.set("d", "x")
    check("delete", (mc.delete("d"), mc.get("d"), mc.delete("d")), (True, None, False))
    st = mc.stats()
    check("stats", all(k in st for k in (b"pid", b"curr_items", b"get_hits")), True)
    check("version", len(mc.version()) > 0, True)
    check("gets_many", sorted(mc.gets_many(["ar", "ar2"])), ["ar", "ar2"])


def cas():
    mc.set("c", "v1")
    v, unique = mc.gets("c")
    check("gets", (v, int(unique) > 0), ("v1", True))
    check("cas_fresh", (mc.cas("c", "v2", unique), mc.get("c")), (True, "v2"))
    check("cas_stale", (mc.cas("c", "v3", unique), mc.get("c")), (False, "v2"))
    # memcached's CAS uniques start at 1: 0 never matches.
    check("cas_zero", (mc.cas("c", "v4", 0), mc.get("c")), (False, "v2"))
    check("cas_zero_missing", (mc.cas("cz", "v", 0), mc.get("cz")), (None, None))
    check("cas_missing", (mc.cas("cm", "v", unique), mc.get("cm")), (None, None))
    _, unique = mc.gets("c")
    check("cas_after_zero", (mc.cas("c", "v5", unique), mc.get("c")), (True, "v5"))


def expiry():
    check("set_ttl_-1", (mc.set("neg", "v", expire=-1), mc.get("neg")), (True, None))
    check("set_ttl_4294967295", (outcome(lambda: mc.set("big", "v", expire=4294967295)), mc.get("big")), (True, None))
    check("add_ttl_4294967295", (outcome(lambda: mc.add("biga", "v", expire=4294967295)), mc.get("biga")), (True, None))
    check("set_ttl_4294967296", (outcome(lambda: mc.set("big2", "v", expire=4294967296)), mc.get("big2")), (True, "v"))
    check("set_many_ttl_-1", (mc.set_many({"nm1": 1, "nm2": 2}, expire=-1), mc.get_many(["nm1", "nm2"])), ([], {}))
    mc.set("t", "v")
    check("touch_ttl_-1", (mc.touch("t", -1), mc.get("t")), (True, None))
    mc.set("t2", "v")
    check("touch_ttl_4294967295", (outcome(lambda: mc.touch("t2", 4294967295)), mc.get("t2")), (True, None))
    mc.set("t3", "v", expire=100)
    check("touch_extends", (mc.touch("t3", 3600), mc.get("t3")), (True, "v"))
    check("touch_missing", mc.touch("t4", 3600), False)
    check("ttl_absolute_future", (mc.set("ta", "v", expire=int(time.time()) + 3600), mc.get("ta")), (True, "v"))
    check("ttl_absolute_past", (mc.set("tp", "v", expire=int(time.time()) - 3600), mc.get("tp")), (True, None))
    for i in range(20):
        mc.set("after%d" % i, i)
    check("in_step_after_ttls", mc.get_many(["after%d" % i for i in range(20)]), {"after%d" % i: i for i in range(20)})


def noreply():
    q = Client((host, int(port)), serde=serde.pickle_serde, default_noreply=True, timeout=10)
    q.set("nr1", "a")
    q.set("nr2", "b", expire=-1)
    q.add("nr1", "x")
    q.delete("nr3")
    check("noreply_then_get", q.get_many(["nr1", "nr2"]), {"nr1": "a"})


for name, fn in [("basic", basic), ("cas", cas), ("expiry", expiry), ("noreply", noreply)]:
    run(name, fn)
mc.set("flushed", "v")
check("flush_all", (mc.flush_all(), mc.get("flushed")), (True, None))
