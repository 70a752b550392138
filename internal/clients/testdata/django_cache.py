"""Django's cache framework (python3-django) with PyLibMCCache (text and
binary) and PyMemcacheCache, and cache-backed sessions on each.

Usage: django_cache.py HOST:PORT. Django sends timeout=0 ("expire at once")
as an expiry of -1: PyLibMCCache's libmemcached writes it as 4294967295,
PyMemcacheCache as -1, and memcached expires the item at once. Over the
binary protocol libmemcached sends 0xffffffff, which memcached takes as an
absolute time decades ahead: the item stays (memcached's behaviour, kept)."""

import sys
import time
import warnings

warnings.simplefilter("ignore")

import django
from django.conf import settings

from checklib import check, run

addr = sys.argv[1]
backends = {
    "pylibmc": {"BACKEND": "django.core.cache.backends.memcached.PyLibMCCache", "LOCATION": addr},
    "pylibmc_binary": {"BACKEND": "django.core.cache.backends.memcached.PyLibMCCache", "LOCATION": addr,
                       "OPTIONS": {"binary": True}},
    "pymemcache": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": addr},
}
settings.configure(
    CACHES=dict(backends, default=backends["pymemcache"]),
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    INSTALLED_APPS=["django.contrib.sessions"],
    SECRET_KEY="client-checks",
    USE_TZ=True,
)
django.setup()

from django.core.cache import caches  # noqa: E402 (after setup)
from django.contrib.sessions.backends.cache import SessionStore  # noqa: E402


def checks(alias):
    cache = caches[alias]
    cache.key_prefix = alias  # the backends share one server
    binary = alias == "pylibmc_binary"

    def basic():
        cache.set("k", {"a": 1}, 60)
        check(alias + "/set_get", cache.get("k"), {"a": 1})
        check(alias + "/get_default", cache.get("missing", "dflt"), "dflt")
        check(alias + "/add", (cache.add("k", 2), cache.add("k2", 2), cache.get("k2")), (False, True, 2))
        check(alias + "/has_key", (cache.has_key("k"), cache.has_key("nope")), (True, False))
        cache.set_many({"m1": 1, "m2": "two"})
        check(alias + "/get_many", cache.get_many(["m1", "m2", "m3"]), {"m1": 1, "m2": "two"})
        cache.delete_many(["m1", "m2"])
        check(alias + "/delete_many", cache.get_many(["m1", "m2"]), {})
        check(alias + "/delete", (cache.delete("k"), cache.get("k")), (True, None))
        cache.set("n", 10)
        check(alias + "/incr_decr", (cache.incr("n", 5), cache.decr("n", 3), cache.get("n")), (15, 12, 12))
        try:
            cache.incr("nn")
            got = "no error"
        except ValueError:
            got = "ValueError"
        check(alias + "/incr_missing", got, "ValueError")
        check(alias + "/version", (cache.set("vk", "v1", version=1), cache.set("vk", "v2", version=2),
                                   cache.get("vk", version=1), cache.get("vk", version=2)), (None, None, "v1", "v2"))

    def timeouts():
        # timeout=0: expire at once (Django sends -1).
        cache.set("t0", "v", timeout=0)
        check(alias + "/set_timeout_0", cache.get("t0"), None if not binary else "v")
        check(alias + "/add_timeout_0", (cache.add("a0", "v", timeout=0), cache.get("a0")), (True, None if not binary else "v"))
        cache.set_many({"sm1": 1, "sm2": 2}, timeout=0)
        check(alias + "/set_many_timeout_0", cache.get_many(["sm1", "sm2"]), {} if not binary else {"sm1": 1, "sm2": 2})
        cache.set("tn", "v", timeout=None)
        check(alias + "/timeout_none", cache.get("tn"), "v")
        # Over 30 days: Django sends an absolute unix time.
        cache.set("t40d", "v", timeout=40 * 86400)
        check(alias + "/timeout_40_days", cache.get("t40d"), "v")
        # The stream is still in step after all that.
        cache.set_many({"after%d" % i: i for i in range(20)})
        check(alias + "/in_step_after_timeout_0", cache.get_many(["after%d" % i for i in range(20)]),
              {"after%d" % i: i for i in range(20)})

    def get_or_set():
        check(alias + "/get_or_set_new", cache.get_or_set("gs", "first", 60), "first")
        check(alias + "/get_or_set_existing", cache.get_or_set("gs", "second", 60), "first")
        check(alias + "/get_or_set_callable", cache.get_or_set("gsc", lambda: "computed", 60), "computed")
        # timeout=0: the default comes back, and is not kept.
        check(alias + "/get_or_set_timeout_0", (cache.get_or_set("gs0", "d", timeout=0), cache.get("gs0")),
              ("d", None if not binary else "d"))

    def touch():
        cache.set("tc", "v", 100)
        check(alias + "/touch", (cache.touch("tc", 3600), cache.get("tc")), (True, "v"))
        check(alias + "/touch_missing", cache.touch("tcm", 3600), False)
        # timeout=0: PyLibMCCache deletes; PyMemcacheCache touches with -1.
        cache.set("tz", "v")
        check(alias + "/touch_timeout_0", (cache.touch("tz", 0), cache.get("tz")), (True, None))
        cache.set("tn2", "v", 100)
        check(alias + "/touch_timeout_none", (cache.touch("tn2", None), cache.get("tn2")), (True, "v"))

    def sessions():
        settings.SESSION_CACHE_ALIAS = alias
        s = SessionStore()
        s["user"] = 42
        s.save()
        key = s.session_key
        check(alias + "/session_load", SessionStore(session_key=key).get("user"), 42)
        s2 = SessionStore(session_key=key)
        s2["cart"] = [1, 2]
        s2.save()
        check(alias + "/session_update", dict(SessionStore(session_key=key).items()), {"user": 42, "cart": [1, 2]})
        s2.cycle_key()
        check(alias + "/session_cycle_key", (SessionStore(session_key=key).exists(key), SessionStore(session_key=s2.session_key).get("cart")),
              (False, [1, 2]))
        check(alias + "/session_missing", SessionStore(session_key="x" * 32).get("user"), None)
        s2.flush()
        check(alias + "/session_flush", SessionStore().exists(s2.session_key or "none"), False)
        # set_expiry(0) is "until the browser closes": the cache still keeps
        # it for SESSION_COOKIE_AGE.
        s3 = SessionStore()
        s3["a"] = 1
        s3.set_expiry(0)
        s3.save()
        check(alias + "/session_expiry_0", SessionStore(session_key=s3.session_key).get("a"), 1)
        # A session already past its expiry is not kept.
        s4 = SessionStore()
        s4["a"] = 1
        s4.set_expiry(-1)
        s4.save()
        check(alias + "/session_expired", SessionStore(session_key=s4.session_key).get("a"), None if not binary else 1)

    for name, fn in [("basic", basic), ("timeouts", timeouts), ("get_or_set", get_or_set),
                     ("touch", touch), ("sessions", sessions)]:
        run(alias + "/" + name, fn)
    cache.clear()


for alias in backends:
    checks(alias)
