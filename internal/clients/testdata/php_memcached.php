<?php
// php-memcached (libmemcached) in text and binary mode, and its session
// handler (session.save_handler=memcached) over both protocols.
//
// Usage: php php_memcached.php HOST:PORT. Expiries go out as given: -1 and
// 4294967295 (which memcached's text protocol reads back as -1) expire the
// item at once; in the binary protocol both are 0xffffffff, which memcached
// takes as an absolute time decades ahead (the item stays). A text CAS of 0 is not sent at all (libmemcached
// leaves the unique off and the line is malformed); a binary one means "no
// compare".

require __DIR__ . '/checklib.php';

[$host, $port] = explode(':', $argv[1]);

function client(bool $binary): Memcached
{
    global $host, $port;
    $mc = new Memcached();
    $mc->setOption(Memcached::OPT_BINARY_PROTOCOL, $binary);
    $mc->setOption(Memcached::OPT_RECV_TIMEOUT, 10000000);
    $mc->setOption(Memcached::OPT_SEND_TIMEOUT, 10000000);
    $mc->setOption(Memcached::OPT_POLL_TIMEOUT, 10000);
    $mc->setOption(Memcached::OPT_CONNECT_TIMEOUT, 10000);
    $mc->addServer($host, (int) $port);
    return $mc;
}

foreach (['text', 'binary'] as $mode) {
    $binary = $mode === 'binary';
    $mc = client($binary);
    $p = $mode . '_';

    run("$mode/basic", function () use ($mc, $mode, $p, $binary) {
        foreach (['text', 42, 1.5, [1, 'a' => [2]], '', str_repeat('x', 200000), true] as $i => $v) {
            check("$mode/set_get[$i]", [$mc->set("{$p}v$i", $v), $mc->get("{$p}v$i")], [true, $v]);
        }
        check("$mode/get_missing", [$mc->get("{$p}missing"), $mc->getResultCode()], [false, Memcached::RES_NOTFOUND]);
        check("$mode/set_multi", $mc->setMulti(["{$p}m1" => '1', "{$p}m2" => 2]), true);
        check("$mode/get_multi", $mc->getMulti(["{$p}m1", "{$p}m2", "{$p}m3"]), ["{$p}m1" => '1', "{$p}m2" => 2]);
        $mc->set("{$p}ar", 'a');
        check("$mode/add_existing", [$mc->add("{$p}ar", 'b'), $mc->getResultCode(), $mc->get("{$p}ar")], [false, $binary ? Memcached::RES_DATA_EXISTS : Memcached::RES_NOTSTORED, 'a']);
        check("$mode/add_new", [$mc->add("{$p}ar2", 'b'), $mc->get("{$p}ar2")], [true, 'b']);
        check("$mode/replace_missing", [$mc->replace("{$p}ar3", 'c'), $mc->get("{$p}ar3")], [false, false]);
        $mc->set("{$p}n", 5);
        check("$mode/increment", [$mc->increment("{$p}n", 3), $mc->decrement("{$p}n", 10)], [8, 0]);
        check("$mode/increment_missing", $mc->increment("{$p}nn", 1), false);
        $mc->setOption(Memcached::OPT_COMPRESSION, false); // append needs it off
        $mc->set("{$p}ap", 'mid');
        $mc->append("{$p}ap", '>');
        $mc->prepend("{$p}ap", '<');
        $mc->setOption(Memcached::OPT_COMPRESSION, true);
        check("$mode/append_prepend", $mc->get("{$p}ap"), '<mid>');
        $mc->set("{$p}d", 'x');
        check("$mode/delete", [$mc->delete("{$p}d"), $mc->get("{$p}d"), $mc->delete("{$p}d")], [true, false, false]);
        check("$mode/delete_multi", [$mc->setMulti(["{$p}dm1" => 1]), $mc->deleteMulti(["{$p}dm1", "{$p}dm2"])],
            [true, ["{$p}dm1" => true, "{$p}dm2" => Memcached::RES_NOTFOUND]]);
        $st = array_values($mc->getStats())[0];
        check("$mode/stats", isset($st['pid'], $st['curr_items'], $st['get_hits']), true);
        check("$mode/version", count($mc->getVersion()), 1);
    });

    run("$mode/cas", function () use ($mc, $mode, $p, $binary) {
        $mc->set("{$p}c", 'v1');
        $r = $mc->get("{$p}c", null, Memcached::GET_EXTENDED);
        $unique = $r['cas'];
        check("$mode/get_cas", [$r['value'], $unique > 0], ['v1', true]);
        check("$mode/cas_fresh", [$mc->cas($unique, "{$p}c", 'v2'), $mc->get("{$p}c")], [true, 'v2']);
        check("$mode/cas_stale", [$mc->cas($unique, "{$p}c", 'v3'), $mc->getResultCode(), $mc->get("{$p}c")],
            [false, Memcached::RES_DATA_EXISTS, 'v2']);
        check("$mode/cas_missing", [$mc->cas($unique, "{$p}cm", 'v'), $mc->getResultCode(), $mc->get("{$p}cm")],
            [false, Memcached::RES_NOTFOUND, false]);
        if ($binary) {
            // Binary CAS 0 is "no compare": libmemcached sends a REPLACE.
            check("$mode/cas_zero_replaces", [$mc->cas(0, "{$p}c", 'v4'), $mc->get("{$p}c")], [true, 'v4']);
            check("$mode/cas_zero_missing", [$mc->cas(0, "{$p}cz", 'v'), $mc->get("{$p}cz")], [false, false]);
        }
        $r = $mc->getMulti(["{$p}c"], Memcached::GET_EXTENDED);
        check("$mode/cas_unique_changes", $r["{$p}c"]['cas'] !== $unique, true);
    });

    run("$mode/expiry", function () use ($mc, $mode, $p, $binary) {
        $want = $binary ? 'v' : false;
        check("$mode/set_ttl_-1", [$mc->set("{$p}neg", 'v', -1), $mc->get("{$p}neg")], [true, $want]);
        check("$mode/set_ttl_4294967295", [$mc->set("{$p}big", 'v', 4294967295), $mc->get("{$p}big")], [true, $want]);
        check("$mode/set_ttl_4294967296", [$mc->set("{$p}big2", 'v', 4294967296), $mc->get("{$p}big2")], [true, 'v']);
        $mc->set("{$p}t2", 'v');
        check("$mode/touch_ttl_4294967295", [$mc->touch("{$p}t2", 4294967295), $mc->get("{$p}t2")], [true, $want]);
        check("$mode/add_ttl_-1", [$mc->add("{$p}nega", 'v', -1), $mc->get("{$p}nega")], [true, $want]);
        check("$mode/set_multi_ttl_-1", [$mc->setMulti(["{$p}nm" => 'v'], -1), $mc->get("{$p}nm")], [true, $want]);
        $mc->set("{$p}t", 'v', 100);
        check("$mode/touch_extends", [$mc->touch("{$p}t", 3600), $mc->get("{$p}t")], [true, 'v']);
        check("$mode/touch_missing", $mc->touch("{$p}tm", 3600), false);
        $mc->set("{$p}t1", 'v');
        check("$mode/touch_ttl_-1", [$mc->touch("{$p}t1", -1), $mc->get("{$p}t1")], [true, $want]);
        $now = time();
        check("$mode/ttl_absolute_future", [$mc->set("{$p}ta", 'v', $now + 3600), $mc->get("{$p}ta")], [true, 'v']);
        check("$mode/ttl_absolute_past", [$mc->set("{$p}tp", 'v', $now - 3600), $mc->get("{$p}tp")], [true, false]);
        $want = [];
        for ($i = 0; $i < 20; $i++) {
            $want["{$p}after$i"] = $i;
        }
        $mc->setMulti($want);
        check("$mode/in_step_after_ttls", $mc->getMulti(array_keys($want)), $want);
    });
}

