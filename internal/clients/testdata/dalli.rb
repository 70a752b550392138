# Dalli 3.0 (ruby-dalli), memcached's binary protocol.
#
# Usage: ruby dalli.rb HOST:PORT. Dalli packs the expiry as a 32-bit
# unsigned field: -1 goes out as 0xffffffff, which memcached's binary
# protocol takes as an absolute time decades ahead (the item stays). A
# binary CAS of 0 means "no compare" (a plain set); a stale one never
# overwrites.

require 'dalli'
require 'logger'

Dalli.logger = Logger.new(IO::NULL)

def check(name, got, want)
  if got == want
    puts "ok #{name}"
  else
    puts "FAIL #{name}: got #{got.inspect}, want #{want.inspect}"
  end
  $stdout.flush
end

def run(name)
  yield
rescue StandardError => e
  puts "FAIL #{name}: #{e.class}: #{e.message}"
  warn e.backtrace.join("\n")
end

addr = ARGV[0]
dc = Dalli::Client.new(addr, socket_timeout: 10, socket_max_failures: 1, down_retry_delay: 0)
raw = Dalli::Client.new(addr, socket_timeout: 10)

run('basic') do
  ['text', "bytes\x00\xff".b, 42, 2**70, { 'a' => [1, 2] }, '', 'x' * 200_000].each_with_index do |v, i|
    check("set_get[#{i}]", [!!dc.set("v#{i}", v), dc.get("v#{i}")], [true, v])
  end
  check('get_missing', dc.get('missing'), nil)
  dc.set('m1', '1')
  dc.set('m2', 2)
  check('get_multi', dc.get_multi('m1', 'm2', 'm3'), { 'm1' => '1', 'm2' => 2 })
  dc.set('ar', 'a')
  check('add_existing', [dc.add('ar', 'b'), dc.get('ar')], [false, 'a'])
  check('add_new', [!!dc.add('ar2', 'b'), dc.get('ar2')], [true, 'b'])
  check('replace_missing', [dc.replace('ar3', 'c'), dc.get('ar3')], [0, nil]) # 0: not stored
  check('replace_existing', [!!dc.replace('ar', 'c'), dc.get('ar')], [true, 'c'])
  check('incr_default', [dc.incr('n', 1, nil, 5), dc.incr('n', 3), dc.decr('n', 100)], [5, 8, 0])
  check('incr_missing', dc.incr('nn', 1), nil)
  raw.set('ap', 'mid', nil, raw: true)
  raw.append('ap', '>')
  raw.prepend('ap', '<')
  check('append_prepend', raw.get('ap', raw: true), '<mid>')
  dc.set('d', 'x')
  check('delete', [dc.delete('d'), dc.get('d'), dc.delete('d')], [true, nil, nil])
  check('fetch', [dc.fetch('f') { 'computed' }, dc.fetch('f') { 'again' }], %w[computed computed])
  st = dc.stats.values.first
  check('stats', %w[pid curr_items get_hits].all? { |k| st.key?(k) }, true)
  check('version', dc.version.values.first.to_s.empty?, false)
end

run('cas') do
  dc.set('c', 'v1')
  v, unique = dc.get_cas('c')
  check('get_cas', [v, unique.positive?], ['v1', true])
  check('set_cas_fresh', [!!dc.set_cas('c', 'v2', unique), dc.get('c')], [true, 'v2'])
  check('set_cas_stale', [dc.set_cas('c', 'v3', unique), dc.get('c')], [false, 'v2'])
  check('replace_cas_stale', [dc.replace_cas('c', 'v3', unique), dc.get('c')], [false, 'v2'])
  check('delete_cas_stale', [dc.delete_cas('c', unique), dc.get('c')], [false, 'v2'])
  check('cas_block', [!!dc.cas('c') { |old| "#{old}+" }, dc.get('c')], [true, 'v2+'])
  check('cas_block_missing', [dc.cas('cm') { |_| 'x' }, dc.get('cm')], [nil, nil])
  check('cas_block_bang', [!!dc.cas!('cm2') { |_| 'x' }, dc.get('cm2')], [true, 'x'])
  # Binary CAS 0 is "no compare": a plain set (memcached's binary protocol).
  check('set_cas_zero_sets', [!!dc.set_cas('c', 'v4', 0), dc.get('c')], [true, 'v4'])
  check('replace_cas_zero_missing', [dc.replace_cas('cz', 'v', 0), dc.get('cz')], [0, nil])
  _, u2 = dc.get_cas('c')
  check('cas_unique_changes', u2 != unique, true)
  check('get_multi_cas', dc.get_multi_cas('c').transform_values(&:first), { 'c' => 'v4' })
end

run('expiry') do
  want = 'v' # 0xffffffff: decades ahead
  check('set_ttl_-1', [!!dc.set('neg', 'v', -1), dc.get('neg')], [true, want])
  check('add_ttl_-1', [!!dc.add('nega', 'v', -1), dc.get('nega')], [true, want])
  dc.set('t', 'v', 100)
  check('touch_extends', [dc.touch('t', 3600), dc.get('t')], [true, 'v'])
  check('touch_missing', dc.touch('tm', 3600), nil)
  dc.set('t1', 'v')
  check('touch_ttl_-1', [dc.touch('t1', -1), dc.get('t1')], [true, want])
  dc.set('g', 'v', 100)
  check('gat', [dc.gat('g', 3600), dc.get('g')], %w[v v])
  check('gat_missing', dc.gat('gm', 3600), nil)
  # Over 30 days Dalli sends an absolute unix time.
  check('ttl_40_days', [!!dc.set('t40', 'v', 40 * 86_400), dc.get('t40')], [true, 'v'])
  # incr's default applies only with an expiry other than 0xffffffff.
  check('incr_default_ttl_-1', [dc.incr('ni', 1, -1, 7), dc.get('ni', raw: true)], [nil, nil])
  20.times { |i| dc.set("after#{i}", i) }
  check('in_step_after_ttls', dc.get_multi(*Array.new(20) { |i| "after#{i}" }), Array.new(20) { |i| ["after#{i}", i] }.to_h)
end

run('quiet') do
  # Inside multi Dalli sends quiet opcodes (SETQ, ADDQ, DELETEQ) and ends
  # with a NOOP: only failures answer, and none may put the stream out of step.
  dc.multi do
    20.times { |i| dc.set("q#{i}", i) }
    dc.add('q0', 'x')
    dc.delete('q1')
    dc.delete('qmissing')
    dc.set('qneg', 'v', -1)
  end
  want = Array.new(20) { |i| ["q#{i}", i] }.to_h
  want.delete('q1')
  want['qneg'] = 'v'
  check('multi_quiet', dc.get_multi(*Array.new(20) { |i| "q#{i}" }, 'qneg'), want)
  check('after_multi', [!!dc.set('qa', 'a'), dc.get('qa')], [true, 'a'])
end

run('flush') do
  dc.set('flushed', 'v')
  dc.flush
  check('flush', dc.get('flushed'), nil)
end
