"""pylibmc (python3-pylibmc, libmemcached) in text and binary mode.

Usage: pylibmc_client.py HOST:PORT. libmemcached sends a negative expiry as its
32-bit unsigned value (-1 as 4294967295): memcached's text protocol reads it
back as -1, so the item expires at once; its binary protocol takes
0xffffffff as an absolute time decades ahead, so the item stays."""

import sys
import time

import pylibmc

from checklib import check, outcome, raises, run

addr = sys.argv[1]


def checks(mode):
    binary = mode == "binary"
    mc = pylibmc.Client([addr], binary=binary, behaviors={"cas": True})
    p = mode + "_"  # keys of the two modes stay apart

    def set_get():
        for i, v in enumerate(["text", b"bytes\x00\xff", 42, 2**70, {"a": [1, 2]}, "", "x" * 200000]):
            key = p + "v%d" % i
            check(mode + "/set_get[%d]" % i, (mc.set(key, v), mc.get(key)), (True, v))
        check(mode + "/get_missing", mc.get(p + "missing"), None)

    def multi():
        check(mode + "/set_multi", mc.set_multi({p + "m1": "1", p + "m2": 2}), [])
        check(mode + "/get_multi", mc.get_multi([p + "m1", p + "m2", p + "m3"]), {p + "m1": "1", p + "m2": 2})
        check(mode + "/delete_multi", (mc.delete_multi([p + "m1", p + "m2"]), mc.get_multi([p + "m1", p + "m2"])), (True, {}))

    def add_replace():
        mc.set(p + "ar", "a")
        check(mode + "/add_existing", (mc.add(p + "ar", "b"), mc.get(p + "ar")), (False, "a"))
        check(mode + "/add_new", (mc.add(p + "ar2", "b"), mc.get(p + "ar2")), (True, "b"))
        check(mode + "/replace_existing", (mc.replace(p + "ar", "c"), mc.get(p + "ar")), (True, "c"))
        check(mode + "/replace_missing", (outcome(lambda: mc.replace(p + "ar3", "c")), mc.get(p + "ar3")),
              ("NotFound" if binary else False, None))

    def incr_decr():
        mc.set(p + "n", "5")
        check(mode + "/incr", mc.incr(p + "n", 3), 8)
        check(mode + "/decr_floor", mc.decr(p + "n", 10), 0)
        check(mode + "/incr_missing", raises(lambda: mc.incr(p + "nn", 1)), "NotFound")
        mc.set(p + "n64", str(2**64 - 1))
        check(mode + "/incr_wraps", mc.incr(p + "n64", 2), 1)

    def append_prepend():
        mc.set(p + "ap", "mid")
        mc.append(p + "ap", ">")
        mc.prepend(p + "ap", "<")
        check(mode + "/append_prepend", mc.get(p + "ap"), "<mid>")

    def delete():
        mc.set(p + "d", "x")
        check(mode + "/delete", (mc.delete(p + "d"), mc.get(p + "d"), mc.delete(p + "d")), (True, None, False))

    def cas():
        mc.set(p + "c", "v1")
        v, unique = mc.gets(p + "c")
        check(mode + "/gets", (v, unique > 0), ("v1", True))
        check(mode + "/cas_fresh", (mc.cas(p + "c", "v2", unique), mc.get(p + "c")), (True, "v2"))
        # The unique changed with that write: the old one is stale now.
        check(mode + "/cas_stale", (mc.cas(p + "c", "v3", unique), mc.get(p + "c")), (False, "v2"))
        mc.set(p + "c", "v4")
        v, unique2 = mc.gets(p + "c")
        check(mode + "/cas_unique_changes", unique2 != unique, True)
        check(mode + "/cas_missing", (raises(lambda: mc.cas(p + "cm", "x", unique2)), mc.get(p + "cm")), ("NotFound", None))
        if binary:
            # libmemcached sends a binary CAS as REPLACE with the unique in
            # the header; a zero unique means "no compare" there (memcached's
            # binary protocol). Text mode cannot send 0 (libmemcached leaves
            # the unique off and the line is malformed).
            check(mode + "/cas_zero_replaces", (mc.cas(p + "c", "v5", 0), mc.get(p + "c")), (True, "v5"))
            check(mode + "/cas_zero_missing", (raises(lambda: mc.cas(p + "cz", "x", 0)), mc.get(p + "cz")), ("NotFound", None))

    def negative_ttl():
        # Text: sent as 4294967295, read back as -1: expired at once.
        # Binary: 0xffffffff is an absolute time decades ahead.
        want = "v" if binary else None
        check(mode + "/set_ttl_-1", (mc.set(p + "neg", "v", time=-1), mc.get(p + "neg")), (True, want))
        check(mode + "/set_multi_ttl_-1", (mc.set_multi({p + "negm1": "a", p + "negm2": "b"}, time=-1),
                                           sorted(mc.get_multi([p + "negm1", p + "negm2"]).values())),
              ([], ["a", "b"] if binary else []))
        check(mode + "/add_ttl_-1", (mc.add(p + "nega", "v", time=-1), mc.get(p + "nega")), (True, want))
        check(mode + "/replace_ttl_-1", (mc.set(p + "negr", "old"), mc.replace(p + "negr", "v", time=-1), mc.get(p + "negr")), (True, True, want))
        check(mode + "/set_ttl_4294967295", (mc.set(p + "big", "v", time=4294967295), mc.get(p + "big")), (True, want))
        # 4294967296 is 0 in 32 bits: never expires (text and binary).
        check(mode + "/set_ttl_4294967296", (mc.set(p + "big2", "v", time=4294967296), mc.get(p + "big2")), (True, "v"))
        mc.set(p + "t", "v")
        check(mode + "/touch_ttl_-1", (mc.touch(p + "t", -1), mc.get(p + "t")), (True, want))
        # Whatever came before, the stream is still in step.
        for i in range(20):
            mc.set(p + "after%d" % i, "after%d" % i)
        check(mode + "/in_step_after_ttl_-1", mc.get_multi([p + "after%d" % i for i in range(20)]),
              {p + "after%d" % i: "after%d" % i for i in range(20)})

    def ttls():
        check(mode + "/ttl_relative", (mc.set(p + "tr", "v", time=3600), mc.get(p + "tr")), (True, "v"))
        # Over 30 days: an absolute unix time.
        check(mode + "/ttl_absolute_future", (mc.set(p + "ta", "v", time=int(time.time()) + 3600), mc.get(p + "ta")), (True, "v"))
        check(mode + "/ttl_absolute_past", (mc.set(p + "tp", "v", time=int(time.time()) - 3600), mc.get(p + "tp")), (True, None))
        mc.set(p + "tt", "v", time=100)
        check(mode + "/touch_extends", (mc.touch(p + "tt", 3600), mc.get(p + "tt")), (True, "v"))
        check(mode + "/touch_missing", mc.touch(p + "ttm", 3600), False)

    def stats():
        st = mc.get_stats()
        check(mode + "/stats", (len(st), all(k in st[0][1] for k in ("pid", "curr_items", "get_hits", "limit_maxbytes"))), (1, True))

    for name, fn in [("set_get", set_get), ("multi", multi), ("add_replace", add_replace), ("incr_decr", incr_decr),
                     ("append_prepend", append_prepend), ("delete", delete), ("cas", cas),
                     ("negative_ttl", negative_ttl), ("ttls", ttls), ("stats", stats)]:
        run(mode + "/" + name, fn)


checks("text")
checks("binary")
mc = pylibmc.Client([addr])
mc.set("flushed", "v")
check("flush_all", (mc.flush_all(), mc.get("flushed")), (True, None))
