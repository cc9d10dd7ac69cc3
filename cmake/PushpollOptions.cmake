# pushpoll_target_options(<target>): warnings, standard and sanitizers for pushpoll's own targets.
find_package(Threads REQUIRED)

if("address" IN_LIST PUSHPOLL_SANITIZER AND "thread" IN_LIST PUSHPOLL_SANITIZER)
  message(FATAL_ERROR "PUSHPOLL_SANITIZER: address and thread cannot be combined")
endif()
set(_pushpoll_san_flags "")
if(PUSHPOLL_SANITIZER)
  string(REPLACE ";" "," _san "${PUSHPOLL_SANITIZER}")
  set(_pushpoll_san_flags -fsanitize=${_san} -fno-omit-frame-pointer)
  if("undefined" IN_LIST PUSHPOLL_SANITIZER)
    list(APPEND _pushpoll_san_flags -fno-sanitize-recover=undefined)
  endif()
  # Sanitizers apply to everything built here, so that inline code in tests is checked too.
  add_compile_options(${_pushpoll_san_flags})
  add_link_options(${_pushpoll_san_flags})
endif()
if("thread" IN_LIST PUSHPOLL_SANITIZER)
  add_compile_definitions(PUSHPOLL_TSAN=1)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # The read-validate fences are not modelled by TSan; the TSan build does not rely on them
    # (overwrite-mode tests, which do, stay out of it). Silence GCC's note about each one.
    add_compile_options(-Wno-tsan)
  endif()
endif()

function(pushpoll_target_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion
                                             -Wshadow -Wnon-virtual-dtor)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC 12 at -O3 reports a false -Wrestrict inside std::string (GCC bug 105329).
      target_compile_options(${target} PRIVATE -Wno-restrict)
    endif()
    if(PUSHPOLL_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
