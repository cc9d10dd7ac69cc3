# wake.cmake — the wake-up benchmarks: executable `pushpoll_wake_bench` (bench/wake_bench.cpp).
#
# Included from bench/CMakeLists.txt, or from any project that has added pushpoll first (the target
# pushpoll::pushpoll must exist). Source paths are relative to this file, so it works from anywhere.
# Numbers only mean something from an optimised, unsanitized build (CMAKE_BUILD_TYPE=Release).
if(NOT TARGET pushpoll::pushpoll)
  message(FATAL_ERROR "wake.cmake: add pushpoll (target pushpoll::pushpoll) before including this file")
endif()
if(PUSHPOLL_SANITIZER)
  message(STATUS "pushpoll: pushpoll_wake_bench skipped in a sanitized build (PUSHPOLL_SANITIZER=${PUSHPOLL_SANITIZER})")
  return()
endif()

find_package(benchmark REQUIRED)
find_package(Threads REQUIRED)

add_executable(pushpoll_wake_bench ${CMAKE_CURRENT_LIST_DIR}/wake_bench.cpp)
# bench_util.hpp (pinning, spinning, failure reporting) lives beside this file.
target_include_directories(pushpoll_wake_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pushpoll_wake_bench PRIVATE pushpoll::pushpoll benchmark::benchmark Threads::Threads)
if(COMMAND pushpoll_target_options)
  pushpoll_target_options(pushpoll_wake_bench)
else()
  target_compile_features(pushpoll_wake_bench PRIVATE cxx_std_20)
endif()

# liburing (optional) for the bare_io_uring_fixed rows: the least an io_uring fan-out can cost
# (registered files). pushpoll_io links liburing privately, so the benchmark links it itself.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PUSHPOLL_WAKE_BENCH_URING QUIET IMPORTED_TARGET liburing)
endif()
if(PUSHPOLL_WAKE_BENCH_URING_FOUND)
  target_link_libraries(pushpoll_wake_bench PRIVATE PkgConfig::PUSHPOLL_WAKE_BENCH_URING)
  target_compile_definitions(pushpoll_wake_bench PRIVATE PUSHPOLL_BENCH_HAVE_LIBURING=1)
else()
  target_compile_definitions(pushpoll_wake_bench PRIVATE PUSHPOLL_BENCH_HAVE_LIBURING=0)
  message(STATUS "pushpoll: liburing not found; the bare_io_uring_fixed rows of pushpoll_wake_bench are skipped")
endif()

if(NOT CMAKE_BUILD_TYPE STREQUAL "Release")
  message(STATUS "pushpoll: pushpoll_wake_bench built as '${CMAKE_BUILD_TYPE}'; publish numbers from a Release build")
endif()
