// spymemcached (libspymemcached-java): text, binary, and ketama over two
// servers, all in one JVM (its start-up is the slow part).
//
// Usage: java -cp spymemcached.jar Spymemcached.java HOST:PORT HOST:PORT
// (or compiled first with javac, as the test does).
// The text and binary checks use the first server, ketama both. Expiries go
// out as given: -1 as "-1" in text (expired at once), as 0xffffffff in
// binary (memcached takes it as an absolute time decades ahead: kept). A
// CAS unique of 0 never matches in text; in binary it means "no compare".

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

import net.spy.memcached.AddrUtil;
import net.spy.memcached.BinaryConnectionFactory;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.KetamaConnectionFactory;
import net.spy.memcached.MemcachedClient;

public class Spymemcached {
    // OP_TIMEOUT_MS bounds each operation: the default 2.5 s is short on a
    // machine busy with the other tests.
    static final long OP_TIMEOUT_MS = 10000;

    interface Body {
        void run() throws Exception;
    }

    // factory makes the connection factory of a mode (text, binary, ketama)
    // with OP_TIMEOUT_MS for every operation.
    static ConnectionFactory factory(String mode) {
        switch (mode) {
        case "binary":
            return new BinaryConnectionFactory() {
                @Override
                public long getOperationTimeout() {
                    return OP_TIMEOUT_MS;
                }
            };
        case "ketama":
            return new KetamaConnectionFactory() {
                @Override
                public long getOperationTimeout() {
                    return OP_TIMEOUT_MS;
                }
            };
        default:
            return new DefaultConnectionFactory() {
                @Override
                public long getOperationTimeout() {
                    return OP_TIMEOUT_MS;
                }
            };
        }
    }

    static void check(String name, Object got, Object want) {
        if (Objects.deepEquals(got, want)) {
            System.out.println("ok " + name);
        } else {
            System.out.println("FAIL " + name + ": got " + got + ", want " + want);
        }
        System.out.flush();
    }

    static void run(String name, Body body) {
        try {
            body.run();
        } catch (Exception e) {
            System.out.println("FAIL " + name + ": " + e);
            e.printStackTrace();
        }
    }

    static <T> T await(Future<T> f) throws Exception {
        return f.get(10, TimeUnit.SECONDS);
    }

    // list holds byte arrays as their contents, so that equals compares them.
    static List<Object> list(Object... xs) {
        List<Object> l = new ArrayList<>();
        for (Object x : xs) {
            l.add(x instanceof byte[] ? Arrays.toString((byte[]) x) : x);
        }
        return l;
    }

