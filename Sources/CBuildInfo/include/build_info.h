#ifndef DEEPDEM_BUILD_INFO_H
#define DEEPDEM_BUILD_INFO_H

// The commit this binary was built from ("unknown" when the build was not told), for
// `deepdem --version`. A function rather than a macro in this header, so the value is fixed
// where this target is compiled and not wherever the header is imported.
const char *deepdem_build_commit(void);

#endif
