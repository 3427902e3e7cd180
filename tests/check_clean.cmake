# Runs `rein check` on FILES and fails unless it exits 0 and prints nothing (no warning either):
# the shipped objectives must be clean.
execute_process(COMMAND ${REIN} check ${FILES} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
  message(FATAL_ERROR "rein check failed (exit ${rc}):\n${out}${err}")
endif()
list(LENGTH FILES n)
message(STATUS "${n} objectives checked clean")
