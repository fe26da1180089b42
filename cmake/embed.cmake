# Writes OUT, a C file with every migration in FILES ('|'-separated) as a
# NUL-terminated byte array, in name order, and a table pd_migrations[] of
# {name, sql, len}.
#
# With SYMBOL set, FILES is one file instead, written as the NUL-terminated
# array SYMBOL[] and its length SYMBOL_len (a size_t), after an #include of
# HEADER, which declares them (e.g. docs/openapi.json, src/service/openapi.h).
string(REPLACE "|" ";" FILES "${FILES}")
if(DEFINED SYMBOL)
  get_filename_component(name ${FILES} NAME)
  file(READ ${FILES} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  set(body "/* Generated from ${name} by cmake/embed.cmake; do not edit. */\n#include \"${HEADER}\"\n\n")
  string(APPEND body "const char ${SYMBOL}[] = {${bytes}0x00};\n")
  string(APPEND body "const size_t ${SYMBOL}_len = ${len};\n")
  file(WRITE ${OUT}.tmp "${body}")
  file(RENAME ${OUT}.tmp ${OUT})
  return()
endif()
set(body "/* Generated from migrations/ by cmake/embed.cmake; do not edit. */\n#include \"pd/migrate.h\"\n\n")
set(table "")
set(i 0)
foreach(f ${FILES})
  get_filename_component(name ${f} NAME)
  file(READ ${f} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const char pd_migration_${i}[] = {${bytes}0x00};\n")
  string(APPEND table "    {\"${name}\", pd_migration_${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "\nconst pd_migration_t pd_migrations[] = {\n${table}};\n")
string(APPEND body "const size_t pd_migrations_count = ${i};\n")
file(WRITE ${OUT}.tmp "${body}")
file(RENAME ${OUT}.tmp ${OUT})
