"""python-memcached (python3-memcache), text protocol.

Usage: python_memcached.py HOST:PORT. It writes expiries with %d: -1 goes
out as -1, and 4294967295 as itself (memcached reads that as -1 too)."""

import sys
import time

import memcache

from checklib import check, run

addr = sys.argv[1]
mc = memcache.Client([addr], cache_cas=True, dead_retry=0, socket_timeout=10)


def basic():
    for i, v in enumerate(["text", b"bytes\x00\xff", 42, 2**70, {"a": [1, 2]}, "", "x" * 200000]):
        check("set_get[%d]" % i, (bool(mc.set("v%d" % i, v)), mc.get("v%d" % i)), (True, v))
    check("get_missing", mc.get("missing"), None)
    check("set_multi", mc.set_multi({"m1": "1", "m2": 2}), [])
    check("get_multi", mc.get_multi(["m1", "m2", "m3"]), {"m1": "1", "m2": 2})
    check("delete_multi", (mc.delete_multi(["m1", "m2"]), mc.get_multi(["m1", "m2"])), (1, {}))
    mc.set("ar", "a")
    check("add_existing", (bool(mc.add("ar", "b")), mc.get("ar")), (False, "a"))
    check("add_new", (bool(mc.add("ar2", "b")), mc.get("ar2")), (True, "b"))
    check("replace_missing", (bool(mc.replace("ar3", "c")), mc.get("ar3")), (False, None))
    mc.set("n", "5")
    check("incr_decr", (mc.incr("n", 3), mc.decr("n", 10), mc.incr("nn")), (8, 0, None))
    mc.set("ap", "mid")
    mc.append("ap", ">")
    mc.prepend("ap", "<")
    check("append_prepend", mc.get("ap"), "<mid>")
    mc.set("d", "x")
    check("delete", (mc.delete("d"), mc.get("d")), (1, None))
    st = mc.get_stats()
    check("stats", (len(st), all(k in st[0][1] for k in ("pid", "curr_items", "get_hits"))), (1, True))


def cas():
    mc.set("c", "v1")
    check("gets", mc.gets("c"), "v1")
    check("cas_fresh", (mc.cas("c", "v2"), mc.get("c")), (True, "v2"))
    # Another writer gets in between: the unique gets() saw is stale.
    mc.gets("c")
    other = memcache.Client([addr])
    other.set("c", "other")
    check("cas_stale", (mc.cas("c", "v3"), mc.get("c")), (False, "other"))
    # A zero unique never matches (memcached's CAS uniques start at 1).
    mc.gets("c")
    mc.cas_ids[b"c"] = 0  # its keys are bytes
    check("cas_zero", (mc.cas("c", "v4"), mc.get("c")), (False, "other"))
    mc.gets("c")
    mc.delete("c")
    check("cas_deleted", (mc.cas("c", "v5"), mc.get("c")), (False, None))
    mc.cas_ids[b"cz"] = 0
    check("cas_zero_missing", (mc.cas("cz", "v"), mc.get("cz")), (False, None))


def expiry():
    check("set_ttl_-1", (mc.set("neg", "v", time=-1), mc.get("neg")), (True, None))
    check("set_ttl_4294967295", (mc.set("big", "v", time=4294967295), mc.get("big")), (True, None))
    # 2147483648 is -2^31 in 32 bits: expired at once; 4294967296 is 0.
    check("set_ttl_2147483648", (mc.set("big1", "v", time=2147483648), mc.get("big1")), (True, None))
    check("set_ttl_4294967296", (mc.set("big2", "v", time=4294967296), mc.get("big2")), (True, "v"))
    check("set_multi_ttl_-1", (mc.set_multi({"nm1": 1, "nm2": 2}, time=-1), mc.get_multi(["nm1", "nm2"])), ([], {}))
    mc.set("t", "v")
    check("touch_ttl_-1", (mc.touch("t", -1), mc.get("t")), (1, None))
    mc.set("t2", "v")
    check("touch_ttl_4294967295", (mc.touch("t2", 4294967295), mc.get("t2")), (1, None))
    mc.set("t3", "v", time=100)
    check("touch_extends", (mc.touch("t3", 3600), mc.get("t3")), (1, "v"))
    check("ttl_absolute_future", (mc.set("ta", "v", time=int(time.time()) + 3600), mc.get("ta")), (True, "v"))
    check("ttl_absolute_past", (mc.set("tp", "v", time=int(time.time()) - 3600), mc.get("tp")), (True, None))
    for i in range(20):
        mc.set("after%d" % i, i)
    check("in_step_after_ttls", mc.get_multi(["after%d" % i for i in range(20)]), {"after%d" % i: i for i in range(20)})


for name, fn in [("basic", basic), ("cas", cas), ("expiry", expiry)]:
    run(name, fn)
mc.set("flushed", "v")
check("flush_all", (mc.flush_all(), mc.get("flushed")), (None, None))
