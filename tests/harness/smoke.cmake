# Smoke test of pushpoll-bench: runs every design briefly and checks the harness's accounting.
#
#   cmake -DBENCH=<path to pushpoll-bench> -DOUT=<scratch dir> -P smoke.cmake
#
# For each run and each design it checks that the JSON parses and holds every field; that the run
# succeeded; that the harness's own exactly-once-in-order verification found no violation; that in
# lossless mode every subscriber received every message due to it (delivered == expected, computed
# here independently from the published count); that in lossy mode delivered + gaps == expected;
# that the latency histogram counted exactly the deliveries it timed, and that those are one in
# `sample_every` of each subscriber's (the first run times every delivery, the others the default);
# and that the percentiles are ordered. Every failed check is reported and counted; the script then
# ends with FATAL_ERROR giving the count.
cmake_minimum_required(VERSION 3.22)

if(NOT BENCH)
  message("pushpoll-bench is not built (benchmarks disabled in this build): nothing to check")
  return()
endif()
if(NOT OUT)
  set(OUT "${CMAKE_CURRENT_BINARY_DIR}/harness-smoke")
endif()
file(MAKE_DIRECTORY "${OUT}")

# fail(<what>): reports a failed check and counts it. The count is a global property, so that a
# failure anywhere (json_get() inside run(), an early return from run()) reaches the summary at the
# end: a SEND_ERROR alone lets the script go on, and it must not then say that every check held.
set_property(GLOBAL PROPERTY smoke_failures 0)
function(fail what)
  message(SEND_ERROR "FAIL: ${what}")
  get_property(n GLOBAL PROPERTY smoke_failures)
  math(EXPR n "${n} + 1")
  set_property(GLOBAL PROPERTY smoke_failures ${n})
endfunction()

# json_get(<out> <json> <path...>): the value, or fails the test when the field is missing.
function(json_get out json)
  string(JSON value ERROR_VARIABLE err GET "${json}" ${ARGN})
  if(err)
    fail("missing field ${ARGN}: ${err}")
    set(value "")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# run(<name> <subscribers> <tags> <lossless> args...): runs the bench, then checks its JSON.
