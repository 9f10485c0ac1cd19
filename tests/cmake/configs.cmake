# Every shipped configuration parses and resolves into fit tasks.
file(GLOB BA_CONFIGS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/configs/*.ini)
foreach(config ${BA_CONFIGS})
  get_filename_component(name ${config} NAME_WE)
  add_test(NAME configs.${name} COMMAND $<TARGET_FILE:brainalign> tasks ${config} --stage fit --count)
  set_tests_properties(configs.${name} PROPERTIES LABELS unit)
endforeach()
