# Writes a C++ source holding each stdlib YAML file as a string, so the
# compiler carries its standard library wherever it is installed.
set(body "// Generated from compiler/stdlib/*.yaml by embed.cmake. Do not edit.\n#include <cstddef>\nnamespace mithril {\nextern const char* const kStdlibSources[][2] = {\n")
set(count 0)
foreach(f ${INPUTS})
  file(READ ${f} text)
  get_filename_component(name ${f} NAME)
  string(APPEND body "  {\"${name}\", R\"MITHRIL_STDLIB(${text})MITHRIL_STDLIB\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "};\nextern const size_t kStdlibCount = ${count};\n}  // namespace mithril\n")
file(WRITE ${OUT} "${body}")