function(run name subscribers tags lossless)
  set(json_file "${OUT}/${name}.json")
  file(REMOVE "${json_file}")
  execute_process(COMMAND "${BENCH}" ${ARGN} -N ${subscribers} --tags ${tags} --quiet --json "${json_file}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 90)
  string(REPLACE ";" " " args "${ARGN}")
  message(STATUS "[${name}] pushpoll-bench ${args} -N ${subscribers} --tags ${tags}: exit ${rc}\n${out}${err}")
  if(NOT rc EQUAL 0)
    fail("[${name}] pushpoll-bench exited with ${rc}")
  endif()
  if(NOT EXISTS "${json_file}")
    fail("[${name}] no JSON written")
    return()
  endif()
  file(READ "${json_file}" doc)
  string(JSON kind ERROR_VARIABLE perr TYPE "${doc}")
  if(perr OR NOT kind STREQUAL "OBJECT")
    fail("[${name}] the JSON does not parse: ${perr}")
    return()
  endif()
  foreach(f cpu cpus_online kernel compiler build_type)
    json_get(v "${doc}" machine ${f})
  endforeach()
  json_get(violations_total "${doc}" violations)
  string(JSON nphases LENGTH "${doc}" phases)
  math(EXPR last_phase "${nphases} - 1")
  foreach(pi RANGE ${last_phase})
    string(JSON phase GET "${doc}" phases ${pi})
    foreach(f publishers subscribers threads size rate duration_ns messages overflow backend notify tags designs)
      json_get(v "${phase}" config ${f})
    endforeach()
    json_get(stride "${phase}" config sample_every)
    json_get(v "${phase}" comparison)
    string(JSON nres LENGTH "${phase}" results)
    math(EXPR last_res "${nres} - 1")
    foreach(ri RANGE ${last_res})
      string(JSON r GET "${phase}" results ${ri})
      get_property(failures_before GLOBAL PROPERTY smoke_failures)
      json_get(design "${r}" design)
      json_get(ok "${r}" ok)
      string(JSON skipped ERROR_VARIABLE no_skip GET "${r}" skipped)
      if(NOT ok AND skipped)
        json_get(why "${r}" error)
        message(STATUS "[${name}] ${design}: skipped (${why})")
        continue()
      endif()
      if(NOT ok)
        string(JSON why ERROR_VARIABLE e2 GET "${r}" error)
        fail("[${name}] ${design} failed: ${why}")
        continue()
      endif()
      # Every field a consumer of the JSON may rely on.
      foreach(path
          "description" "lossless" "published" "delivered" "expected_deliveries" "delivered_bytes"
          "elapsed_s" "publish_s" "drain_s" "published_per_s" "published_bytes_per_s" "delivered_per_s"
          "delivered_bytes_per_s" "deliveries_sampled" "wakeups_sent" "wakeups_coalesced" "peak_rss_kib"
          "ru_maxrss_kib" "gaps" "transport_gaps" "details" "loadavg_at_start"
          "latency_ns;count" "latency_ns;min" "latency_ns;mean" "latency_ns;p50" "latency_ns;p90"
          "latency_ns;p99" "latency_ns;p999" "latency_ns;max" "latency_ns;cdf"
          "transit_ns;count" "transit_ns;p50" "transit_ns;p99" "send_lag_ns;count" "send_lag_ns;p99"
          "syscalls;publishers" "syscalls;notifier" "syscalls;transport_reader_side" "syscalls;readers"
          "syscalls;proc_read_write" "syscalls;partial" "syscalls;total" "syscalls;per_delivered" "syscalls;per_s"
          "cpu;user_s" "cpu;sys_s" "cpu;total_s" "cpu;per_million_delivered_s" "cpu;percent_of_one_cpu"
          "cpu;publishers_s" "cpu;readers_s" "cpu;other_threads_s"
          "context_switches;voluntary" "context_switches;involuntary"
          "violations;total" "violations;skipped" "violations;missing" "violations;out_of_order"
          "violations;malformed" "violations;torn_batches" "violations;subscribers_short"
          "readers;passes" "readers;batches" "readers;blocking_waits")
        json_get(v "${r}" ${path})
      endforeach()
      json_get(published "${r}" published)
      json_get(delivered "${r}" delivered)
      json_get(expected "${r}" expected_deliveries)
      json_get(sampled "${r}" deliveries_sampled)
      json_get(count "${r}" latency_ns count)
      json_get(gaps "${r}" gaps)
      json_get(viol "${r}" violations total)
      set(where "[${name}] ${design}")
      if(NOT viol EQUAL 0)
        fail("${where}: ${viol} exactly-once-in-order violations")
      endif()
      if(published EQUAL 0)
        fail("${where}: nothing was published")
      endif()
      # Deliveries due, computed here from the published count (one publisher: message i has tag
      # i % tags, subscriber s takes tag s % tags).
      set(due 0)
      math(EXPR last_sub "${subscribers} - 1")
      foreach(s RANGE ${last_sub})
        math(EXPR tag "${s} % ${tags}")
        if(published GREATER tag)
          math(EXPR due "${due} + (${published} - ${tag} + ${tags} - 1) / ${tags}")
        endif()
      endforeach()
      if(NOT expected EQUAL due)
        fail("${where}: expected_deliveries ${expected}, but ${published} published to ${subscribers} subscribers over ${tags} tags makes ${due}")
      endif()
      if(lossless)
        if(NOT delivered EQUAL due OR NOT gaps EQUAL 0)
          fail("${where}: lossless, yet delivered ${delivered} of ${due} (gaps ${gaps})")
        endif()
      else()
        math(EXPR accounted "${delivered} + ${gaps}")
        if(NOT accounted EQUAL due)
          fail("${where}: delivered ${delivered} + gaps ${gaps} != due ${due}")
        endif()
      endif()
      # Each subscriber times its first delivery and then one in `stride`: ceil(received / stride)
      # each, so the total lies in [ceil(delivered / stride), delivered / stride + subscribers].
      math(EXPR least "(${delivered} + ${stride} - 1) / ${stride}")
      math(EXPR most "${delivered} / ${stride} + ${subscribers}")
      if(most GREATER delivered)
        set(most ${delivered})
      endif()
      if(NOT count EQUAL sampled OR sampled LESS least OR sampled GREATER most)
        fail("${where}: histogram count ${count}, deliveries timed ${sampled}, delivered ${delivered}: 1 in ${stride} per subscriber allows ${least}..${most}")
      endif()
      set(prev 0)
      foreach(q min p50 p90 p99 p999 max)
        json_get(v "${r}" latency_ns ${q})
        if(v LESS prev)
          fail("${where}: latency ${q} = ${v} is below the previous percentile ${prev}")
        endif()
        set(prev ${v})
      endforeach()
      string(JSON ncdf LENGTH "${r}" latency_ns cdf)
      if(ncdf GREATER 0)
        math(EXPR last_cdf "${ncdf} - 1")
        string(JSON frac GET "${r}" latency_ns cdf ${last_cdf} 1)
        if(NOT frac EQUAL 1)
          fail("${where}: the latency CDF ends at ${frac}, not 1")
        endif()
      endif()
      get_property(failures_after GLOBAL PROPERTY smoke_failures)
      if(failures_after EQUAL failures_before)
        message(STATUS "${where}: ok (published ${published}, delivered ${delivered} of ${due}, gaps ${gaps}, histogram ${count})")
      endif()
    endforeach()
  endforeach()
endfunction()

# 1. Lossless, as fast as possible, a fixed message count, two reader threads: every design.
run(max-count 12 1 TRUE
    --designs pushpoll,pushpoll-groups,pushpoll-sentinel,pushpoll-ipc,poll-1ms,spsc-push,zmq -P 1 -T 2 --rate max --messages 20000 --duration 10s
    --sample-every 1)
# 2. Lossless at a fixed rate for a fixed time, three tags (each subscriber takes one).
run(rate-tags 6 3 TRUE
    --designs pushpoll,pushpoll-groups,pushpoll-sentinel,pushpoll-ipc,poll-100us,spsc-push,zmq -P 1 -T 2 --rate 20k --duration 300ms)
# 3. Lossless at the maximum rate with the default timing (1 in 64), one reader thread: the batch
#    loop pushpoll uses at the maximum rate.
run(max-timed 10 1 TRUE
    --designs pushpoll,pushpoll-groups,spsc-push,zmq -P 1 -T 1 --rate max --messages 30000 --duration 10s)
# 4. Lossy: a small ring and shallow queues; whatever is lost must show up as gaps.
run(lossy 4 1 FALSE
    --designs pushpoll,pushpoll-ipc,spsc-push,zmq -P 1 -T 1 --rate max --messages 20000 --duration 10s --overflow overwrite
    --ring-bytes 16k --queue-depth 16)

get_property(_failures GLOBAL PROPERTY smoke_failures)
if(_failures GREATER 0)
  message(FATAL_ERROR "pushpoll-bench smoke test: ${_failures} failure(s)")
endif()
message(STATUS "pushpoll-bench smoke test: every check held")
