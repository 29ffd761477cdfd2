#ifndef DEEPDEM_CBLAS_SHIM_H
#define DEEPDEM_CBLAS_SHIM_H
#include <cblas.h>
#endif
