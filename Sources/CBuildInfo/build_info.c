#include "build_info.h"

// Package.swift passes DEEPDEM_COMMIT as a string literal.
const char *deepdem_build_commit(void) { return DEEPDEM_COMMIT; }