    static void checks(String mode, MemcachedClient mc) throws Exception {
        boolean binary = mode.equals("binary");
        String p = mode + "_";
        run(mode + "/basic", () -> {
            Object[] values = {"text", 42, 1L << 40, new byte[] {0, (byte) 0xff}, "", "x".repeat(200000)};
            for (int i = 0; i < values.length; i++) {
                String k = p + "v" + i;
                check(mode + "/set_get[" + i + "]", list(await(mc.set(k, 0, values[i])), mc.get(k)), list(true, values[i]));
            }
            check(mode + "/get_missing", mc.get(p + "missing"), null);
            await(mc.set(p + "m1", 0, "1"));
            await(mc.set(p + "m2", 0, 2));
            Map<String, Object> want = new HashMap<>();
            want.put(p + "m1", "1");
            want.put(p + "m2", 2);
            check(mode + "/get_bulk", mc.getBulk(p + "m1", p + "m2", p + "m3"), want);
            await(mc.set(p + "ar", 0, "a"));
            check(mode + "/add_existing", list(await(mc.add(p + "ar", 0, "b")), mc.get(p + "ar")), list(false, "a"));
            check(mode + "/add_new", list(await(mc.add(p + "ar2", 0, "b")), mc.get(p + "ar2")), list(true, "b"));
            check(mode + "/replace_missing", list(await(mc.replace(p + "ar3", 0, "c")), mc.get(p + "ar3")), list(false, null));
            check(mode + "/replace_existing", list(await(mc.replace(p + "ar", 0, "c")), mc.get(p + "ar")), list(true, "c"));
            check(mode + "/incr_default", list(mc.incr(p + "n", 1, 5, 0), mc.incr(p + "n", 3), mc.decr(p + "n", 100)), list(5L, 8L, 0L));
            check(mode + "/incr_missing", mc.incr(p + "nn", 1), -1L);
            await(mc.set(p + "ap", 0, "mid"));
            await(mc.append(p + "ap", ">"));
            await(mc.prepend(p + "ap", "<"));
            check(mode + "/append_prepend", mc.get(p + "ap"), "<mid>");
            await(mc.set(p + "d", 0, "x"));
            check(mode + "/delete", list(await(mc.delete(p + "d")), mc.get(p + "d"), await(mc.delete(p + "d"))), list(true, null, false));
            Map<SocketAddress, Map<String, String>> st = mc.getStats();
            Map<String, String> one = st.values().iterator().next();
            check(mode + "/stats", list(st.size(), one.containsKey("pid"), one.containsKey("curr_items")), list(1, true, true));
        });
        run(mode + "/cas", () -> {
            await(mc.set(p + "c", 0, "v1"));
            CASValue<Object> cv = mc.gets(p + "c");
            long unique = cv.getCas();
            check(mode + "/gets", list(cv.getValue(), unique > 0), list("v1", true));
            check(mode + "/cas_fresh", list(mc.cas(p + "c", unique, "v2"), mc.get(p + "c")), list(CASResponse.OK, "v2"));
            check(mode + "/cas_stale", list(mc.cas(p + "c", unique, "v3"), mc.get(p + "c")), list(CASResponse.EXISTS, "v2"));
            check(mode + "/cas_missing", list(mc.cas(p + "cm", unique, "v"), mc.get(p + "cm")), list(CASResponse.NOT_FOUND, null));
            if (binary) {
                // 0 is "no compare" in the binary protocol: a plain set.
                check(mode + "/cas_zero_sets", list(mc.cas(p + "c", 0, "v4"), mc.get(p + "c")), list(CASResponse.OK, "v4"));
                check(mode + "/cas_zero_missing_sets", list(mc.cas(p + "cz", 0, "v"), mc.get(p + "cz")), list(CASResponse.OK, "v"));
            } else {
                // A text unique of 0 never matches (they start at 1).
                check(mode + "/cas_zero", list(mc.cas(p + "c", 0, "v4"), mc.get(p + "c")), list(CASResponse.EXISTS, "v2"));
                check(mode + "/cas_zero_missing", list(mc.cas(p + "cz", 0, "v"), mc.get(p + "cz")), list(CASResponse.NOT_FOUND, null));
            }
            long u2 = mc.gets(p + "c").getCas();
            check(mode + "/cas_unique_changes", u2 != unique, true);
        });
        run(mode + "/expiry", () -> {
            Object want = binary ? "v" : null;
            check(mode + "/set_ttl_-1", list(await(mc.set(p + "neg", -1, "v")), mc.get(p + "neg")), list(true, want));
            check(mode + "/add_ttl_-1", list(await(mc.add(p + "nega", -1, "v")), mc.get(p + "nega")), list(true, want));
            await(mc.set(p + "t", 100, "v"));
            check(mode + "/touch_extends", list(await(mc.touch(p + "t", 3600)), mc.get(p + "t")), list(true, "v"));
            check(mode + "/touch_missing", await(mc.touch(p + "tm", 3600)), false);
            await(mc.set(p + "t1", 0, "v"));
            check(mode + "/touch_ttl_-1", list(await(mc.touch(p + "t1", -1)), mc.get(p + "t1")), list(true, want));
            if (binary) { // spymemcached has no text gat
                await(mc.set(p + "g", 100, "v"));
                CASValue<Object> g = mc.getAndTouch(p + "g", 3600);
                check(mode + "/get_and_touch", list(g == null ? null : g.getValue(), mc.get(p + "g")), list("v", "v"));
                check(mode + "/get_and_touch_missing", mc.getAndTouch(p + "gm", 3600), null);
                await(mc.set(p + "g1", 0, "v"));
                g = mc.getAndTouch(p + "g1", -1);
                check(mode + "/get_and_touch_ttl_-1", list(g == null ? null : g.getValue(), mc.get(p + "g1")), list("v", "v"));
            }
            int now = (int) (System.currentTimeMillis() / 1000);
            check(mode + "/ttl_absolute_future", list(await(mc.set(p + "ta", now + 3600, "v")), mc.get(p + "ta")), list(true, "v"));
            check(mode + "/ttl_absolute_past", list(await(mc.set(p + "tp", now - 3600, "v")), mc.get(p + "tp")), list(true, null));
            List<String> keys = new ArrayList<>();
            Map<String, Object> wantAll = new HashMap<>();
            for (int i = 0; i < 20; i++) {
                await(mc.set(p + "after" + i, 0, i));
                keys.add(p + "after" + i);
                wantAll.put(p + "after" + i, i);
            }
            check(mode + "/in_step_after_ttls", mc.getBulk(keys), wantAll);
        });
    }

