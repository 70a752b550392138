#!/usr/bin/env python3
"""Ask the installed libmemcached (via ctypes, no headers needed) where keys go.

Usage:
  libmemcached_oracle.py hash HASHNAME < keys        -> one uint32 per key
      memcached_generate_hash_value(key, HASHNAME)
  libmemcached_oracle.py pick HASHNAME host:port:weight... < keys  -> one index per key
      weighted ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED) then key hash HASHNAME
  libmemcached_oracle.py store host:port:weight... < keys
      memcached_set(key, value=key) through weighted ketama/MD5 into real nodes

Keys are read one per line as hex, so any byte can be tested.
Exit status 3 means libmemcached could not be loaded.
"""
import ctypes, sys

# enum values from libmemcached-1.0/types/{behavior,hash}.h
BEHAVIOR_HASH = 2
BEHAVIOR_KETAMA_WEIGHTED = 16
HASHES = {"md5": 1, "crc32": 2, "fnv1_64": 3, "fnv1a_64": 4, "fnv1_32": 5,
          "fnv1a_32": 6, "one_at_a_time": 0}

try:
    lm = ctypes.CDLL("libmemcached.so.11")
except OSError as e:
    print("cannot load libmemcached.so.11: %s" % e, file=sys.stderr)
    sys.exit(3)

lm.memcached_create.restype = ctypes.c_void_p
lm.memcached_create.argtypes = [ctypes.c_void_p]
lm.memcached_server_add_with_weight.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
lm.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
lm.memcached_generate_hash.restype = ctypes.c_uint32
lm.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lm.memcached_generate_hash_value.restype = ctypes.c_uint32
lm.memcached_generate_hash_value.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
lm.memcached_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                             ctypes.c_size_t, ctypes.c_long, ctypes.c_uint32]
lm.memcached_strerror.restype = ctypes.c_char_p
lm.memcached_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]

def keys():
    for line in sys.stdin:
        line = line.strip()
        if line:
            yield bytes.fromhex(line)

def client(servers, hashname):
    m = lm.memcached_create(None)
    for s in servers:
        host, port, weight = s.rsplit(":", 2)
        rc = lm.memcached_server_add_with_weight(m, host.encode(), int(port), int(weight))
        if rc != 0:
            sys.exit("server_add %s: %s" % (s, lm.memcached_strerror(m, rc)))
    lm.memcached_behavior_set(m, BEHAVIOR_KETAMA_WEIGHTED, 1)
    lm.memcached_behavior_set(m, BEHAVIOR_HASH, HASHES[hashname])
    return m

mode = sys.argv[1]
out = []
if mode == "hash":
    h = HASHES[sys.argv[2]]
    out = [str(lm.memcached_generate_hash_value(k, len(k), h)) for k in keys()]
elif mode == "pick":
    m = client(sys.argv[3:], sys.argv[2])
    out = [str(lm.memcached_generate_hash(m, k, len(k))) for k in keys()]
elif mode == "store":
    m = client(sys.argv[2:], "md5")
    for k in keys():
        rc = lm.memcached_set(m, k, len(k), k, len(k), 0, 0)
        if rc != 0:
            sys.exit("set %r: %s" % (k, lm.memcached_strerror(m, rc)))
else:
    sys.exit("unknown mode " + mode)
sys.stdout.write("\n".join(out) + ("\n" if out else ""))
