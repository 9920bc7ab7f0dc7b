/* Run-time choice of the kernel set (see dispatch.c). */
#ifndef FASTCONV_DISPATCH_H
#define FASTCONV_DISPATCH_H
#include "conv_kern.h"
#endif
