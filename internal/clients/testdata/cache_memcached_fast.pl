# Cache::Memcached::Fast (libcache-memcached-fast-perl), text protocol.
#
# Usage: perl cache_memcached_fast.pl HOST:PORT. Expiries go out as given:
# -1 and 4294967295 (which memcached reads back as -1) expire the item at
# once. A CAS unique of 0 never matches (memcached's start at 1).

use strict;
use warnings;

use Cache::Memcached::Fast;
use Data::Dumper;

$Data::Dumper::Terse = 1;
$Data::Dumper::Indent = 0;
$Data::Dumper::Sortkeys = 1;
$| = 1;

# leaves turns every scalar in a structure into a string, so that Dumper
# compares values, not how Perl holds them.
sub leaves {
    my ($x) = @_;
    return [map { leaves($_) } @$x] if ref $x eq 'ARRAY';
    return { map { ($_ => leaves($x->{$_})) } keys %$x } if ref $x eq 'HASH';
    return "$x";
}

sub check {
    my ($name, $got, $want) = @_;
    my ($g, $w) = (Dumper(leaves($got)), Dumper(leaves($want)));
    if ($g eq $w) {
        print "ok $name\n";
    } else {
        print "FAIL $name: got ", substr($g, 0, 300), ", want ", substr($w, 0, 300), "\n";
    }
}

sub run {
    my ($name, $fn) = @_;
    eval { $fn->(); 1 } or print "FAIL $name: died: $@\n";
}

my $addr = $ARGV[0];
my $mc = Cache::Memcached::Fast->new({
    servers => [$addr], io_timeout => 10, close_on_error => 1, max_failures => 0,
});

# v names undef and false ('') results; the checks compare strings.
sub v {
    my ($x) = @_;
    return 'undef' unless defined $x;
    return $x eq '' ? 'false' : "$x";
}

run('basic', sub {
    my @values = ('text', "bytes\x00\xff", 42, '', 'x' x 200000);
    for my $i (0 .. $#values) {
        check("set_get[$i]", [v($mc->set("v$i", $values[$i])), $mc->get("v$i")], ['1', $values[$i]]);
    }
    check('set_get_ref', [v($mc->set('ref', { a => [1, 2] })), $mc->get('ref')], ['1', { a => [1, 2] }]);
    check('get_missing', v($mc->get('missing')), 'undef');
    $mc->set_multi(['m1', '1'], ['m2', 2]);
    check('get_multi', $mc->get_multi('m1', 'm2', 'm3'), { m1 => '1', m2 => '2' });
    $mc->set('ar', 'a');
    check('add_existing', [v($mc->add('ar', 'b')), $mc->get('ar')], ['false', 'a']);
    check('add_new', [v($mc->add('ar2', 'b')), $mc->get('ar2')], ['1', 'b']);
    check('replace_missing', [v($mc->replace('ar3', 'c')), v($mc->get('ar3'))], ['false', 'undef']);
    $mc->set('n', 5);
    check('incr_decr', [v($mc->incr('n', 3)), v($mc->decr('n', 10)), v($mc->incr('nn', 1))], ['8', '0E0', 'false']);
    $mc->set('ap', 'mid');
    $mc->append('ap', '>');
    $mc->prepend('ap', '<');
    check('append_prepend', $mc->get('ap'), '<mid>');
    $mc->set('d', 'x');
    check('delete', [v($mc->delete('d')), v($mc->get('d')), v($mc->delete('d'))], ['1', 'undef', 'false']);
    my $versions = $mc->server_versions;
    check('server_versions', scalar(keys %$versions), '1');
});

run('cas', sub {
    $mc->set('c', 'v1');
    my $g = $mc->gets('c');
    my $unique = $g->[0];
    check('gets', [$g->[1], $unique > 0 ? 'yes' : 'no'], ['v1', 'yes']);
    check('cas_fresh', [v($mc->cas('c', $unique, 'v2')), $mc->get('c')], ['1', 'v2']);
    check('cas_stale', [v($mc->cas('c', $unique, 'v3')), $mc->get('c')], ['false', 'v2']);
    check('cas_zero', [v($mc->cas('c', 0, 'v4')), $mc->get('c')], ['false', 'v2']);
    check('cas_missing', [v($mc->cas('cm', $unique, 'v')), v($mc->get('cm'))], ['false', 'undef']);
    check('cas_zero_missing', [v($mc->cas('cz', 0, 'v')), v($mc->get('cz'))], ['false', 'undef']);
    my $g2 = $mc->gets('c');
    check('cas_unique_changes', $g2->[0] != $unique ? 'yes' : 'no', 'yes');
    check('cas_after_zero', [v($mc->cas('c', $g2->[0], 'v5')), $mc->get('c')], ['1', 'v5']);
});

run('expiry', sub {
    check('set_ttl_-1', [v($mc->set('neg', 'v', -1)), v($mc->get('neg'))], ['1', 'undef']);
    check('set_ttl_4294967295', [v($mc->set('big', 'v', 4294967295)), v($mc->get('big'))], ['1', 'undef']);
    check('set_ttl_4294967296', [v($mc->set('big2', 'v', 4294967296)), v($mc->get('big2'))], ['1', 'v']);
    check('add_ttl_-1', [v($mc->add('nega', 'v', -1)), v($mc->get('nega'))], ['1', 'undef']);
    $mc->set('t', 'v', 100);
    check('touch_extends', [v($mc->touch('t', 3600)), $mc->get('t')], ['1', 'v']);
    check('touch_missing', v($mc->touch('tm', 3600)), 'false');
    $mc->set('t1', 'v');
    check('touch_ttl_-1', [v($mc->touch('t1', -1)), v($mc->get('t1'))], ['1', 'undef']);
    $mc->set('t2', 'v');
    check('touch_ttl_4294967295', [v($mc->touch('t2', 4294967295)), v($mc->get('t2'))], ['1', 'undef']);
    $mc->set('g', 'v', 100);
    check('gat', [v($mc->gat(3600, 'g')), v($mc->get('g'))], ['v', 'v']);
    $mc->set('g1', 'v');
    check('gat_ttl_-1', [v($mc->gat(-1, 'g1')), v($mc->get('g1'))], ['v', 'undef']);
    $mc->set('g2', 'v');
    my $gs = $mc->gats(4294967295, 'g2');
    check('gats_ttl_4294967295', [v($gs && $gs->[1]), v($mc->get('g2'))], ['v', 'undef']);
    my $now = time;
    check('ttl_absolute_future', [v($mc->set('ta', 'v', $now + 3600)), v($mc->get('ta'))], ['1', 'v']);
    check('ttl_absolute_past', [v($mc->set('tp', 'v', $now - 3600)), v($mc->get('tp'))], ['1', 'undef']);
    $mc->set_multi(map { ["after$_", $_] } 0 .. 19);
    check('in_step_after_ttls', $mc->get_multi(map { "after$_" } 0 .. 19), { map { ("after$_" => "$_") } 0 .. 19 });
});

$mc->set('flushed', 'v');
check('flush_all', [v($mc->flush_all->{$addr}), v($mc->get('flushed'))], ['1', 'undef']);