    static Map<SocketAddress, Long> currItems(MemcachedClient mc) {
        Map<SocketAddress, Long> n = new HashMap<>();
        mc.getStats().forEach((addr, st) -> n.put(addr, Long.parseLong(st.get("curr_items"))));
        return n;
    }

    static void ketama(List<InetSocketAddress> addrs) throws Exception {
        MemcachedClient mc = new MemcachedClient(factory("ketama"), addrs);
        try {
            run("ketama/spread", () -> {
                Map<SocketAddress, Long> before = currItems(mc);
                List<String> keys = new ArrayList<>();
                Map<String, Object> want = new HashMap<>();
                for (int i = 0; i < 200; i++) {
                    await(mc.set("ketama" + i, 0, "v" + i));
                    keys.add("ketama" + i);
                    want.put("ketama" + i, "v" + i);
                }
                check("ketama/get_bulk", mc.getBulk(keys), want);
                long total = 0;
                boolean everyNode = true;
                for (Map.Entry<SocketAddress, Long> e : currItems(mc).entrySet()) {
                    long n = e.getValue() - before.get(e.getKey());
                    total += n;
                    everyNode &= n > 0;
                }
                check("ketama/curr_items", list(total, everyNode), list(200L, true));
                // Each key is where ketama says: a client on that node alone has it.
                MemcachedClient node0 = new MemcachedClient(factory("text"), addrs.subList(0, 1));
                int misplaced = 0;
                for (String k : keys) {
                    SocketAddress home = mc.getNodeLocator().getPrimary(k).getSocketAddress();
                    boolean onNode0 = node0.get(k) != null;
                    if (onNode0 != home.equals(addrs.get(0))) {
                        misplaced++;
                    }
                }
                node0.shutdown();
                check("ketama/placement", misplaced, 0);
            });
        } finally {
            mc.shutdown();
        }
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("net.spy.log.LoggerImpl", "net.spy.memcached.compat.log.SunLogger");
        Logger.getLogger("net.spy.memcached").setLevel(Level.SEVERE);
        List<InetSocketAddress> addrs = AddrUtil.getAddresses(String.join(" ", args));
        for (String mode : new String[] {"text", "binary"}) {
            ConnectionFactory cf = factory(mode);
            MemcachedClient mc = new MemcachedClient(cf, addrs.subList(0, 1));
            try {
                checks(mode, mc);
            } finally {
                mc.shutdown();
            }
        }
        ketama(addrs);
        System.exit(0);
    }
}
