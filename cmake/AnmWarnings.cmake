# Warnings applied to every target of the project through anm_target_defaults().
set(ANM_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wwrite-strings
  -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition
  -Wcast-qual -Wpointer-arith -Wundef -Wvla -Wnull-dereference
  -Wdouble-promotion -Wimplicit-fallthrough)
if(ANM_WERROR)
  list(APPEND ANM_WARNINGS -Werror)
endif()

set(ANM_SANITIZE_FLAGS "")
if(ANM_SANITIZE)
  set(ANM_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
endif()

# anm_target_defaults(target): warnings, sanitizers, POSIX feature level.
function(anm_target_defaults target)
  target_compile_options(${target} PRIVATE ${ANM_WARNINGS} ${ANM_SANITIZE_FLAGS})
  target_compile_definitions(${target} PRIVATE _XOPEN_SOURCE=700 _DEFAULT_SOURCE)
  if(ANM_SANITIZE)
    target_link_options(${target} PRIVATE ${ANM_SANITIZE_FLAGS})
  endif()
endfunction()

# anm_module_library(name dir deps...): a static library from dir/src/*.c with
# its public headers under dir/include/<module>/.
function(anm_module_library name dir)
  file(GLOB _srcs CONFIGURE_DEPENDS ${dir}/src/*.c)
  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} PUBLIC ${dir}/include ${CMAKE_BINARY_DIR}/generated
                                     PRIVATE ${dir}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
  anm_target_defaults(${name})
endfunction()

# anm_executable(name srcdir deps...): an executable from srcdir/*.c into build/bin.
function(anm_executable name srcdir)
  file(GLOB _srcs CONFIGURE_DEPENDS ${srcdir}/*.c)
  add_executable(${name} ${_srcs})
  target_link_libraries(${name} PRIVATE ${ARGN})
  anm_target_defaults(${name})
endfunction()
