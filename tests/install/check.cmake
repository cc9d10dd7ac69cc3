# Installs the build in BUILD_DIR under OUT/prefix, then configures, builds and runs the consumer
# project in SOURCE against it: find_package(pushpoll) must find every dependency it exports. Then
# builds and runs it again as a Debug project (no NDEBUG) under AddressSanitizer, against the same
# release-built library: public classes must not change layout with NDEBUG.
#
#   cmake -DBUILD_DIR=<build> -DSOURCE=<tests/install> -DOUT=<scratch> -DGENERATOR=<gen> -P check.cmake
cmake_minimum_required(VERSION 3.22)
file(REMOVE_RECURSE "${OUT}")
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}${err}")
  endif()
  message(STATUS "${what}: ok\n${out}")
endfunction()
step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${OUT}/prefix")
step("configure the consumer" "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${OUT}/build" -G "${GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${OUT}/prefix" -DCMAKE_BUILD_TYPE=Release)
step("build the consumer" "${CMAKE_COMMAND}" --build "${OUT}/build")
step("run the consumer" "${OUT}/build/consumer")
step("configure the debug consumer" "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${OUT}/debug" -G "${GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${OUT}/prefix" -DCMAKE_BUILD_TYPE=Debug
     "-DCMAKE_CXX_FLAGS=-fsanitize=address -fno-omit-frame-pointer"
     "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address")
step("build the debug consumer" "${CMAKE_COMMAND}" --build "${OUT}/debug")
step("run the debug consumer under AddressSanitizer" "${CMAKE_COMMAND}" -E env ASAN_OPTIONS=detect_leaks=0
     "${OUT}/debug/consumer")
