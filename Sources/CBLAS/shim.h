#ifndef DEEPDEM_CBLAS_SHIM_H
#define DEEPDEM_CBLAS_SHIM_H
#include <cblas.h>

/* Square root for NN's loops. Swift's Float.squareRoot() calls libm's sqrtf on Linux (which may set
   errno), and that call keeps a loop from vectorizing; this builtin is the bare instruction. */
static inline float deepdem_sqrtf(float x) { return __builtin_elementwise_sqrt(x); }
#endif