// The session handler (binary protocol by default, as shipped; then text).
foreach (['binary' => '1', 'text' => '0'] as $mode => $on) {
    run("session_$mode", function () use ($host, $port, $mode, $on) {
        ob_start();
        ini_set('session.save_handler', 'memcached');
        ini_set('session.save_path', "$host:$port");
        ini_set('memcached.sess_binary_protocol', $on);
        ini_set('session.use_cookies', '0');
        ini_set('session.cache_limiter', '');
        $id = "phpmemcachedsession$mode";
        session_id($id);
        check("session_$mode/start", session_start(), true);
        $_SESSION['user'] = 42;
        check("session_$mode/write", session_write_close(), true);
        $mc = client($on === '1');
        check("session_$mode/stored", is_string($mc->get("memc.sess.key.$id")), true);
        check("session_$mode/unlocked", $mc->get("memc.sess.key.lock.$id"), false);
        $_SESSION = [];
        session_id($id);
        session_start();
        check("session_$mode/read", $_SESSION, ['user' => 42]);
        $_SESSION['cart'] = [1, 2];
        session_write_close();
        session_id($id);
        session_start();
        check("session_$mode/update", $_SESSION, ['user' => 42, 'cart' => [1, 2]]);
        check("session_$mode/destroy", [session_destroy(), $mc->get("memc.sess.key.$id")], [true, false]);
        ob_end_flush();
    });
}

$mc = client(false);
$mc->set('flushed', 'v');
check('flush', [$mc->flush(), $mc->get('flushed')], [true, false]);
report();
