# flows_add_plugin(NAME SOURCES...): builds a flows plugin, a shared module
# named flows_plugin_NAME.so, with the SDK's numeric flags (through flows::sdk,
# which carries flows::numeric), hidden visibility, and the SDK's ABI version
# (from the SDK headers it compiles against). Used in the flows tree and, from
# the installed package, by out-of-tree plugins.
function(flows_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE flows::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "flows_plugin_${name}"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(FLOWS_IN_TREE)
    set_target_properties(${name} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${FLOWS_PLUGIN_BUILD_DIR}
      INSTALL_RPATH "$ORIGIN/../..")
    install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/flows/plugins)
    set_property(GLOBAL APPEND PROPERTY FLOWS_PLUGINS ${name})
  endif()
endfunction()
