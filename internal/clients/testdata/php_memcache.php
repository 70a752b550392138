<?php
// PECL memcache (php-memcache) and its session handler
// (session.save_handler=memcache), memcached's ASCII protocol. Its binary
// protocol (memcache.protocol=binary) is left out: against memcached 1.6.18
// itself it fails from increment on and then takes the server for down.
//
// Usage: php php_memcache.php HOST:PORT. It writes an expiry of -1 as
// 4294967295, which memcached reads back as -1: expired at once.

require __DIR__ . '/checklib.php';

[$host, $port] = explode(':', $argv[1]);

function client(string $mode)
{
    global $host, $port;
    ini_set('memcache.protocol', $mode);
    $mc = new Memcache();
    $mc->addServer($host, (int) $port, true, 1, 10); // a 10 s timeout, not 1 s
    return $mc;
}

foreach (['ascii'] as $mode) {
    $mc = client($mode);
    $p = $mode . '_';
    $binary = $mode === 'binary';

    run("$mode/basic", function () use ($mc, $mode, $p) {
        foreach (['text', 42, 1.5, [1, 'a' => [2]], '', str_repeat('x', 200000)] as $i => $v) {
            check("$mode/set_get[$i]", [$mc->set("{$p}v$i", $v), $mc->get("{$p}v$i")], [true, $v]);
        }
        check("$mode/get_missing", $mc->get("{$p}missing"), false);
        $mc->set("{$p}m1", '1');
        $mc->set("{$p}m2", 2);
        check("$mode/get_multi", $mc->get(["{$p}m1", "{$p}m2", "{$p}m3"]), ["{$p}m1" => '1', "{$p}m2" => 2]);
        $mc->set("{$p}ar", 'a');
        check("$mode/add_existing", [$mc->add("{$p}ar", 'b'), $mc->get("{$p}ar")], [false, 'a']);
        check("$mode/add_new", [$mc->add("{$p}ar2", 'b'), $mc->get("{$p}ar2")], [true, 'b']);
        check("$mode/replace_missing", [$mc->replace("{$p}ar3", 'c'), $mc->get("{$p}ar3")], [false, false]);
        $mc->set("{$p}n", '5');
        check("$mode/increment", [$mc->increment("{$p}n", 3), $mc->decrement("{$p}n", 10)], [8, 0]);
        check("$mode/increment_missing", $mc->increment("{$p}nn", 1), false);
        $mc->set("{$p}ap", 'mid');
        $mc->append("{$p}ap", '>');
        $mc->prepend("{$p}ap", '<');
        check("$mode/append_prepend", $mc->get("{$p}ap"), '<mid>');
        $mc->set("{$p}d", 'x');
        check("$mode/delete", [$mc->delete("{$p}d"), $mc->get("{$p}d"), $mc->delete("{$p}d")], [true, false, false]);
        $st = $mc->getStats();
        check("$mode/stats", isset($st['pid'], $st['curr_items'], $st['get_hits']), true);
        check("$mode/version", is_string($mc->getVersion()), true);
    });

    run("$mode/cas", function () use ($mc, $mode, $p, $binary) {
        $mc->set("{$p}c", 'v1');
        $flags = null;
        $unique = null;
        $v = $mc->get("{$p}c", $flags, $unique);
        check("$mode/get_cas", [$v, $unique > 0], ['v1', true]);
        check("$mode/cas_fresh", [$mc->cas("{$p}c", 'v2', 0, 0, $unique), $mc->get("{$p}c")], [true, 'v2']);
        check("$mode/cas_stale", [$mc->cas("{$p}c", 'v3', 0, 0, $unique), $mc->get("{$p}c")], [false, 'v2']);
        // (No CAS on a missing key: this client takes NOT_FOUND for a
        // server failure and stops using the server for a while.)
        if (!$binary) {
            // An ASCII unique of 0 never matches (uniques start at 1).
            check("$mode/cas_zero", [$mc->cas("{$p}c", 'v4', 0, 0, 0), $mc->get("{$p}c")], [false, 'v2']);
        }
    });

    run("$mode/expiry", function () use ($mc, $mode, $p, $binary) {
        $want = $binary ? 'v' : false;
        check("$mode/set_ttl_-1", [$mc->set("{$p}neg", 'v', 0, -1), $mc->get("{$p}neg")], [true, $want]);
        check("$mode/add_ttl_-1", [$mc->add("{$p}nega", 'v', 0, -1), $mc->get("{$p}nega")], [true, $want]);
        $now = time();
        check("$mode/ttl_absolute_future", [$mc->set("{$p}ta", 'v', 0, $now + 3600), $mc->get("{$p}ta")], [true, 'v']);
        check("$mode/ttl_absolute_past", [$mc->set("{$p}tp", 'v', 0, $now - 3600), $mc->get("{$p}tp")], [true, false]);
        $keys = [];
        $want = [];
        for ($i = 0; $i < 20; $i++) {
            $mc->set("{$p}after$i", $i);
            $keys[] = "{$p}after$i";
            $want["{$p}after$i"] = $i;
        }
        check("$mode/in_step_after_ttls", $mc->get($keys), $want);
    });
    $mc->close();
}

// The session handler, with memcached's ASCII protocol.
ini_set('memcache.protocol', 'ascii');
run('session', function () use ($host, $port) {
    ob_start();
    ini_set('session.save_handler', 'memcache');
    ini_set('session.save_path', "tcp://$host:$port");
    ini_set('session.use_cookies', '0');
    ini_set('session.cache_limiter', '');
    session_id('phpmemcachesession1');
    check('session_start', session_start(), true);
    $_SESSION['user'] = 42;
    check('session_write', session_write_close(), true);
    $_SESSION = [];
    session_id('phpmemcachesession1');
    session_start();
    check('session_read', $_SESSION, ['user' => 42]);
    $_SESSION['cart'] = [1, 2];
    session_write_close();
    $mc = client('ascii');
    check('session_stored', is_string($mc->get('phpmemcachesession1')), true);
    session_id('phpmemcachesession1');
    session_start();
    check('session_update', $_SESSION, ['user' => 42, 'cart' => [1, 2]]);
    check('session_destroy', session_destroy(), true);
    check('session_gone', $mc->get('phpmemcachesession1'), false);
    session_id('phpmemcachesession2');
    session_start();
    check('session_new_empty', $_SESSION, []);
    session_write_close();
    ob_end_flush();
});

$mc = client('ascii');
$mc->set('flushed', 'v');
check('flush', [$mc->flush(), $mc->get('flushed')], [true, false]);
report();
