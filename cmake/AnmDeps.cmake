# Third-party dependencies, all from Debian's packages (see scripts/deps).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
pkg_check_modules(GSL REQUIRED IMPORTED_TARGET gsl)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
if(ANM_TESTS)
  pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
endif()
find_library(MATH_LIBRARY m REQUIRED)
# GLPK (libglpk-dev) ships no pkg-config file on Debian: find it by hand.
find_library(GLPK_LIBRARY glpk REQUIRED)
find_path(GLPK_INCLUDE_DIR glpk.h REQUIRED)
if(NOT TARGET anm::glpk)
  add_library(anm::glpk UNKNOWN IMPORTED)
  set_target_properties(anm::glpk PROPERTIES IMPORTED_LOCATION ${GLPK_LIBRARY}
                                             INTERFACE_INCLUDE_DIRECTORIES ${GLPK_INCLUDE_DIR})
endif()
# Gateway routes: MQTT (libmosquitto), HTTPS client (libcurl), HTTPS server
# for the Data Concentrator emulator (libmicrohttpd, built with GnuTLS on
# Debian), and OpenSSL (TLS material and JWS).
pkg_check_modules(MOSQUITTO REQUIRED IMPORTED_TARGET libmosquitto)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(MICROHTTPD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl)
